"""Wallet top-ups (an admin's audited credit) and the game's risk flag on a player (the reads are
`queries.RewardsQueries`). Each runs in one transaction of its own (`uow.run`), with its audit event."""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.common import audit, count_transfers, ledger_refusals
from prizeflow_rewards.application.figures import Figures, wallet_balances
from prizeflow_rewards.application.queries import CursorError, decode_cursor, encode_cursor
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Transfer, TransferKind
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.principal import Principal
from prizeflow_runtime.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class Credited:
    transfer_id: str
    applied: bool  # False: this provider reference credited the wallet before (nothing moved now)
    balances: list[Figures]  # the player's wallets as the credit left them


@dataclass
class TopUp:
    """provider external → wallet, keyed by the provider's reference (one reference credits once)."""

    uow: UnitOfWork[Books]
    source: str
    metrics: RewardsMetrics | None = None

    async def __call__(
        self,
        actor: Principal,
        *,
        player_id: str,
        asset: str,
        amount: int,
        provider: str,
        reference: str,
        correlation_id: str,
    ) -> Credited:
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

        async def credit(books: Books) -> Credited:
            with ledger_refusals():
                result = await books.ledger.apply([t])
            count_transfers(self.metrics, result)
            if result.applied:
                await audit(
                    books.outbox,
                    source=self.source,
                    actor=actor,
                    action="wallet.top_up",
                    target_type="wallet",
                    target_id=player_id,
                    correlation_id=correlation_id,
                    after={"asset": asset, "amount": amount, "provider": provider, "reference": reference},
                )
            return Credited(str(t.id), bool(result.applied), await wallet_balances(books, player_id))

        return await self.uow.run(credit)


@dataclass
class SetRiskFlag:
    """The game (or ops) flags a player: their claims are then held for a person to decide."""

    uow: UnitOfWork[Books]
    source: str

    async def __call__(
        self, actor: Principal, *, player_id: str, flagged: bool, reason: str | None, correlation_id: str
    ) -> None:
        if actor.user_id == player_id:  # cleared by its own subject, the flag would stop holding their claims
            raise UseCaseError(ErrorKind.FORBIDDEN, "self_review", "nobody sets or clears their own risk flag")

        async def flag(books: Books) -> None:
            await books.players.set_risk_flag(player_id, flagged=flagged, reason=reason, by=actor.user_id)
            await audit(
                books.outbox,
                source=self.source,
                actor=actor,
                action="player.risk_flag",
                target_type="player",
                target_id=player_id,
                correlation_id=correlation_id,
                reason=reason,
                after={"flagged": str(flagged).lower()},
            )

        await self.uow.run(flag)


__all__ = ["Credited", "CursorError", "SetRiskFlag", "TopUp", "decode_cursor", "encode_cursor"]
