"""`CreatePayouts`: from PayoutRequested to a stored payout, idempotently, in batches.

Every request ends in exactly one of three ways, recorded in the database: a payout (one per claim, ever:
UNIQUE claim_id), a refusal that can never become a payout (no provider routes it, the provider refuses its
destination) announced as PayoutRequestRefused so rewards voids the reservation, or a conflict with the
claim's existing payout (a dead letter: the existing payout settles the reservation, nothing is voided).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.errors import PayoutError, PayoutErrorCode
from prizeflow_contracts.events.payouts import ApprovalPolicy, PayoutRequestRefused
from prizeflow_contracts.ids import IDEMPOTENCY_KEY_PATTERN, is_identifier
from prizeflow_contracts.money import Money
from prizeflow_contracts.policy import Action
from prizeflow_contracts.providers import DestinationType, PayoutDestination, PayoutInstruction
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.gate import Candidate, DecisionRecord, PayoutGate
from prizeflow_payouts.application.handoff import as_stored, hand_over, record_sends, straight_to_worker
from prizeflow_payouts.application.metrics import PayoutMetrics
from prizeflow_payouts.application.payout_requests import (
    Created,
    CreatePayoutCommand,
    PayoutConflictError,
    Refusal,
    created_change,
    new_payout,
    payout_id_for,
    refusal_event_id,
)
from prizeflow_payouts.application.ports import DirectSends
from prizeflow_payouts.application.registry import NoRouteError, ProviderEntry, ProviderRegistry
from prizeflow_payouts.domain.approval import ApprovalBook
from prizeflow_payouts.domain.deny import DENIED_DETAIL, NOTHING_DENIED, DenyList
from prizeflow_payouts.domain.gate import GateDecision, Stage, stricter
from prizeflow_payouts.domain.payout import Change, Payout, RequestRefusal
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_runtime.dead_letter import DeadLetter


class CreatePayouts:
    def __init__(
        self,
        *,
        registry: ProviderRegistry,
        approvals: ApprovalBook,
        max_attempts: int,
        source: str,
        metrics: PayoutMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        deny: DenyList = NOTHING_DENIED,
        gate: PayoutGate | None = None,
    ) -> None:
        self.registry = registry
        self.deny = deny
        # The compliance gate (risk policy, sanctions screening), in the transaction of the insert: a payout it
        # holds is created pending_approval with its hold; a failed verification refuses the request.
        self.gate = gate
        self.approvals = approvals
        self.max_attempts = max_attempts
        self.source = source
        self.metrics = metrics
        self.clock = clock
        # The worker of this process, when it runs here (`Payouts.schedule_worker`): auto-approved payouts whose
        # allow already stands at send are stored claimed for it and handed over once this transaction commits.
        self.direct: DirectSends | None = None

    async def execute(
        self, books: Books, commands: Sequence[CreatePayoutCommand], *, channel: str = "kafka"
    ) -> list[Created]:
        """In the caller's transaction (`books`). Raises `PayoutConflictError` (a different body under a used key,
        request id or claim)."""
        now = self.clock()
        hashes = {id(c): c.body_hash() for c in commands}
        unique = self._unique(commands, hashes, channel)
        outcome, fresh = await self._known(books, unique, hashes, channel)
        refused = await self._create(books, fresh, hashes, outcome, channel=channel, now=now)
        stored = {r.command.claim_id for r in await self._refuse(books, refused, now)}
        await self._record_refusals([r for r in refused if r.command.claim_id in stored], books, now)
        late = [r for r in refused if r.command.claim_id not in stored]
        known = await books.payouts.find_refusals([r.command.claim_id for r in late]) if late else {}
        for r in refused:
            key = r.command.idempotency_key
            if r.command.claim_id in stored:
                outcome[key] = Created(None, created=True, refused=r.error)
            elif r.command.claim_id in known:  # refused meanwhile by a concurrent consumer
                outcome[key] = self._match_refusal(r.command, known[r.command.claim_id], channel)
            else:  # the claim got a payout meanwhile: judge against it
                again = await books.payouts.find_existing([key], [r.command.payout_request_id], [r.command.claim_id])
                match = self._match(r.command, hashes[id(r.command)], again, channel)
                assert match is not None
                outcome[key] = match
        return [outcome[c.idempotency_key] for c in commands]

    def _unique(
        self, commands: Sequence[CreatePayoutCommand], hashes: dict[int, str], channel: str
    ) -> list[CreatePayoutCommand]:
        """One command per idempotency key (same body twice is one request); a key, request id or claim named
        twice with different bodies refuses the batch."""
        firsts: dict[str, CreatePayoutCommand] = {}
        by_request: dict[str, CreatePayoutCommand] = {}
        for cmd in commands:
            for index, value in ((firsts, cmd.idempotency_key), (by_request, cmd.payout_request_id)):
                seen = index.get(value)
                if seen is None:
                    index[value] = cmd
                elif hashes[id(seen)] != hashes[id(cmd)]:
                    self._refused(channel)
                    raise PayoutConflictError(
                        cmd.idempotency_key,
                        payout_id_for(seen.idempotency_key),
                        f"idempotency key {cmd.idempotency_key!r} / request {cmd.payout_request_id!r} "
                        "was used twice with different bodies",
                    )
        unique = list(firsts.values())
        claims: dict[str, CreatePayoutCommand] = {}
        for cmd in unique:
            seen = claims.setdefault(cmd.claim_id, cmd)
            if seen is not cmd:
                self._refused(channel)
                raise PayoutConflictError(
                    cmd.idempotency_key,
                    payout_id_for(seen.idempotency_key),
                    f"claim {cmd.claim_id} is named by two requests ({seen.payout_request_id!r}, "
                    f"{cmd.payout_request_id!r}): one claim has at most one payout",
                )
        return unique

    async def _known(
        self, books: Books, unique: list[CreatePayoutCommand], hashes: dict[int, str], channel: str
    ) -> tuple[dict[str, Created], list[CreatePayoutCommand]]:
        """Requests that name an existing payout or refusal (answered from it), and the fresh ones."""
        existing = await books.payouts.find_existing(
            [c.idempotency_key for c in unique],
            [c.payout_request_id for c in unique],
            [c.claim_id for c in unique],
        )
        refusals = await books.payouts.find_refusals([c.claim_id for c in unique])
        outcome: dict[str, Created] = {}
        fresh = []
        for cmd in unique:
            known = refusals.get(cmd.claim_id)
            if known is not None:
                outcome[cmd.idempotency_key] = self._match_refusal(cmd, known, channel)
                continue
            match = self._match(cmd, hashes[id(cmd)], existing, channel)
            if match is not None:
                outcome[cmd.idempotency_key] = match
            else:
                fresh.append(cmd)
        return outcome, fresh

    async def _create(
        self,
        books: Books,
        fresh: list[CreatePayoutCommand],
        hashes: dict[int, str],
        outcome: dict[str, Created],
        *,
        channel: str,
        now: datetime,
    ) -> list[Refusal]:
        """Store a payout for each fresh request some provider will pay; returns those none ever will."""
        payouts: list[Payout] = []
        changes: list[Change] = []
        refused: list[Refusal] = []
        for cmd in fresh:
            entry, error = self._screen(cmd)
            if entry is None:
                assert error is not None
                refused.append(Refusal(cmd, error))
                continue
            policy = self.approvals.policy_for(cmd.amount.asset, cmd.amount.amount)
            state = PayoutState.APPROVED if policy is ApprovalPolicy.AUTO else PayoutState.PENDING_APPROVAL
            payouts.append(
                new_payout(
                    cmd,
                    hashes[id(cmd)],
                    provider_name=entry.name,
                    provider_type=entry.type,
                    policy=policy,
                    state=state,
                    max_attempts=self.max_attempts,
                    now=now,
                )
            )
        by_key = {c.idempotency_key: c for c in fresh}
        decisions: dict[str, GateDecision] = {}
        if self.gate is not None and payouts:
            payouts, gated_out = await self._gate(books, payouts, decisions, now)
            refused.extend(Refusal(by_key[rec.idempotency_key], err, gate=d) for rec, err, d in gated_out)
        sends: dict[str, GateDecision | None] = {}
        if self.direct is not None and payouts:
            sends = await straight_to_worker(self.direct, self.gate, books, payouts, decisions)
        if sends or decisions:
            payouts = as_stored(self.direct, payouts, decisions, sends, now)
        inserted = await books.payouts.insert_new(payouts) if payouts else set()
        for rec in payouts:
            cmd = by_key[rec.idempotency_key]
            if rec.id not in inserted:  # a concurrent creator won the race: judge against what it stored
                again = await books.payouts.find_existing(
                    [cmd.idempotency_key], [cmd.payout_request_id], [cmd.claim_id]
                )
                match = self._match(cmd, hashes[id(cmd)], again, channel)
                assert match is not None
                outcome[cmd.idempotency_key] = match
                continue
            changes.append(created_change(rec, source=self.source, now=now))
            outcome[cmd.idempotency_key] = Created(rec.id, created=True)
        await books.payouts.stage(changes, at=now)
        created = [ch.record for ch in changes]
        if self.gate is not None and decisions:
            await self._record(books, [(rec, decisions[rec.id]) for rec in created if rec.id in decisions], now)
            await record_sends(self.gate, books, created, sends, now)
        if self.direct is not None:
            hand_over(self.direct, books, created)
        if self.metrics is not None:
            # A payout sent straight to the worker was approved here (its claim, as a worker pass's, is not counted).
            approved = PayoutState.APPROVED
            moves = Counter(
                (approved.value if ch.to is PayoutState.SUBMITTING else ch.to.value, ch.record.provider_name)
                for ch in changes
            )
            for (to, provider), n in moves.items():
                self.metrics.transitions.labels(to, provider).inc(n)
        return refused

    async def _gate(
        self, books: Books, payouts: list[Payout], decisions: dict[str, GateDecision], now: datetime
    ) -> tuple[list[Payout], list[tuple[Payout, PayoutError, GateDecision]]]:
        """The gate's decision on each new payout: allowed as routed, held (pending_approval, with its hold and the
        approval it needs), or refused (a failed verification)."""
        assert self.gate is not None
        kept: list[Payout] = []
        refused: list[tuple[Payout, PayoutError, GateDecision]] = []
        for rec, d in zip(
            payouts, await self.gate.decide(books, [Candidate(p) for p in payouts], Stage.REQUEST), strict=True
        ):
            decisions[rec.id] = d
            if d.action is Action.REFUSE:
                refused.append((rec, PayoutError.of(PayoutErrorCode.COMPLIANCE_REJECTED, d.player_message or ""), d))
            elif d.action is Action.HOLD:
                assert d.hold is not None
                policy = stricter(rec.approval_policy, d.approval_policy or rec.approval_policy)
                kept.append(
                    replace(
                        rec,
                        state=PayoutState.PENDING_APPROVAL,
                        approval_policy=policy,
                        hold_code=d.hold.value,
                        hold_detail=d.detail or d.hold.value,
                        held_at=now,
                        hold_policy_version=d.policy_version,
                        hold_findings=d.findings,
                    )
                )
            else:
                kept.append(rec)  # its stamp (`d.stamp`) is set with the rest of what it is stored with (`_create`)
        return kept, refused

    async def _record(self, books: Books, decided: Sequence[tuple[Payout, GateDecision]], now: datetime) -> None:
        assert self.gate is not None
        await books.holds.record_decisions(
            [DecisionRecord(rec.id, rec.claim_id, rec.player_id, Stage.REQUEST, d, now) for rec, d in decided]
        )
        self.gate.count(Stage.REQUEST, [d for _, d in decided])

    async def _record_refusals(self, refused: Sequence[Refusal], books: Books, now: datetime) -> None:
        gated = [r for r in refused if r.gate is not None]
        if not gated or self.gate is None:
            return
        await books.holds.record_decisions(
            [
                DecisionRecord(
                    payout_id_for(r.command.idempotency_key),
                    r.command.claim_id,
                    r.command.player_id,
                    Stage.REQUEST,
                    r.gate,
                    now,
                )
                for r in gated
                if r.gate is not None
            ]
        )
        self.gate.count(Stage.REQUEST, [r.gate for r in gated if r.gate is not None])

    async def refuse_unreadable(self, books: Books, letter: DeadLetter) -> None:
        """A payout request that could not be read but names its claim: refuse it for good, so rewards voids
        the reservation now instead of never (unless the claim already has a payout, which settles it)."""
        doc = letter.readable() or {}
        data = doc.get("data")
        if not isinstance(data, dict):
            return
        claim_id, request_id = data.get("claim_id"), data.get("payout_request_id")
        if not (is_identifier(claim_id) and is_identifier(request_id)):
            return
        assert isinstance(claim_id, str)
        assert isinstance(request_id, str)
        if await books.payouts.find_existing([], [], [claim_id]):
            return
        key = data.get("idempotency_key")
        command = CreatePayoutCommand(
            payout_request_id=request_id,
            claim_id=claim_id,
            player_id=str(data.get("player_id") or "unknown")[:128],
            amount=Money(asset="XLM", amount=0),  # unread: only the claim and the request id are trusted here
            destination=_UNREAD_DESTINATION,
            idempotency_key=key if isinstance(key, str) and _KEY_RE.fullmatch(key) else f"unreadable:{claim_id}",
            requested_by="unknown",
            provider=None,
            correlation_id=letter.correlation_id or claim_id,
            cause_event_id=str(letter.event_id) if letter.event_id else None,
        )
        error = PayoutError.of(
            PayoutErrorCode.INVALID_REQUEST, f"the payout request could not be read ({letter.reason})"
        )
        await self._refuse(
            books, [Refusal(command, error, request_hash=f"unreadable:{letter.digest.hex()}")], self.clock()
        )

    def _screen(self, cmd: CreatePayoutCommand) -> tuple[ProviderEntry | None, PayoutError | None]:
        """The provider that will pay this request, or why none ever will."""
        if self.deny.denies(cmd.destination):
            return None, PayoutError.of(PayoutErrorCode.DESTINATION_BLOCKED, DENIED_DETAIL)
        try:
            entry = self.registry.route(cmd.amount.asset, cmd.destination.type, cmd.provider, cmd.amount.amount)
        except NoRouteError as err:
            return None, PayoutError.of(PayoutErrorCode.NO_PROVIDER_ROUTE, str(err))
        if (validator := entry.rail.validator) is not None:
            error = validator.validate(
                PayoutInstruction(
                    payout_id=payout_id_for(cmd.idempotency_key),
                    idempotency_key=cmd.idempotency_key,
                    amount=cmd.amount,
                    destination=cmd.destination,
                )
            )
            if error is not None:
                if error.retryable:  # a validator's verdict is about the request itself: final
                    error = PayoutError.of(PayoutErrorCode.INVALID_REQUEST, error.message, provider=entry.name)
                return None, error
        return entry, None

    async def _refuse(self, books: Books, refused: Sequence[Refusal], now: datetime) -> list[Refusal]:
        """Store refusals (one per claim: a claim with a refusal never gets a payout, nor the reverse) and
        announce each new one, in this transaction."""
        if not refused:
            return []
        stored = await books.payouts.insert_refusals(
            [
                RequestRefusal(
                    claim_id=r.command.claim_id,
                    payout_request_id=r.command.payout_request_id,
                    idempotency_key=r.command.idempotency_key,
                    request_hash=r.body_hash,
                    code=r.error.code.value,
                    detail=r.error.message[:1000],
                    correlation_id=r.command.correlation_id,
                    refused_at=now,
                )
                for r in refused
            ]
        )
        new = [r for r in refused if r.command.claim_id in stored]
        await books.payouts.add_events(
            [
                new_event(
                    PayoutRequestRefused(
                        payout_request_id=r.command.payout_request_id,
                        claim_id=r.command.claim_id,
                        code=r.error.code,
                        detail=r.error.message[:1000],
                        refused_at=now,
                    ),
                    source=self.source,
                    correlation_id=r.command.correlation_id,
                    causation_id=r.command.cause_event_id,
                    subject=r.command.claim_id,
                    event_id=refusal_event_id(r.command.claim_id),
                )
                for r in new
            ],
        )
        if self.metrics is not None:
            for r in new:
                self.metrics.requests_refused.labels(r.error.code.value).inc()
        return new

    def _match_refusal(self, cmd: CreatePayoutCommand, known: RequestRefusal, channel: str) -> Created:
        if known.request_hash != cmd.body_hash():
            self._refused(channel)
            raise PayoutConflictError(
                cmd.idempotency_key,
                "",
                f"claim {cmd.claim_id}'s payout request {known.payout_request_id!r} was refused "
                f"({known.code}); a different request for it cannot be paid either",
            )
        return Created(None, created=False, refused=PayoutError.of(PayoutErrorCode(known.code), known.detail))

    def _match(
        self, cmd: CreatePayoutCommand, body_hash: str, existing: Sequence[Payout], channel: str
    ) -> Created | None:
        for rec in existing:
            if (
                rec.idempotency_key == cmd.idempotency_key
                or rec.payout_request_id == cmd.payout_request_id
                or rec.claim_id == cmd.claim_id
            ):
                if rec.request_hash != body_hash:
                    self._refused(channel)
                    raise PayoutConflictError(
                        cmd.idempotency_key,
                        rec.id,
                        f"payout {rec.id} already exists for idempotency key {rec.idempotency_key!r} / request "
                        f"{rec.payout_request_id!r} with a different body",
                    )
                if self.metrics is not None:
                    self.metrics.duplicates_replayed.labels(channel).inc()
                return Created(rec.id, created=False)
        return None

    def _refused(self, channel: str) -> None:
        if self.metrics is not None:
            self.metrics.duplicates_refused.labels(channel).inc()


_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)
_UNREAD_DESTINATION = PayoutDestination(type=DestinationType.MANUAL, address="unread")


__all__ = ["CreatePayouts"]
