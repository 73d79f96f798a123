"""The chart of accounts: how each flow names its accounts (docs/architecture.md §4)."""

from __future__ import annotations

from typing import Final

from prizeflow_rewards.domain.ledger import AccountKind, AccountRef

PLATFORM: Final = "platform"
EXTERNAL: Final = "external"


def wallet(player_id: str, asset: str) -> AccountRef:
    return AccountRef(AccountKind.PLAYER_WALLET, player_id, asset)


def pool(campaign_id: str, asset: str) -> AccountRef:
    return AccountRef(AccountKind.CAMPAIGN_POOL, campaign_id, asset)


def treasury(asset: str) -> AccountRef:
    return AccountRef(AccountKind.TREASURY, PLATFORM, asset)


# How many payout clearing accounts each asset has. A claim batch credits whichever one no other transaction holds
# (the poll of payout outcomes, an operator's session): one held account no longer holds up every claim in the asset.
# A claim records its shard (`claims.clearing_shard`); its outcome moves money on that one. Raising it is safe (a
# claim keeps the shard it recorded); lowering it leaves the higher shards' reservations to settle where they are.
CLEARING_SHARDS: Final = 8


def clearing(asset: str, shard: int = 0) -> AccountRef:
    """The asset's payout clearing account `shard` (0: `platform`, the one account there was before shards)."""
    if not 0 <= shard < CLEARING_SHARDS:
        raise ValueError(f"no clearing shard {shard}: 0..{CLEARING_SHARDS - 1}")
    return AccountRef(AccountKind.PAYOUT_CLEARING, PLATFORM if shard == 0 else f"{PLATFORM}.{shard}", asset)


def shard_of(ref: AccountRef) -> int:
    """Which shard of its asset's clearing account `ref` is."""
    if ref.kind is not AccountKind.PAYOUT_CLEARING:
        raise ValueError(f"{ref.kind.value} is not a payout clearing account")
    return 0 if ref.owner == PLATFORM else int(ref.owner.removeprefix(f"{PLATFORM}."))


def clearing_shards(asset: str) -> list[AccountRef]:
    """Every payout clearing account of the asset, shard 0 first."""
    return [clearing(asset, k) for k in range(CLEARING_SHARDS)]


def external(provider: str, asset: str) -> AccountRef:
    """Money outside the platform, per rail (a provider, or `external` for entry fees paid off-platform)."""
    return AccountRef(AccountKind.PROVIDER_EXTERNAL, provider, asset)


def provider_clearing(provider: str, asset: str) -> AccountRef:
    """What a checkout provider collected from players for us (top-ups), net of what it paid back (refunds,
    disputes). Not `external`: that one is money that left the platform (payouts) or arrived off-platform (admin
    top-ups, recorded entry fees); this one is reconciled against the provider's own balance of checkouts."""
    return AccountRef(AccountKind.PROVIDER_CLEARING, provider, asset)


def receivable(player_id: str, asset: str) -> AccountRef:
    """What a player owes: the part of a top-up's refund or dispute their wallet could no longer cover."""
    return AccountRef(AccountKind.PLAYER_RECEIVABLE, player_id, asset)


def escrow(round_id: str, asset: str) -> AccountRef:
    """A round's entry fees between the entry and the round's outcome. One account per round, which may never
    pay out more than it took in (the ledger's CHECK): a round's fees, pot prizes and refunds can only spend
    what that round's entries paid."""
    return AccountRef(AccountKind.ENTRY_ESCROW, round_id, asset)


def platform_revenue(account_id: str, asset: str) -> AccountRef:
    return AccountRef(AccountKind.PLATFORM_REVENUE, account_id, asset)


def organizer_revenue(account_id: str, asset: str) -> AccountRef:
    return AccountRef(AccountKind.ORGANIZER_REVENUE, account_id, asset)
