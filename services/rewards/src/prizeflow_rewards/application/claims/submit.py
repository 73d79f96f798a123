"""SubmitClaim: players claim redeemable balances to payout destinations, a batch of requests at a time.

Claims are checked under their wallets' row locks (concurrent claims on one wallet queue, none overdraws it),
taken with the clearing accounts their reservations credit. The batch waits for no row: a player whose wallet or
verification lock another transaction holds is not waited for, and each asset's reservations credit whichever of
its clearing shards (`accounts.CLEARING_SHARDS`) no other transaction holds (the poll of payout outcomes, an
operator's session hold one at a time, never the asset's claims). Requests it cannot take a row for are deferred,
to be decided in a transaction of their own that waits for their wallets (`wait=True`).
The operators' risk policy (`prizeflow_contracts.policy.evaluate`, the version payouts last published) is
applied with the settings' limits, which stay a floor. An approved or held claim reserves its amount with a pending
transfer wallet → clearing; approval emits ClaimApproved + PayoutRequested, a hold ClaimHeld.

Every answer is what the batch wrote: a request naming a claim made earlier in the batch (the same key again)
is answered once the batch knows whether that claim is written (`_answers`), never before.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final, cast

from prizeflow_contracts.money import ASSETS
from prizeflow_contracts.policy import RiskPolicy, VerificationStatus, evaluate
from prizeflow_contracts.providers import MEMO_TYPES, PayoutDestination, destination_key
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.claims.batch import (
    Asked,
    Claimed,
    ClaimOutcome,
    ClaimRequest,
    Deferred,
    IntakeBatch,
    claim_body,
    same_key,
)
from prizeflow_rewards.application.claims.policy import ClaimPolicy
from prizeflow_rewards.application.claims.shared import ClaimError, policy_facts
from prizeflow_rewards.application.common import Clock, count_transfers, ledger_refusals, utcnow
from prizeflow_rewards.application.fx import quote_refusal
from prizeflow_rewards.application.ports import IntakeFacts, IntakeQuery
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.claims import (
    Claim,
    ClaimFacts,
    ClaimStatus,
    Hold,
    RefusalCode,
    Refuse,
    assess,
)
from prizeflow_rewards.domain.fx import Conversion, QuoteRefusal, check
from prizeflow_rewards.domain.ledger import AccountRef, Balance, LedgerError, pending_room
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.group_commit import Culprits
from prizeflow_runtime.principal import Principal

log = logging.getLogger(__name__)
# How long a deferred request's transaction tries again for a clearing shard when every shard of its asset is held.
SHARD_WAIT_S: Final = 2.0


def claim_id_for(player_id: str, idempotency_key: str | None) -> str:
    """One claim per (player, Idempotency-Key); a request without a key is a new claim."""
    if idempotency_key:
        return "cl-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"prizeflow:claim:{player_id}:{idempotency_key}"))
    return f"cl-{uuid.uuid4()}"


@dataclass
class SubmitClaim:
    """Decides a batch of claim requests in the caller's ONE transaction, its `books` (group commit: `ClaimIntake`).

    One ordered lock of every wallet and clearing account the batch touches, one read of every fact the rules
    need (`ClaimRepository.intake_facts`), the decisions in memory in arrival order (a request sees the ones
    before it in the batch as if they had committed first: the wallet they drew on, the day's total, the
    velocity count, the destination's first use), then one ledger batch of reservations and one write per table.
    Each request gets its own outcome; a refused one writes nothing and leaves the others alone.
    """

    policy: ClaimPolicy
    source: str
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow

    async def __call__(
        self,
        books: Books,
        actor: Principal,
        *,
        player_id: str,
        asset: str,
        amount: int,
        destination: PayoutDestination,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        quote_id: str | None = None,
        market: Decimal | None = None,
    ) -> Claimed:
        """One request alone: (claim, created), or its refusal raised (`ClaimError`); then nothing is written."""
        request = ClaimRequest(
            actor, player_id, asset, amount, destination, idempotency_key, correlation_id, quote_id, market
        )
        with ledger_refusals():
            try:
                [outcome] = await self.decide(books, [request], wait=True)
            except Culprits as err:  # alone in its batch: its own error
                [fault] = err.failed.values()
                raise fault from None
        if isinstance(outcome, Deferred):  # it counted on a claim of its batch that could not be written
            raise ClaimError(ErrorKind.UNAVAILABLE, "transaction_contended", "retry shortly; nothing was written")
        if isinstance(outcome, UseCaseError):
            raise outcome
        return outcome

    async def decide(self, books: Books, requests: Sequence[ClaimRequest], *, wait: bool = False) -> list[ClaimOutcome]:
        """One outcome per request, in order. Raises only for what fails the whole batch (the database). `wait`:
        the requests were deferred; wait for their players' rows (up to the lock timeout) instead of deferring."""
        outcomes: list[ClaimOutcome | None] = [None] * len(requests)
        asked: list[Asked] = []
        for i, r in enumerate(requests):
            if r.asset not in ASSETS:
                outcomes[i] = self._refuse(
                    RefusalCode.UNKNOWN_ASSET, f"unknown asset {r.asset!r}; known: {', '.join(sorted(ASSETS))}"
                )
            elif r.amount <= 0:
                outcomes[i] = ClaimError(
                    ErrorKind.INVALID, "invalid_amount", "amount must be a positive integer of minor units"
                )
            elif r.destination.memo is not None and r.destination.type not in MEMO_TYPES:
                outcomes[i] = self._refuse(
                    RefusalCode.MEMO_NOT_ACCEPTED, f"a {r.destination.type.value} destination takes no memo"
                )
            else:
                asked.append(Asked(i, r, claim_id_for(r.player_id, r.idempotency_key), destination_key(r.destination)))
        if asked:
            for i, outcome in (await self._decide(books, asked, wait=wait)).items():
                outcomes[i] = outcome
        assert all(o is not None for o in outcomes)
        return cast("list[ClaimOutcome]", outcomes)

    async def _decide(self, books: Books, asked: list[Asked], *, wait: bool) -> dict[int, ClaimOutcome]:
        # First the players' verification locks (shared: a verification change waits for this batch, or the batch
        # for it, so a claim never waits for a verification that already happened), with the policy and their
        # statuses. Then the wallets, which serialize each player's claims in each asset (the facts read below
        # cannot go stale), and one free clearing shard of each asset. A batch waits for neither lock of a player
        # that another transaction holds, nor for a clearing shard: that player's requests, or the asset's when all
        # of its shards are held, are deferred. Deferred requests (`wait`) wait for their wallets (first without
        # holding any account, then in the one order) and take a free shard as the batch does; if every shard of
        # the asset is held still, they go round their lane again.
        players = sorted({a.request.player_id for a in asked})
        wallets = {accounts.wallet(a.request.player_id, a.request.asset) for a in asked}
        busy: set[str] = set()
        if wait:
            policy, verification = await books.compliance.intake(players)
            await books.ledger.wait_free(wallets)
            assets = sorted({a.request.asset for a in asked})
            balances, _ = await books.ledger.lock_unless_busy(
                wallets, unless_busy=(), one_free_of=[self.policy.shards(x) for x in assets]
            )
            balances |= await self._any_shard(books, assets, balances)
        else:
            policy, verification, busy = await books.compliance.intake_unless_busy(players)
            free = [a for a in asked if a.request.player_id not in busy]
            assets = sorted({a.request.asset for a in free})
            balances, held = await books.ledger.lock_unless_busy(
                (),
                unless_busy={accounts.wallet(a.request.player_id, a.request.asset) for a in free},
                one_free_of=[self.policy.shards(x) for x in assets],
            )
            busy |= {wallet.owner for wallet in held}  # every request of the player: theirs stay in arrival order
        # The clearing account each asset's reservations credit in this batch: the first of its shards no other
        # transaction held. An asset whose shards were all held has none: its requests wait in their lanes.
        clearing = {x: next((c for c in self.policy.shards(x) if c in balances), None) for x in assets}
        outcomes: dict[int, ClaimOutcome] = {
            a.index: Deferred(a.request.player_id)
            for a in asked
            if a.request.player_id in busy or clearing.get(a.request.asset) is None
        }
        ready = [a for a in asked if a.index not in outcomes]
        if not ready:
            return outcomes
        now = self.clock()
        # The batch's quotes, locked in id order with one statement (each is its player's: their wallet's lock,
        # held already, keeps any other claim of theirs out), so what a payout would pay is known for its route.
        quotes = await books.fx.lock_many({a.request.quote_id for a in ready if a.request.quote_id})
        paying = {q.id: (q.terms.pair.target, q.terms.target_amount) for q in quotes.values()}
        facts = await books.claims.intake_facts(
            [
                IntakeQuery(
                    a.claim_id,
                    a.request.player_id,
                    a.request.asset,
                    a.request.amount,
                    a.request.destination.type.value,
                    a.destination_key,
                    *paying.get(a.request.quote_id or "", (None, None)),
                )
                for a in ready
            ],
            day=now - timedelta(days=1),
            velocity=now - timedelta(seconds=self.policy.velocity_window_s),
            window=now - timedelta(seconds=self.policy.rejection_rate_window_s),
            now=now,
            windows=sorted(policy.windows()),
        )
        batch = IntakeBatch(balances, quotes=quotes)
        culprits: dict[int, BaseException] = {}
        for a, known in zip(ready, facts, strict=True):
            status = verification.get(a.request.player_id, VerificationStatus.NOT_STARTED)
            shard = clearing[a.request.asset]
            assert shard is not None
            try:
                outcomes[a.index] = self._one(a, known, batch, now, policy, status, shard)
            except Exception as err:  # noqa: BLE001 - this request's fault: the batch is decided again without it
                culprits[a.index] = err
        if culprits:  # nothing is written: the group commit answers these and commits the rest again, once
            raise Culprits(culprits)
        if batch.claims:
            await self._reserve(books, batch)
        if batch.claims:
            await books.claims.add_many(batch.claims, batch.first_uses)
            await books.fx.bind_many(
                [(c.conversion.quote_id, c.id) for c in batch.claims if c.conversion is not None], at=now
            )
            await books.outbox.stage(batch.events)
        self._answers(batch, outcomes)
        return outcomes

    async def _any_shard(
        self, books: Books, assets: list[str], balances: dict[AccountRef, Balance]
    ) -> dict[AccountRef, Balance]:
        """For the assets none of whose clearing shards was free: wait until one is, by trying again (never by
        waiting on one: the wallets are held, and a lock wait there could close a cycle with a poll of outcomes),
        for up to `SHARD_WAIT_S`; a poll holding every shard of an asset holds them for milliseconds. What is still
        missing then is deferred again (the lane's next round)."""
        taken: dict[AccountRef, Balance] = {}
        delay, waited = 0.005, 0.0
        while waited < SHARD_WAIT_S:
            short = [x for x in assets if not any(c in balances or c in taken for c in self.policy.shards(x))]
            if not short:
                break
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.2)
            taken |= await books.ledger.take_one_free([self.policy.shards(x) for x in short])
        return taken

    def _one(  # noqa: PLR0917 - the request, what is known of it, and the policy it meets
        self,
        a: Asked,
        known: IntakeFacts,
        batch: IntakeBatch,
        now: datetime,
        policy: RiskPolicy,
        verification: VerificationStatus,
        clearing: AccountRef,
    ) -> ClaimOutcome:
        """One request, decided in memory against the store's facts and the batch's requests before it; an approved
        or held claim reserves on `clearing` (the shard of its asset's clearing account the batch holds)."""
        r = a.request
        if a.claim_id in batch.made:  # the same key earlier in this batch: answered once the batch knows its fate
            batch.repeats.append(a)
            return same_key(batch.made[a.claim_id], a)
        if known.existing is not None:
            return same_key(known.existing, a)
        conversion = None
        if r.quote_id is not None:
            if (refusal := self._quote(a, batch, now)) is not None:
                batch.judged.append(a)
                return quote_refusal(refusal)
            conversion = Conversion.of(batch.quotes[r.quote_id])
        wallet = accounts.wallet(r.player_id, r.asset)
        history = known.history
        seen = known.destination_first_seen or batch.first_seen.get((r.player_id, a.destination_key))
        facts = ClaimFacts(
            asset=r.asset,
            redeemable=ASSETS[r.asset].redeemable,
            amount=r.amount,
            available=batch.balances[wallet].available - batch.reserved.get(wallet, 0),
            claimed_today=history.claimed_today + batch.claimed.get((r.player_id, r.asset), 0),
            claims_in_velocity_window=history.recent + batch.made_by.get(r.player_id, 0),
            destination_age_s=(now - seen).total_seconds() if seen is not None else None,
            risk_flagged=known.risk_flagged,
            recent_decided=history.decided,
            recent_failed=history.failed,
            routable=known.routable,
            review_all=self.policy.review_all_until is not None and now < self.policy.review_all_until,
            room=pending_room(batch.after(wallet), batch.after(clearing)),
        )
        verdict = evaluate(
            policy,
            policy_facts(
                known,
                asset=r.asset,
                amount=r.amount,
                destination_type=r.destination.type,
                verification=verification,
                destination_age_s=facts.destination_age_s,
                player_amount=batch.claimed.get((r.player_id, r.asset), 0),
                player_claims=batch.made_by.get(r.player_id, 0),
                destination_amount=batch.to_destination.get((a.destination_key, r.asset), 0),
            ),
        )
        decision = assess(facts, self.policy.limits(r.asset), verdict)
        if isinstance(decision, Refuse):
            if decision.staff_detail:  # the numbers stay with staff: the player's detail names none
                log.info("claim refused (%s): %s", decision.code.value, decision.staff_detail)
            batch.judged.append(a)
            return self._refuse(decision.code, decision.detail)
        held = decision if isinstance(decision, Hold) else None
        correlation_id = r.correlation_id or a.claim_id
        claim = Claim(
            id=a.claim_id,
            player_id=r.player_id,
            asset=r.asset,
            amount=r.amount,
            destination=r.destination.model_dump(mode="json"),
            status=ClaimStatus.HELD if held else ClaimStatus.APPROVED,
            hold_code=held.code.value if held else None,
            hold_detail=held.detail if held else None,
            rejection_code=None,
            payout_request_id=f"pr-{a.claim_id}",
            correlation_id=correlation_id,
            created_at=now,
            destination_key=a.destination_key,
            policy_version=verdict.policy_version,
            conversion=conversion,
            clearing_shard=accounts.shard_of(clearing),
        )
        batch.add(claim, wallet, decision, requested_by=r.actor.user_id, source=self.source, now=now)
        batch.maker[claim.id] = a
        return claim, True

    def _quote(self, a: Asked, batch: IntakeBatch, now: datetime) -> QuoteRefusal | None:
        """Whether the request's quote holds: as `fx.check` says, and not locked by a claim made earlier in the
        batch (each quote backs one claim)."""
        r = a.request
        assert r.quote_id is not None
        if batch.quoted.get(r.quote_id, a.claim_id) != a.claim_id:
            return QuoteRefusal.QUOTE_USED
        return check(
            batch.quotes.get(r.quote_id),
            claim_id=a.claim_id,
            player_id=r.player_id,
            asset=r.asset,
            amount=r.amount,
            market=r.market,
            max_move_bps=self.policy.fx_max_move_bps,
            now=now,
        )

    async def _reserve(self, books: Books, batch: IntakeBatch) -> None:
        """The batch's reservations in one ledger batch. The locks and the running balances make a refusal of the
        ledger unreachable for this batch's own claims (the CHECK constraints make it safe), but a reservation may
        be another transaction's: the same key sent to another replica with another asset (another wallet, so no
        lock of this batch's kept it out), committed after this batch read its facts. Whatever was not written,
        the claims as committed are read back (one read) and those claims answered from them (`batch.elsewhere`);
        the rest is applied again. Should the ledger still refuse, each reservation is tried alone, in the same
        transaction, and a claim it refuses is refused with the code its cause has (`batch.refused`)."""
        for _ in range(2):
            try:
                result = await books.ledger.apply([c.pending for c in batch.claims])
            except LedgerError:
                result = None
            if result is not None and not result.duplicates:
                count_transfers(self.metrics, result)
                batch.count(self.metrics)
                return
            committed = await books.claims.find([c.id for c in batch.claims])
            if result is not None:  # applied, but some reservation was there already: its claim is committed
                count_transfers(self.metrics, result)
                already = {t.id for t in result.duplicates}
                batch.committed_elsewhere(
                    {c.id: committed[c.id] for c in batch.claims if c.pending.id in already and c.id in committed}
                )
                if any(c.pending.id in already for c in batch.claims):
                    raise LedgerError("integrity_error", "a reservation exists without its claim")
                batch.count(self.metrics)
                return
            if not committed:
                break
            batch.committed_elsewhere(committed)
            if not batch.claims:
                return
        culprits: dict[int, BaseException] = {}
        for claim in list(batch.claims):
            try:
                count_transfers(self.metrics, await books.ledger.apply([claim.pending]))
            except LedgerError as err:
                if err.code == "transfer_conflict" and (found := await books.claims.find([claim.id])):
                    batch.committed_elsewhere(found)
                    continue
                try:
                    batch.refuse(claim.id, self._ledger_refusal(err))
                except LedgerError as fault:  # no refusal of the claim: a fault its request alone brings
                    culprits[batch.maker[claim.id].index] = fault
        if culprits:
            raise Culprits(culprits)
        batch.count(self.metrics)

    def _ledger_refusal(self, err: LedgerError) -> ClaimError:
        """A reservation the ledger refused, as the claim's refusal with the code the README names for its cause;
        anything else is no refusal of the claim but a fault (raised: `_reserve` names its request as the batch's
        culprit, answered with it while the rest is committed again)."""
        if err.code == "exceeds_credits":
            return self._refuse(RefusalCode.INSUFFICIENT_BALANCE, "the balance does not cover this claim")
        if err.code == "amount_out_of_range":
            return self._refuse(
                RefusalCode.AMOUNT_OUT_OF_RANGE,
                "this claim would take the platform's ledger past its int64 range; claim a smaller amount",
            )
        raise err

    def _answers(self, batch: IntakeBatch, outcomes: dict[int, ClaimOutcome]) -> None:
        """The answers of the requests whose claim the batch did not write after all, derived from what it did:
        a claim committed by another transaction answers its maker and every request naming it as the idempotency
        rule says; a claim refused answers its maker, and the repeats of the same request, with its refusal; a
        request under that key with another body, and every refusal of the rules decided after the first claim
        not written (it counted on that claim: a balance drawn, a limit's sum), is decided again (`Deferred`)."""
        if not batch.elsewhere and not batch.refused:
            return
        first = min(batch.maker[c].index for c in (*batch.elsewhere, *batch.refused))
        for claim_id, stored in batch.elsewhere.items():
            outcomes[batch.maker[claim_id].index] = same_key(stored, batch.maker[claim_id])
        for claim_id, refusal in batch.refused.items():
            outcomes[batch.maker[claim_id].index] = refusal
        for a in batch.repeats:
            if a.claim_id in batch.elsewhere:
                outcomes[a.index] = same_key(batch.elsewhere[a.claim_id], a)
            elif a.claim_id in batch.refused:
                maker = batch.maker[a.claim_id]
                same = claim_body(maker.request, maker.destination_key) == claim_body(a.request, a.destination_key)
                outcomes[a.index] = batch.refused[a.claim_id] if same else Deferred(a.request.player_id)
        for a in batch.judged:
            if a.index > first:
                outcomes[a.index] = Deferred(a.request.player_id)

    async def confirm(
        self, books: Books, requests: Sequence[ClaimRequest], outcomes: Sequence[ClaimOutcome]
    ) -> list[ClaimOutcome | None]:
        """After a COMMIT whose outcome is unknown (its connection was lost, and its transaction has ended since),
        each request's answer as the database has it: a claim an outcome names is the answer if it is there as the
        request asked (created as decided), `idempotency_key_reused` if another body holds its key, None if it is
        not there (the batch wrote nothing). A refusal wrote nothing and a deferred request was not decided: those
        stand. One read, whatever the batch."""
        named = {o[0].id for o in outcomes if isinstance(o, tuple)}
        stored = await books.claims.find(named)
        answers: list[ClaimOutcome | None] = []
        for r, outcome in zip(requests, outcomes, strict=True):
            found = stored.get(outcome[0].id) if isinstance(outcome, tuple) else None
            if not isinstance(outcome, tuple):
                answers.append(outcome)
            elif found is None:
                answers.append(None)
            else:
                answer = same_key(found, Asked(-1, r, found.id, destination_key(r.destination)))
                answers.append((found, outcome[1]) if isinstance(answer, tuple) else answer)
        return answers

    def _refuse(self, code: RefusalCode, detail: str) -> ClaimError:
        if self.metrics is not None:
            self.metrics.claims.labels(f"refused_{code.value}").inc()
        return ClaimError(ErrorKind.INVALID, code.value, detail)


__all__ = ["ClaimOutcome", "ClaimPolicy", "ClaimRequest", "Claimed", "Deferred", "SubmitClaim", "claim_id_for"]
