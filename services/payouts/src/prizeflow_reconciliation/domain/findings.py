"""What reconciliation finds, as values: our payouts as it reads them, a difference found (`Finding`), the chain of
exceptions already found about one (`Chain`), and what a finding adds to its chain (`beyond`). Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from prizeflow_contracts.providers import StatementLine
from prizeflow_reconciliation.domain.kinds import SEVERITY, ExceptionKind, Severity


@dataclass(frozen=True, slots=True)
class OurPayout:
    """A payout of ours as reconciliation compares it (`returned_at` only for a returned one)."""

    payout_id: str
    idempotency_key: str
    provider_ref: str | None
    state: str
    asset: str
    amount: int
    destination: str
    fee_asset: str | None = None
    fee_amount: int | None = None
    paid_at: datetime | None = None
    unknown_outcome: bool = False  # a person must settle whether the provider made it
    # What the ledger booked for it on the rail's account (paid less returned); None: unchecked, or nothing yet.
    ledger: int | None = None
    unknown_since: datetime | None = None  # when its outcome became unknown (one exception per time it does)


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference, or what it grew by. `subject` is what it is about (`payout:<id>` or `line:<line id>`); the
    exceptions of one (kind, subject) are a chain: `link` is this one's place in it, `absorbed` what the links
    before it claim (its `amount` is beyond that), and `key` its natural key."""

    kind: ExceptionKind
    subject: str
    asset: str | None
    amount: int | None  # the money at stake, in minor units (positive)
    ours: OurPayout | None
    theirs: tuple[StatementLine, ...]
    detail: str
    link: int = 0
    absorbed: int = 0

    @property
    def payout_id(self) -> str | None:
        return self.ours.payout_id if self.ours is not None else None

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.kind]

    @property
    def key(self) -> str:
        """Unique per kind: the subject itself for a difference's first exception, `<subject>#<link>` after."""
        return self.subject if self.link == 0 else f"{self.subject}#{self.link}"


@dataclass(frozen=True, slots=True)
class Chain:
    """The exceptions already found about one difference (kind, subject), whatever became of them: how many, and
    the money they claim together (a resolved one is never claimed again, an open one not twice)."""

    links: int
    amount: int


Chains = Mapping[tuple[ExceptionKind, str], Chain]


def within(at: datetime | None, since: datetime, until: datetime) -> bool:
    return at is not None and since <= at < until


def beyond(found: Iterable[Finding], chains: Chains) -> list[Finding]:
    """What each finding adds to its difference's chain: the whole finding where nothing was found about it yet,
    else the money beyond what the chain claims (nothing where it claims it all), as the chain's next link."""
    out = []
    for f in found:
        chain = chains.get((f.kind, f.subject))
        if chain is None:
            out.append(f)
        elif (more := (f.amount or 0) - chain.amount) > 0:
            detail = f"{f.detail}; {chain.amount} {f.asset} of it was found before: this is the rest"
            out.append(replace(f, amount=more, detail=detail, link=chain.links, absorbed=chain.amount))
    return out


__all__ = ["Chain", "Chains", "Finding", "OurPayout", "beyond", "within"]
