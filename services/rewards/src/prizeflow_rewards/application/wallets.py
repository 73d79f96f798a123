"""Wallet top-ups and the game's risk flag on a player (the reads are `queries.RewardsQueries`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prizeflow_rewards.application.common import audit, count_transfers, ledger_refusals
from prizeflow_rewards.application.ports import Ledger, Stores, Tx
from prizeflow_rewards.application.queries import CursorError, decode_cursor, encode_cursor
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Transfer, TransferKind
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.principal import Principal


@dataclass
class TopUp:
    """provider external → wallet, keyed by the provider's reference (one reference credits once)."""

    ledger: Ledger
    source: str
    metrics: RewardsMetrics | None = None
    stores: Stores = field(kw_only=True)

    async def __call__(
        self,
        tx: Tx,
        actor: Principal,
        *,
        player_id: str,
        asset: str,
        amount: int,
        provider: str,
        reference: str,
        correlation_id: str,
    ) -> tuple[str, bool]:
        if actor.user_id == player_id:  # an admin credit has one person behind it: never to themselves
            raise UseCaseError(ErrorKind.FORBIDDEN, "self_credit", "nobody credits their own wallet")
        t = Transfer.of(
            accounts.external(provider, asset),
            accounts.wallet(player_id, asset),
            amount,
            TransferKind.TOP_UP,
            provider,
            reference,
            correlation_id=correlation_id,
        )
        with ledger_refusals():
            result = await self.ledger.apply(tx, [t])
        count_transfers(self.metrics, result)
        if result.applied:
            await audit(
                self.stores.outbox,
                tx,
                source=self.source,
                actor=actor,
                action="wallet.top_up",
                target_type="wallet",
                target_id=player_id,
                correlation_id=correlation_id,
                after={"asset": asset, "amount": amount, "provider": provider, "reference": reference},
            )
        return str(t.id), bool(result.applied)


@dataclass
class SetRiskFlag:
    """The game (or ops) flags a player: their claims are then held for a person to decide."""

    source: str
    stores: Stores = field(kw_only=True)

    async def __call__(
        self, tx: Tx, actor: Principal, *, player_id: str, flagged: bool, reason: str | None, correlation_id: str
    ) -> None:
        if actor.user_id == player_id:  # cleared by its own subject, the flag would stop holding their claims
            raise UseCaseError(ErrorKind.FORBIDDEN, "self_review", "nobody sets or clears their own risk flag")
        await self.stores.players.set_risk_flag(tx, player_id, flagged=flagged, reason=reason, by=actor.user_id)
        await audit(
            self.stores.outbox,
            tx,
            source=self.source,
            actor=actor,
            action="player.risk_flag",
            target_type="player",
            target_id=player_id,
            correlation_id=correlation_id,
            reason=reason,
            after={"flagged": str(flagged).lower()},
        )


__all__ = ["CursorError", "SetRiskFlag", "TopUp", "decode_cursor", "encode_cursor"]
