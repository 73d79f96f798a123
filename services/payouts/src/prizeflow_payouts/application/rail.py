"""A rail, registered once: the parts it is made of, and what it can do derived from which parts it has.

A rail's factory returns one `Rail`. Each optional part is a small port (below); a rail without a part simply
cannot do that thing, and nobody asks (no `isinstance` discovery, no flag saying the same thing again):

| part | what having it means |
|---|---|
| `payouts` | the contract's `RewardPayoutProvider`: create, sync, cancel, quote, parse webhooks (always there) |
| `errors` | its one reading of what its provider's client raised, `classify(error, *, mutating)` (always there) |
| `statement` | reconciliation can read what the provider did with our money (reconciliation's `StatementReader`) |
| `settler` | a person settles its unknown outcomes from the provider's history (`SettlesUnknownOutcome`) |
| `engine` | it holds connections: started before the worker, closed at shutdown (after the jobs stopped) |
| `passes` | it works between calls (a chain's lanes, a wallet's driver): its jobs join the process's one scheduler |
| `database` | it keeps books in the service's database: bootstrap hands it the runtime's pool |
| `signer_sink` | its transactions are signed by the signer service: it takes the signer's results |
| `external` | an operator may sign its transactions out of band (signer backend `external`) |
| `validator` | it refuses a payout before anything is created (the API answers problem details) |
| `batch` | it creates many payouts in one call (`supports_batching`) |
| `progress` | it sends from its own source accounts: the worker exports their progress as gauges |
| `balance` | it pays from an account it holds at the provider: the gauges export its balance (low-balance alert) |
| `amounts` | it pays only some amounts (Telegram's gift prices): rewards refuses other amounts up front |

What no part can show (does the provider cancel, quote, send webhooks, confirm later...) is said once, in
`RailTerms`. `Rail.capabilities` (what the admin API lists) is computed from the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutInstruction,
    ProviderCapabilities,
    RewardPayoutProvider,
)
from prizeflow_payouts.application.ports import CreateOutcome, ProviderBalance, RailProgress
from prizeflow_reconciliation.statements import SettlesUnknownOutcome, StatementReader
from prizeflow_runtime.jobs import Scheduler


class RailEngine(Protocol):
    """A rail holding connections or loops: started before the worker runs, closed at shutdown."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class RunsPasses(Protocol):
    """A rail with work of its own between the calls: it registers its jobs on the process's one scheduler, which
    starts them once the process is up and stops them before any engine closes. A rail never keeps a scheduler of
    its own (ADR 0018)."""

    def schedule(self, jobs: Scheduler) -> None: ...


class KeepsBooks(Protocol):
    """A rail keeping books in the service's database: handed the runtime's pool (an `AsyncEngine`), never opens
    one. Typed `Any` here: the application layer imports no database driver."""

    def bind_database(self, engine: Any) -> None: ...


class SignerSink(Protocol):
    """A rail signing through the signer service: it takes the signer's results inside the consumer's inbox
    transaction (`session`)."""

    async def on_signer_results(self, session: Any, envelopes: Sequence[Envelope[Any]]) -> None: ...


class PayoutValidator(Protocol):
    """Refuses a payout before anything is created (the API answers problem details); None: acceptable."""

    def validate(self, instruction: PayoutInstruction) -> PayoutError | None: ...


class BatchPayouts(Protocol):
    """Creates many payouts in one call (a batch API, one Stellar transaction...). Same rules as `create_payout`,
    per instruction: one answer slot per instruction, in order; no definitive answer is a `PayoutProviderError`
    in that instruction's slot."""

    async def create_payouts(self, instructions: Sequence[PayoutInstruction]) -> Sequence[CreateOutcome]: ...


class ExternalSigning(Protocol):
    """Transactions an operator may sign out of band (signer backend `external`)."""

    async def unsigned_transaction(self, payout_id: str) -> dict[str, Any] | None: ...

    async def submit_signed(self, payout_id: str, signed_xdr: str) -> Any: ...


class ReportsBalance(Protocol):
    """A rail that pays from an account it holds at the provider (RazorpayX): the gauges export its balance."""

    async def balances(self) -> tuple[ProviderBalance, ...]: ...


class ReportsProgress(Protocol):
    """A rail sending from its own source accounts (Stellar, TON): what the "sequence stuck" alert reads."""

    async def progress(self) -> RailProgress: ...


