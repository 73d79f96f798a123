"""Kafka handlers: PayoutRequested (create), ProviderEventReceived (webhooks), verification events, signer results.
Each runs on the consumer's `books`: the stores bound to the one transaction the runtime opened for the poll (the
inbox rows already claimed)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.payouts import LedgerPosted, PayoutRequested
from prizeflow_contracts.events.webhooks import VerificationEventReceived
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.create import CreatePayouts
from prizeflow_payouts.application.payout_requests import CreatePayoutCommand, PayoutConflictError
from prizeflow_payouts.application.webhooks import ApplyProviderEvents
from prizeflow_runtime.dead_letters import DeadLetter

# Who may tell payouts what the ledger booked: the rewards service (its CloudEvents source).
LEDGER_SOURCES: Final = frozenset({"/prizeflow/rewards"})


def request_lane(env: Envelope[Any]) -> Hashable:
    """The lane a payout request goes to when a poll is split (`CONSUMER_LANES`): its player's. The gate serialises
    one player's requests with a per-player lock, so two lanes holding requests of one player would wait on each
    other; a claim's requests are one player's, so per-key order holds. A `LedgerPosted` (rows of its own, no
    payout's) goes by its key."""
    data = env.data
    if isinstance(data, PayoutRequested):
        return ("player", data.player_id)
    return ("key", env.correlationid)


def request_command(env: Envelope[PayoutRequested]) -> CreatePayoutCommand:
    """The payout a `PayoutRequested` asks for, under the event's correlation id, caused by the event."""
    data = env.data
    return CreatePayoutCommand(
        payout_request_id=data.payout_request_id,
        claim_id=data.claim_id,
        player_id=data.player_id,
        amount=data.amount,
        destination=data.destination,
        idempotency_key=data.idempotency_key,
        requested_by=data.requested_by,
        provider=data.provider,
        correlation_id=env.correlationid,
        cause_event_id=str(env.id),
    )


class PayoutRequestsHandler:
    """Rewards' channel to payouts: payout requests, and what the ledger booked on the rails' accounts
    (`LedgerPosted`, kept for reconciliation), each poll in its one transaction."""

    def __init__(
        self,
        create: CreatePayouts,
        on_due: Callable[[], None] | None = None,
        *,
        ledger_sources: frozenset[str] = LEDGER_SOURCES,
    ) -> None:
        self.create = create
        self.on_due = on_due  # the worker looks again (it tolerates seeing nothing yet: commit is a moment away)
        self.ledger_sources = ledger_sources

    async def __call__(self, books: Books, envelopes: Sequence[Envelope[Any]]) -> None:
        commands = []
        postings = []
        for env in envelopes:
            data = env.data
            if isinstance(data, LedgerPosted):
                if env.source not in self.ledger_sources:
                    # Only the ledger says what the ledger booked: a posting from anyone else could hide a mismatch.
                    raise EventRefusal(
                        "unverified_ledger_posting", f"LedgerPosted from {env.source[:100]!r}, not from the ledger"
                    )
                postings.append(data)
                continue
            if not isinstance(data, PayoutRequested):
                raise EventRefusal("unknown_event_type", f"payouts does not handle {env.type} on the requests topic")
            commands.append(request_command(env))
        await books.postings.record(postings)
        if not commands:
            return
        try:
            await self.create.execute(books, commands, channel="kafka")
        except PayoutConflictError as err:
            # The claim already has a payout (or a refusal): that one settles its reservation; nothing is voided.
            raise EventRefusal(err.code, err.detail) from err
        if self.on_due is not None:
            books.payouts.after_commit(self.on_due)  # the worker looks once the poll's payouts are there to see

    async def on_refusal(self, books: Books, letter: DeadLetter) -> None:
        """A request dead-lettered unread: refused for good when it names its claim (see `refuse_unreadable`)."""
        await self.create.refuse_unreadable(books, letter)


class ProviderEventsHandler:
    def __init__(self, apply: ApplyProviderEvents) -> None:
        self.apply = apply

    async def __call__(self, books: Books, envelopes: Sequence[Envelope[Any]]) -> None:
        # A verification event is `VerificationEventsHandler`'s (its own consumer group), never a payout's.
        payouts = [e for e in envelopes if not isinstance(e.data, VerificationEventReceived)]
        if payouts:
            await self.apply.execute(books, payouts)


class SignerResultsHandler:
    """TransactionSigned / SignatureRefused for the providers that sign through the signer service."""

    async def __call__(self, books: Books, envelopes: Sequence[Envelope[Any]]) -> None:
        await books.signer_results.record(envelopes)


__all__ = [
    "PayoutRequestsHandler",
    "ProviderEventsHandler",
    "SignerResultsHandler",
    "request_lane",
]
