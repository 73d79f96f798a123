"""`ApplyProviderEvents`: normalized provider webhooks (ProviderEventReceived) drive payout transitions.

A provider event is applied at most once per (provider, provider_event_id), and only if the transition table
allows it from where the payout is now: a duplicate, or a stale report arriving out of order, changes nothing.
Only events the webhook ingress verified are acted on, and only from the ingress: anything else is refused
(`unverified_provider_event`) before its provider event id is recorded, so it can neither move a payout nor
take the dedup key a later genuine delivery of that event needs. An event only ever moves a payout of its own
provider type, never one of a provider without webhooks (nothing can have verified those), and never one whose
recorded provider object differs from the event's (`conflicting_event`, before its id is recorded). A paid event
that carries the provider's fee records it with the payout, as the status sync would have (issue 56: a UPI payout
paid by its `processed` webhook had dropped it, and every reconciliation window raised it as unbooked).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import EventRefusal, PayoutError, PayoutErrorCode
from prizeflow_contracts.events.webhooks import PaymentEventReceived, ProviderEventReceived
from prizeflow_contracts.providers import ProviderPayoutResult, ProviderPayoutStatus
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.metrics import PayoutMetrics
from prizeflow_payouts.application.registry import ProviderEntry, ProviderRegistry
from prizeflow_payouts.application.transitions import ChangeBuilder
from prizeflow_payouts.domain.payout import Change, HistoryEntry, Payout
from prizeflow_payouts.domain.state import PayoutState, Reaction, judge_report

S = PayoutState

log = logging.getLogger(__name__)


class ApplyProviderEvents:
    def __init__(
        self,
        *,
        registry: ProviderRegistry,
        builder: ChangeBuilder,
        metrics: PayoutMetrics | None = None,
        trusted_sources: frozenset[str] = frozenset({"/prizeflow/webhooks"}),
    ) -> None:
        self.registry = registry
        self.builder = builder
        self.metrics = metrics
        self.trusted_sources = trusted_sources

    async def execute(self, books: Books, envelopes: Sequence[Envelope[Any]]) -> list[str]:
        """In the caller's transaction (`books`). Returns an outcome per event: applied, duplicate, stale,
        no_status, sync_requested (unverified ones are refused)."""
        return [
            self._ignored(env) if isinstance(env.data, PaymentEventReceived) else await self._one(books, env)
            for env in envelopes
        ]

    def _ignored(self, env: Envelope[Any]) -> str:
        """Rewards' event (a top-up's payment) on the shared webhooks topic: seen, nothing to do here. The inbox
        row says it was seen; it is neither a refusal nor a dead letter (which would page an operator)."""
        if self.metrics is not None:
            self.metrics.webhooks.labels(env.data.provider.value, "ignored").inc()
        return "ignored"

    def _trusted(self, env: Envelope[Any]) -> ProviderEventReceived:
        """The event, if the ingress published it and verified it; refused otherwise (nothing recorded)."""
        ev = env.data
        if not isinstance(ev, ProviderEventReceived):
            raise EventRefusal("unknown_event_type", f"payouts does not handle {env.type} on the webhooks topic")
        if env.source not in self.trusted_sources or not ev.verified:
            if self.metrics is not None:
                self.metrics.webhooks.labels(ev.provider.value, "unverified").inc()
            why = "not verified" if ev.verified is False else f"published by {env.source!r}, not the webhook ingress"
            raise EventRefusal("unverified_provider_event", f"{ev.provider.value} event {ev.provider_event_id}: {why}")
        return ev

    async def _payout_for(self, books: Books, ev: ProviderEventReceived) -> tuple[Payout, ProviderEntry]:
        """The payout of the event's provider type it names, locked; refused if none, or if its provider has no
        webhooks (nothing can have verified one: refused like a forgery, before its event id is recorded)."""
        provider = ev.provider.value
        rec = await books.payouts.find_for_provider_event(provider, ev.provider_payout_ref, ev.idempotency_key)
        if rec is None:
            raise EventRefusal(
                "unknown_aggregate",
                f"no payout for {provider} ref={ev.provider_payout_ref!r} key={ev.idempotency_key!r}",
            )
        if ev.status is not None and not _names_this_payout(ev, rec):
            raise EventRefusal(
                "conflicting_event",
                f"{provider} event {ev.provider_event_id} names payout {rec.id} but another object or key "
                f"(ref={ev.provider_payout_ref!r}, recorded {rec.provider_ref!r})",
            )
        entry = self.registry.get(rec.provider_name)
        if not entry.rail.terms.webhooks:
            if self.metrics is not None:
                self.metrics.webhooks.labels(provider, "unverified").inc()
            raise EventRefusal(
                "unverified_provider_event",
                f"{provider} event {ev.provider_event_id}: provider {entry.name} has no webhooks",
            )
        return rec, entry

    async def _one(self, books: Books, env: Envelope[Any]) -> str:
        ev = self._trusted(env)
        provider = ev.provider.value
        rec, entry = await self._payout_for(books, ev)
        now = datetime.now(UTC)
        outcome, change, disagrees = Reaction.STALE.value, None, False
        if ev.status is None:
            outcome = "no_status"
        else:
            terms = entry.rail.terms
            verdict = judge_report(
                rec.state,
                ev.status,
                failed_for_good=rec.failed_for_good,
                returns=terms.returns,
                confirm_failures=terms.settles_failures_on_sync,
            )
            outcome = verdict.reaction.value
            actor = f"webhook:{provider}"
            if verdict.reaction is Reaction.MOVE:
                change = self.builder.from_result(
                    rec,
                    rec.state,
                    _result(rec, ev, provider),
                    now=now,
                    actor=actor,
                    token=None,
                    polls_status=entry.polls_status,
                    cause=env.id,
                    returns=terms.returns,
                )
                if change is None or change.to is rec.state:  # a failure of unknown outcome: its syncs decide
                    outcome, change = Reaction.STALE.value, None
            elif verdict.reaction is Reaction.ASK:
                change = _ask_provider(rec, ev.status, actor, now)
            disagrees = verdict.reaction is Reaction.CHECK
        first = await books.payouts.record_provider_event(
            provider,
            ev.provider_event_id,
            payout_id=rec.id,
            status=ev.status.value if ev.status else None,
            outcome=outcome,
        )
        if not first:
            outcome, change, disagrees = "duplicate", None, False
        if change is not None:
            applied = await books.payouts.apply([change], at=now)
            if not applied:  # cannot happen under the row lock; kept as a guard, not a silent skip
                raise RuntimeError(f"payout {rec.id} changed under its row lock")
            if self.metrics is not None and change.to is not change.expected:
                self.metrics.transitions.labels(change.to.value, rec.provider_name).inc()
        if disagrees:
            assert ev.status is not None
            await self._disagreement(books, rec, entry.name, ev, now)
        if self.metrics is not None:
            self.metrics.webhooks.labels(provider, outcome).inc()
        log.info("provider event %s: %s", ev.provider_event_id, outcome, extra={"payout_id": rec.id})
        return outcome

    async def _disagreement(
        self, books: Books, rec: Payout, provider: str, ev: ProviderEventReceived, now: datetime
    ) -> None:
        """A report that contradicts where the payout is: recorded, never applied; the worker asks the provider."""
        assert ev.status is not None
        opened = await books.disagreements.add_disagreement(
            rec, provider=provider, reported=ev.status, source_ref=ev.provider_event_id, at=now
        )
        reason = f"the provider reported {ev.status.value} (event {ev.provider_event_id}): " + (
            "checking its current status" if opened else "a disagreement about it is already open"
        )
        entry = HistoryEntry(rec.state, rec.state, f"webhook:{provider}", reason=reason)
        await books.payouts.add_history([(rec.id, entry)], at=now)
        log.warning(
            "provider event %s contradicts the payout's state %s: %s",
            ev.provider_event_id,
            rec.state.value,
            "checking" if opened else "already open",
            extra={"payout_id": rec.id},
        )


def _result(rec: Payout, ev: ProviderEventReceived, provider: str) -> ProviderPayoutResult:
    assert ev.status is not None
    error = None
    if ev.status is ProviderPayoutStatus.FAILED:
        code = ev.error_code or PayoutErrorCode.TX_FAILED
        error = PayoutError.of(code, f"{provider} webhook {ev.kind}: {code.value}", provider=provider)
    return ProviderPayoutResult(
        status=ev.status,
        idempotency_key=rec.idempotency_key,
        provider_ref=ev.provider_payout_ref or rec.provider_ref,
        error=error,
        fee=ev.fee if ev.status is ProviderPayoutStatus.PAID else None,  # the provider's answer, as its status's
        raw_status=ev.kind[:128],
    )


def _ask_provider(rec: Payout, status: ProviderPayoutStatus, actor: str, now: datetime) -> Change | None:
    """The provider's current status decides, through the path that asks it anyway. Submitted: its status sync, now.
    Approved, or a retryable failure: its next attempt asks the provider first (sync first), the failure's now. In
    submission: the worker's answer and the syncs after it (nothing to change)."""
    if rec.state is S.SUBMITTED:
        return Change(record=rec, expected=S.SUBMITTED, to=S.SUBMITTED, sync_polls=rec.sync_polls, next_sync_at=now)
    if rec.state is S.APPROVED:
        return Change(record=rec, expected=S.APPROVED, to=S.APPROVED, sync_first=True)
    if rec.state is S.FAILED and not rec.failed_for_good:
        why = f"the provider reported {status.value}: retried now, asking the provider first"
        return Change(
            record=rec,
            expected=S.FAILED,
            to=S.FAILED,
            next_attempt_at=now,
            sync_first=True,
            history=[HistoryEntry(S.FAILED, S.FAILED, actor, reason=why)],
        )
    return None


def _names_this_payout(ev: ProviderEventReceived, rec: Payout) -> bool:
    """Whether what the event is about can be this payout: its key, if it names one, is the payout's, and its
    object, if both are known, is the one the payout recorded. A provider echoes our key in metadata anyone holding
    an account there can copy (a player's own Stripe connected account), so the key alone never lets another object
    settle or return a payout whose own object is known; an object on a provider account (a connected account's
    bank payout) must be on the payout's destination account; a payout that has no object recorded yet is still
    matched by key (its sync, by our key at the provider, stays the backstop)."""
    if ev.idempotency_key is not None and ev.idempotency_key != rec.idempotency_key:
        return False
    if ev.provider_account is not None and ev.provider_account != rec.destination_address:
        # An object on another account than the payout's destination (another player's connected account, whose
        # owner made it carry our key) is never this payout, whatever else it names.
        return False
    return ev.provider_payout_ref is None or rec.provider_ref is None or ev.provider_payout_ref == rec.provider_ref


__all__ = ["ApplyProviderEvents"]
