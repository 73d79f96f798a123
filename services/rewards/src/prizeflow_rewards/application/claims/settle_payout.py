"""SettlePayout: payouts' outcomes settle a claim's reservation exactly once.

Paid posts it (and moves it on to the provider), a final failure, a cancellation, a rejection or a refused
request voids it, a return credits the wallet back. Payouts' route announcements arrive on the same topic.
What a paid or returned payout moves on the rail's external account is told to payouts (`LedgerPosted`,
`application/ledger_postings.py`), in the poll's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

from prizeflow_contracts.envelope import Envelope, EventPayload, StagedEvent
from prizeflow_contracts.errors import EventRefusal, refusing
from prizeflow_contracts.events.payouts import (
    LedgerPostingKind,
    PayoutCancelled,
    PayoutCreated,
    PayoutFailed,
    PayoutPaid,
    PayoutRejected,
    PayoutRequestRefused,
    PayoutReturned,
    PayoutRoutesPublished,
)
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.common import count_transfers
from prizeflow_rewards.application.ledger_postings import REWARDS_SOURCE, Posting, posted
from prizeflow_rewards.domain import accounts, fx
from prizeflow_rewards.domain.claims import TRANSITIONS, Claim, ClaimStatus
from prizeflow_rewards.domain.contradictions import Contradiction, against_claim
from prizeflow_rewards.domain.fx import Conversion
from prizeflow_rewards.domain.ledger import AccountRef, LedgerError, Transfer, TransferKind, post_of, void_of
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.logging import log_context

log = logging.getLogger(__name__)

_CLAIM_EVENTS = (
    PayoutCreated,
    PayoutPaid,
    PayoutFailed,
    PayoutCancelled,
    PayoutRejected,
    PayoutReturned,
    PayoutRequestRefused,
)


def settlement_accounts(
    data: EventPayload, player_id: str, asset: str, conversion: Conversion | None = None, *, clearing_shard: int = 0
) -> list[AccountRef]:
    """The accounts a payout outcome moves money between, for a claim of `player_id` in `asset` reserved on clearing
    shard `clearing_shard` (converted by `conversion`, if it is: through the FX desk, ADR 0015) (what
    `SettlePayout.handle` would apply; nothing for events that move no money)."""
    wallet, clearing = accounts.wallet(player_id, asset), accounts.clearing(asset, clearing_shard)
    if isinstance(data, PayoutPaid | PayoutReturned) and conversion is not None:
        target = conversion.target_asset
        desk = [fx.fx_account(asset), fx.fx_account(target), fx.spread_revenue(asset)]
        return [wallet, clearing, *desk, accounts.external(data.provider.value, target)]
    if isinstance(data, PayoutPaid):
        return [wallet, clearing, accounts.external(data.provider.value, asset)]
    if isinstance(data, PayoutReturned):
        return [accounts.external(data.provider.value, asset), wallet]
    if isinstance(data, PayoutCancelled | PayoutRejected | PayoutRequestRefused) or (
        isinstance(data, PayoutFailed) and data.final
    ):
        return [wallet, clearing]
    return []


@dataclass
class _Poll:
    """One poll's claims (locked, as the poll's events leave them so far) and the effects they add up to, written
    together when the poll ends (`SettlePayout._flush`)."""

    claims: dict[str, Claim] = field(default_factory=dict)
    transfers: list[tuple[object, Claim, list[Transfer]]] = field(default_factory=list)  # (event id, claim, ...)
    bound: dict[str, str] = field(default_factory=dict)
    settled: dict[str, ClaimStatus] = field(default_factory=dict)
    postings: list[Posting] = field(default_factory=list)  # the transfers on a rail's external account

    def set(self, claim: Claim, **changes: object) -> Claim:
        claim = replace(claim, **changes)  # type: ignore[arg-type]
        self.claims[claim.id] = claim
        return claim


@dataclass
class SettlePayout:
    """Payout outcomes → the claim's reservation: paid posts it, final failure/cancel/reject voids it, and so
    does a refused request (no payout exists, none ever will). One claim is settled by one payout: the first
    payout payouts created for it; an outcome of any other payout for the claim is refused, never absorbed.

    A poll is settled at once (`settle_many`): its claims are locked and read with one statement, its events
    decided in poll order in memory (each sees the claims as the events before it left them), then every
    transfer goes to the ledger as one batch and the claims' payouts and statuses are written with one statement
    each, whatever the poll's size. The transfers it wrote on a rail's external account (paid, returned) are told
    to payouts as `LedgerPosted`, staged with one outbox write for the poll."""

    # The payout events it does anything with (the consumer skips the rest before decoding: `acts_on`).
    ACTS_ON: ClassVar[frozenset[str]] = frozenset(e.event_type() for e in (*_CLAIM_EVENTS, PayoutRoutesPublished))

    metrics: RewardsMetrics | None = None
    source: str = field(default=REWARDS_SOURCE, kw_only=True)

    async def prepare(
        self, books: Books, envs: Sequence[Envelope[EventPayload]], *, also: Iterable[AccountRef] = ()
    ) -> None:
        """Take every lock a poll of these events needs (`settle_many` does, first)."""
        await self._prepare(books, envs, also)

    async def _prepare(
        self,
        books: Books,
        envs: Sequence[Envelope[EventPayload]],
        also: Iterable[AccountRef] = (),
        claims: Iterable[str] = (),
    ) -> _Poll:
        """Take every lock a poll of these events needs, before any event is applied: the routes (if the poll
        announces some), then the claims in id order, then all their accounts in one ordered ledger lock, with
        `also`: the accounts the poll's other events move (its reconciliation adjustments, the claims its
        verification changes decide), which the ledger refuses to take after this lock, and `claims`: the claims
        they decide, locked with the outcomes' in one statement. The events then run in poll order without waiting
        for anyone, so a poll cannot deadlock with another poll, a claim or a hold decision."""
        poll = _Poll()
        if any(isinstance(e.data, PayoutRoutesPublished) for e in envs):
            await books.routes.lock()
        refs: set[AccountRef] = set(also)
        outcomes = [e.data for e in envs if isinstance(e.data, _CLAIM_EVENTS)]
        if ids := {d.claim_id for d in outcomes} | set(claims):
            poll.claims = await books.claims.lock_many(sorted(ids))
            for d in outcomes:
                if (claim := poll.claims.get(d.claim_id)) is not None:
                    refs.update(
                        settlement_accounts(
                            d, claim.player_id, claim.asset, claim.conversion, clearing_shard=claim.clearing_shard
                        )
                    )
        if outcomes or refs:
            await books.ledger.declare(refs)
        return poll

    async def settle_many(
        self, books: Books, envs: Sequence[Envelope[EventPayload]], *, also: Iterable[AccountRef] = ()
    ) -> None:
        """One poll, in poll order; a refusal names its event (`refusing`) and fails the poll's transaction.
        `also`: accounts the poll's other events will move, locked with the claims' (`_prepare`). Stages the
        poll's `LedgerPosted` (`settle_poll`)."""
        await self.stage_postings(books, await self.settle_poll(books, envs, also=also))

    async def settle_poll(
        self,
        books: Books,
        envs: Sequence[Envelope[EventPayload]],
        *,
        also: Iterable[AccountRef] = (),
        claims: Iterable[str] = (),
    ) -> list[StagedEvent]:
        """`settle_many` without staging: the `LedgerPosted` of the transfers the poll wrote on a rail's external
        account, for a caller that stages them with its poll's other events in one outbox write. `also`, `claims`:
        what the poll's other events move and decide, locked with the outcomes' (`_prepare`)."""
        poll = await self._prepare(books, envs, also, claims)
        for env in envs:
            with log_context(correlation_id=env.correlationid, event_id=str(env.id)), refusing(env.id):
                await self._handle(books, env, poll)
        return await self._flush(books, poll)

    async def stage_postings(self, books: Books, postings: Sequence[StagedEvent]) -> None:
        """A poll's `LedgerPosted`, with one outbox write (none without any)."""
        if postings:
            await books.outbox.stage(postings)

    async def handle(self, books: Books, env: Envelope[EventPayload]) -> None:
        """One event alone (a poll of one)."""
        await self.settle_many(books, [env])

    async def _handle(self, books: Books, env: Envelope[EventPayload], poll: _Poll) -> None:
        data = env.data
        if isinstance(data, PayoutRoutesPublished):
            await books.routes.publish(data)
            return
        if isinstance(data, PayoutRequestRefused):
            await self._refused(books, data, env, poll)
            return
        if isinstance(data, PayoutFailed) and not data.final:
            return  # payouts retries with the same idempotency key; the reservation stays
        if not isinstance(
            data, PayoutCreated | PayoutPaid | PayoutFailed | PayoutCancelled | PayoutRejected | PayoutReturned
        ):
            return
        claim = poll.claims.get(data.claim_id)
        if claim is None:
            raise EventRefusal("unknown_aggregate", f"{type(data).__name__}: no claim {data.claim_id}")
        paid = (claim.player_id, claim.payout_asset, claim.payout_amount)  # a converted claim's payout pays its target
        if (data.player_id, data.amount.asset, data.amount.amount) != paid:
            raise EventRefusal("conflicting_event", f"{type(data).__name__} does not match claim {claim.id}")
        if claim.payout_id in (None, data.payout_id) and await self._contradicts(books, claim, env):
            return
        claim = self._bind(poll, claim, data.payout_id, type(data).__name__)
        if isinstance(data, PayoutCreated):
            return
        if isinstance(data, PayoutPaid):
            self._paid(env, poll, claim, data)
        elif isinstance(data, PayoutReturned):
            self._returned(env, poll, claim, data)
        else:
            self._void(env, poll, claim)

    @staticmethod
    def _bind(poll: _Poll, claim: Claim, payout_id: str, what: str) -> Claim:
        """The claim's payout is the first one payouts tells of; any other is a second payout for one claim."""
        if claim.payout_id == payout_id:
            return claim
        if claim.payout_id is not None:
            raise EventRefusal(
                "duplicate_payout",
                f"{what} of payout {payout_id}: claim {claim.id} is settled by payout {claim.payout_id}",
            )
        poll.bound[claim.id] = payout_id
        return poll.set(claim, payout_id=payout_id)

    async def _contradicts(self, books: Books, claim: Claim, env: Envelope[EventPayload]) -> bool:
        """A later outcome against the claim's final state (paid for a voided claim, a failure after paid...): kept
        once per event for a person and the alert, never applied, never dead-lettered (a redrive could only be
        refused again). True if it was one."""
        outcome = type(env.data).__name__
        if isinstance(env.data, PayoutFailed) and not env.data.final:
            return False
        reported = against_claim(claim.status, outcome)
        if reported is None:
            return False
        contradiction = Contradiction(
            subject="claim",
            aggregate_id=claim.id,
            state=claim.status.value,
            reported=reported,
            source_ref=str(env.id),
            detail=f"claim {claim.id} is {claim.status.value}, but payouts reports its payout {reported} "
            f"({outcome}): nothing moved; compare the payout and the wallet, correct with a ledger correction",
        )
        if await books.contradictions.record(contradiction) and self.metrics is not None:
            self.metrics.contradictions.labels("claim", claim.status.value, reported).inc()
        log.error(
            "a payout outcome contradicts a claim that is %s: recorded for a person (%s)",
            claim.status.value,
            outcome,
            extra={"claim_id": claim.id},
        )
        return True

    async def _refused(
        self, books: Books, data: PayoutRequestRefused, env: Envelope[EventPayload], poll: _Poll
    ) -> None:
        claim = poll.claims.get(data.claim_id)
        if claim is None:
            raise EventRefusal("unknown_aggregate", f"PayoutRequestRefused: no claim {data.claim_id}")
        if claim.payout_request_id != data.payout_request_id:
            raise EventRefusal("conflicting_event", f"PayoutRequestRefused does not match claim {claim.id}")
        if claim.payout_id is None and await self._contradicts(books, claim, env):
            return
        if claim.payout_id is not None:
            raise EventRefusal(
                "conflicting_event", f"claim {claim.id} has payout {claim.payout_id}: its request was not refused"
            )
        # Held too: payouts refused a request naming this claim (it could only be forged or unreadable) and will
        # refuse the real one when the hold is released, so the reservation goes back now, not never.
        self._void(env, poll, claim, allowed=(ClaimStatus.APPROVED, ClaimStatus.HELD))

    def _paid(self, env: Envelope[EventPayload], poll: _Poll, claim: Claim, data: PayoutPaid) -> None:
        if claim.status in (ClaimStatus.PAID, ClaimStatus.RETURNED):
            return
        if not TRANSITIONS.allows(claim.status, ClaimStatus.PAID):
            raise EventRefusal("illegal_transition", f"claim {claim.id} is {claim.status.value}: cannot be paid")
        if claim.conversion is not None:  # through the FX desk: the last leg is the one on the rail's account
            legs = fx.paid_legs(
                claim.id,
                claim.amount,
                claim.conversion,
                data.provider.value,
                correlation_id=claim.correlation_id,
                clearing=claim.clearing,
            )
            settle = legs[-1]
        else:
            settle = Transfer.of(
                claim.clearing,
                accounts.external(data.provider.value, claim.asset),
                claim.amount,
                TransferKind.PAYOUT_SETTLE,
                claim.id,
                correlation_id=claim.correlation_id,
            )
            legs = [settle]
        self._settle(env, poll, claim, [post_of(claim.pending), *legs], ClaimStatus.PAID)
        poll.postings.append(
            Posting(
                settle,
                LedgerPostingKind.PAYOUT,
                data.provider,
                env,
                data.paid_at,
                claim_id=claim.id,
                payout_id=data.payout_id,
            )
        )

    def _void(
        self,
        env: Envelope[EventPayload],
        poll: _Poll,
        claim: Claim,
        *,
        allowed: tuple[ClaimStatus, ...] = (ClaimStatus.APPROVED,),
    ) -> None:
        if claim.status is ClaimStatus.VOIDED:
            return
        if claim.status not in allowed:
            raise EventRefusal("illegal_transition", f"claim {claim.id} is {claim.status.value}: cannot be voided")
        self._settle(env, poll, claim, [void_of(claim.pending)], ClaimStatus.VOIDED)

    def _returned(self, env: Envelope[EventPayload], poll: _Poll, claim: Claim, data: PayoutReturned) -> None:
        if claim.status is ClaimStatus.RETURNED:
            return
        if not TRANSITIONS.allows(claim.status, ClaimStatus.RETURNED):
            raise EventRefusal("illegal_transition", f"claim {claim.id} is {claim.status.value}: nothing to return")
        if claim.conversion is not None:  # back through the FX desk at the locked rate: the first leg is the rail's
            legs = fx.returned_legs(
                claim.id,
                player_id=claim.player_id,
                source_amount=claim.amount,
                conversion=claim.conversion,
                returned=data.returned_amount.amount,
                provider=data.provider.value,
                correlation_id=claim.correlation_id,
            )
        else:
            legs = [
                Transfer.of(
                    accounts.external(data.provider.value, claim.asset),
                    accounts.wallet(claim.player_id, claim.asset),
                    data.returned_amount.amount,
                    TransferKind.PAYOUT_RETURN,
                    claim.id,
                    correlation_id=claim.correlation_id,
                )
            ]
        back = legs[0]
        self._settle(env, poll, claim, legs, ClaimStatus.RETURNED)
        poll.postings.append(
            Posting(
                back,
                LedgerPostingKind.RETURN,
                data.provider,
                env,
                data.returned_at,
                claim_id=claim.id,
                payout_id=data.payout_id,
            )
        )

    @staticmethod
    def _settle(
        env: Envelope[EventPayload], poll: _Poll, claim: Claim, transfers: list[Transfer], status: ClaimStatus
    ) -> None:
        poll.transfers.append((env.id, claim, transfers))
        poll.settled[claim.id] = status
        poll.set(claim, status=status)

    async def _flush(self, books: Books, poll: _Poll) -> list[StagedEvent]:
        """The poll's effects: every transfer in one ledger batch, the claims' payouts and statuses in one write
        each. Should the ledger refuse the batch, each event's transfers are tried alone (savepoints of the same
        transaction) to name the event to refuse: the consumer then applies the rest without it. Returns the
        `LedgerPosted` of the external transfers the batch wrote now (a replay's: none)."""
        transfers = [t for _, _, group in poll.transfers for t in group]
        postings: list[StagedEvent] = []
        if transfers:
            try:
                result = await books.ledger.apply(transfers)
            except LedgerError as err:
                for event_id, claim, group in poll.transfers:
                    try:
                        await books.ledger.apply(group)
                    except LedgerError as alone:
                        raise EventRefusal(
                            "conflicting_event", f"claim {claim.id}: {alone.detail}", event_id=event_id
                        ) from alone
                raise EventRefusal("conflicting_event", f"the poll's transfers: {err.detail}") from err
            count_transfers(self.metrics, result)
            postings = posted(poll.postings, result, source=self.source)
        await books.claims.record_outcomes(list(poll.bound.items()), list(poll.settled.items()))
        return postings
