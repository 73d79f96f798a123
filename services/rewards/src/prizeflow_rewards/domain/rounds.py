"""What a round's money is (pure): the transfers settlement's decisions make (entry fees into the round's escrow,
prizes, fee revenue, refunds of a voided round) and every account an event may move, so a whole consumer poll's
accounts are known before any of it is applied. Transfer ids come from round/entry/player keys: a decision
delivered twice moves money once."""

from __future__ import annotations

import uuid
from typing import Any

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.events.game import PaidVia, PrizeSource
from prizeflow_contracts.events.settlement import EntryAccepted, FeeParty, RoundSettled, RoundVoided
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import AccountRef, Transfer, TransferKind, transfer_id


def allocation_id(round_id: str, player_id: str) -> str:
    return f"{round_id}:{player_id}"


def entry_fee_id(round_id: str, entry_id: str) -> uuid.UUID:
    """The id `entry_fee` gives the charge of one entry (the same business key)."""
    return transfer_id(f"{TransferKind.ENTRY_FEE.value}|{round_id}|{entry_id}")


def entry_fee(e: EntryAccepted, correlation_id: str | None = None) -> Transfer:
    """The fee of an accepted entry into its round's escrow, keyed by (round, entry): charged once."""
    source = (
        accounts.wallet(e.player_id, e.fee.asset)
        if e.paid_via is PaidVia.WALLET
        else accounts.external(accounts.EXTERNAL, e.fee.asset)
    )
    return Transfer.of(
        source,
        accounts.escrow(e.round_id, e.fee.asset),
        e.fee.amount,
        TransferKind.ENTRY_FEE,
        e.round_id,
        e.entry_id,
        correlation_id=correlation_id,
    )


def _fee_accounts(s: RoundSettled, i: int) -> tuple[AccountRef, AccountRef]:
    f = s.fees[i]
    revenue = (
        accounts.platform_revenue(f.account_id, f.amount.asset)
        if f.party is FeeParty.PLATFORM
        else accounts.organizer_revenue(f.account_id, f.amount.asset)
    )
    return accounts.escrow(s.round_id, f.amount.asset), revenue


def fee_transfer(s: RoundSettled, i: int, correlation_id: str | None = None) -> Transfer:
    """The round's `i`th fee: its escrow → the party's revenue account (the bps split is settlement's)."""
    f = s.fees[i]
    return Transfer.of(
        *_fee_accounts(s, i),
        f.amount.amount,
        TransferKind.FEE_REVENUE,
        s.round_id,
        f.party.value,
        f.account_id,
        f.amount.asset,
        correlation_id=correlation_id,
    )


def fee_transfers(env: Envelope[Any]) -> list[Transfer]:
    return [fee_transfer(env.data, i, env.correlationid) for i in range(len(env.data.fees))]


def prizes(env: Envelope[Any], source: AccountRef) -> list[Transfer]:
    """A settled round's allocations, each `source` (its pool, or its escrow for an entry pot) → the winner's
    wallet, in the round's flow."""
    s: RoundSettled = env.data
    return [
        Transfer.of(
            source,
            accounts.wallet(a.player_id, s.asset),
            a.amount,
            TransferKind.REWARD,
            s.round_id,
            a.player_id,
            correlation_id=env.correlationid,
        )
        for a in s.allocations
    ]


def _refund_accounts(v: RoundVoided, i: int) -> tuple[AccountRef, AccountRef]:
    r = v.refunds[i]
    back = (
        accounts.wallet(r.player_id, r.amount.asset)
        if r.paid_via is PaidVia.WALLET
        else accounts.external(accounts.EXTERNAL, r.amount.asset)
    )
    return accounts.escrow(v.round_id, r.amount.asset), back


def refund(v: RoundVoided, i: int, correlation_id: str | None = None) -> Transfer:
    """The `i`th refund of a voided round: its escrow → the wallet (wallet-paid) or back outside, keyed by entry."""
    r = v.refunds[i]
    return Transfer.of(
        *_refund_accounts(v, i),
        r.amount.amount,
        TransferKind.REFUND,
        v.round_id,
        r.entry_id,
        correlation_id=correlation_id,
    )


def round_accounts(env: Envelope[Any]) -> set[AccountRef]:
    """Every account `RoundMoney.handle` may move money between for this event (a superset: a refused or
    held round touches fewer)."""
    data = env.data
    if isinstance(data, EntryAccepted):
        t = entry_fee(data)
        return {t.debit, t.credit}
    if isinstance(data, RoundVoided):
        return {ref for i in range(len(data.refunds)) for ref in _refund_accounts(data, i)}
    if not isinstance(data, RoundSettled):
        return set()
    out = {accounts.wallet(a.player_id, data.asset) for a in data.allocations}
    for i in range(len(data.fees)):
        out.update(_fee_accounts(data, i))
    if data.prize_source is PrizeSource.ENTRY_POT:
        out.add(accounts.escrow(data.round_id, data.asset))
    elif data.campaign_id is not None:  # paid only from a pool in the round's asset (else refused)
        out.add(accounts.pool(data.campaign_id, data.asset))
    return out


__all__ = [
    "allocation_id",
    "entry_fee",
    "entry_fee_id",
    "fee_transfer",
    "fee_transfers",
    "prizes",
    "refund",
    "round_accounts",
]