class FixedAmounts(Protocol):
    """A rail paying only some amounts: rewards refuses a claim of any other amount before money is reserved."""

    def payable_amounts(self, asset: str) -> tuple[int, ...]: ...


class ClassifiesErrors(Protocol):
    """A rail's one reading of what its provider's client raised, the same signature on every rail (each is
    bound to its provider's name when built). `mutating`: the call may have moved money, so an answer that is not
    definitive (a timeout, a dropped connection, a 5xx) is `timeout_unknown_outcome`, never a refusal."""

    def classify(self, error: BaseException, *, mutating: bool) -> PayoutError: ...


@dataclass(frozen=True, slots=True)
class StableErrors:
    """`ClassifiesErrors` of a rail whose calls raise the contract's own errors (manual, sandbox; the chains, whose
    provider calls only write their books and whose drivers classify the chain's answers themselves): a
    `PayoutProviderError` is its error; anything else may have landed when `mutating`, else it is retryable."""

    provider: str

    def classify(self, error: BaseException, *, mutating: bool) -> PayoutError:
        if isinstance(error, PayoutProviderError):
            return error.error
        code = PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME if mutating else PayoutErrorCode.PROVIDER_UNAVAILABLE
        return PayoutError.of(code, f"{self.provider}: {type(error).__name__}", provider=self.provider)


def may_have_landed(error: PayoutError) -> bool:
    """The call may have been carried out: settle it from the provider's books, never send it again."""
    return error.code is PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME


@dataclass(frozen=True, slots=True)
class RailTerms:
    """What a rail's provider does that no part can show, said once.

    `finds_payouts_at_provider`: its `sync_status` reads the provider's own books (Stripe, gift cards), so its
    `payout_not_found` still stands after a point-in-time restore; the other rails answer from payouts' own
    tables, restored with the rest, and a person checks the rail's books instead.
    `settles_failures_on_sync`: it must act before a failure is final (Stripe `transfer_and_payout` reverses the
    transfer first): a webhook `failed` only schedules a status sync.
    `operator_after_s`: how long an outcome may stay unknown before only an operator can decide it (None: the
    worker's default).
    `statement_fees_inside`: its statement's payout lines already hold their fees (the exchange's gross
    withdrawals), as reconciliation's `RailStatement.fees_inside`.
    `statement_lag_s`: how late its statement may list a movement (a provider's reporting API that lists hours late);
    reconciliation runs its windows that much later, as `RailStatement.lists_within`."""

    cancels: bool
    quotes: bool
    webhooks: bool
    confirms_later: bool
    returns: bool = False
    polls_status: bool = True  # False: nobody polls it (manual: an operator reports the outcome)
    finds_payouts_at_provider: bool = False
    settles_failures_on_sync: bool = False
    operator_after_s: float | None = None
    statement_fees_inside: bool = False
    statement_lag_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Rail:
    """One rail: its parts (see the module's table) and its terms."""

    payouts: RewardPayoutProvider
    terms: RailTerms
    errors: ClassifiesErrors
    statement: StatementReader | None = None
    settler: SettlesUnknownOutcome | None = None
    engine: RailEngine | None = None
    passes: RunsPasses | None = None
    database: KeepsBooks | None = None
    signer_sink: SignerSink | None = None
    external: ExternalSigning | None = None
    validator: PayoutValidator | None = None
    batch: BatchPayouts | None = None
    progress: ReportsProgress | None = None
    balance: ReportsBalance | None = None
    amounts: FixedAmounts | None = None

    def capabilities(self, assets: Sequence[str], destination_types: Sequence[DestinationType]) -> ProviderCapabilities:
        """What the rail can do, as the admin API lists it: the terms, and the parts it has."""
        t = self.terms
        return ProviderCapabilities(
            supports_cancel=t.cancels,
            supports_quote=t.quotes,
            supports_webhooks=t.webhooks,
            async_confirmation=t.confirms_later,
            requires_signature=self.signer_sink is not None or self.external is not None,
            supports_batching=self.batch is not None,
            supports_returns=t.returns,
            assets=tuple(assets),
            destination_types=tuple(destination_types),
        )


__all__ = [
    "BatchPayouts",
    "ClassifiesErrors",
    "ExternalSigning",
    "FixedAmounts",
    "KeepsBooks",
    "PayoutValidator",
    "Rail",
    "RailEngine",
    "RailTerms",
    "ReportsBalance",
    "ReportsProgress",
    "RunsPasses",
    "SignerSink",
    "StableErrors",
    "StatementReader",
    "may_have_landed",
]
