"""The player's wallet over the rewards API, as the signed-in player: balances, history, payout requests, top-ups.

The player is always the viewer (their token's subject), never a parameter someone could change; rewards checks
it again on every call (BOLA guard). Nothing here decides a rule: what may be topped up or claimed is rewards'
answer, shown as it comes. What is here is how it reads to a player: plain words for kinds and states, the
points that can never be paid out kept apart from money, and which states are still moving (polled) or final.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final
from urllib.parse import quote

from prizeflow_console.application.ports import ApiProblem, PlatformApi
from prizeflow_console.domain.holds import verifies_identity
from prizeflow_contracts.money import ASSETS, AssetKind

# What a player may top up (rewards refuses anything else: only redeemable fiat is ever bought).
TOP_UP_ASSETS: Final = tuple(c for c, a in ASSETS.items() if a.kind is AssetKind.FIAT and a.redeemable)

# The ledger's transfer kinds as a player reads them in their history (unknown kinds are shown as they are).
KIND_WORDS: Final[Mapping[str, str]] = {
    "reward": "Prize won",
    "entry_fee": "Entry fee paid",
    "refund": "Entry fee refunded",
    "claim_reserve": "Payout requested",
    "payout_post": "Payout sent",
    "payout_void": "Payout not made",
    "payout_return": "Payout returned by the provider",
    "top_up": "Top-up",
    "top_up_credit": "Top-up",
    "top_up_debit": "Top-up refunded or disputed",
    "top_up_reinstate": "Dispute decided for you, or refund failed: credited back",
    "correction": "Correction",
}


def kind_words(kind: str) -> str:
    return KIND_WORDS.get(kind) or kind.replace("_", " ").capitalize()


def effect(item: Mapping[str, Any]) -> str:
    """What a history item did to the wallet: `in`, `out`, `held` (set aside for a payout: still the player's
    balance, no longer available) or `freed` (a set-aside amount available again: a payout not made). A payout
    request shows once as set aside and once as sent, never as two debits."""
    if item.get("pending"):
        return "held"
    if item.get("resolves") and item.get("kind") == "payout_void":
        return "freed"
    return "in" if item.get("direction") == "in" else "out"


@dataclass(frozen=True, slots=True)
class Progress:
    """A claim's or a top-up's state as a player reads it; `final`: it will not change any more (polling stops)."""

    state: str
    label: str
    text: str
    final: bool
    badge: str = "pending"  # the layout's badge class: pending (moving), paid (done), failed (not done)


def _moving(state: str, label: str, text: str, badge: str = "pending") -> Progress:
    return Progress(state, label, text, final=False, badge=badge)


def _done(state: str, label: str, text: str, badge: str = "failed") -> Progress:
    return Progress(state, label, text, final=True, badge=badge)


# Held says "under review" and nothing more: why rewards held it (a risk flag, velocity, …) stays with the staff.
_UNDER_REVIEW = (
    "A person checks this request before it is paid. The amount stays set aside in your wallet meanwhile; there is "
    "nothing for you to do."
)
_BACK = "The amount is back in your wallet."
CLAIM_PROGRESS: Final[Mapping[str, Progress]] = {
    p.state: p
    for p in (
        _moving("held", "Under review", _UNDER_REVIEW, "held"),
        _moving("approved", "Being paid", "Approved: the payment is on its way to your destination.", "approved"),
        _done("paid", "Paid", "The money was sent to your destination.", "paid"),
        _done("rejected", "Rejected", f"This request was not approved. {_BACK}"),
        _done("voided", "Returned to your wallet", f"The payment could not be made. {_BACK}"),
        _done("returned", "Returned by the provider", f"The payment came back from the provider. {_BACK}"),
    )
}

TOP_UP_PROGRESS: Final[Mapping[str, Progress]] = {
    p.state: p
    for p in (
        _moving("created", "Waiting for payment", "Pay at the checkout; this page updates when the payment arrives."),
        _done("credited", "Paid", "The payment arrived and was added to your wallet.", "paid"),
        _done("failed", "Payment failed", "The payment failed: nothing was added, and nothing will be."),
        _done("expired", "Expired", "The checkout expired unpaid: nothing was added."),
    )
}


def claim_progress(status: str) -> Progress:
    return CLAIM_PROGRESS.get(status) or _moving(status, status.capitalize(), "")


def claim_view(claim: Mapping[str, Any]) -> dict[str, Any]:
    """A claim as the player's pages draw it: its progress, and whether their own identity verification moves it on
    (the page links to it; why else it is held is not said)."""
    return {
        **claim,
        "progress": claim_progress(str(claim.get("status", ""))),
        "verify_identity": verifies_identity(claim),
    }


def top_up_progress(status: str) -> Progress:
    return TOP_UP_PROGRESS.get(status) or _moving(status, status.capitalize(), "")


class Outcome(StrEnum):
    """What a player does at the sandbox provider's checkout (dev profile only)."""

    PAID = "paid"
    EXPIRED = "expired"


SANDBOX: Final = "sandbox"


@dataclass(frozen=True, slots=True)
class Wallet:
    player_id: str
    money: list[dict[str, Any]]  # redeemable assets: balance, reserved, available, incoming_pending
    points: list[dict[str, Any]]  # Season Points and any other non-redeemable asset: never paid out
    receivables: list[dict[str, Any]]  # what the player owes (asset, owed)
    history: list[dict[str, Any]]  # newest first, each with `words`
    next_cursor: str | None
    claims: list[dict[str, Any]]  # newest first, each with its `progress` and `verify_identity`
    problems: list[ApiProblem]  # a part that could not be read is said, never hidden

    @property
    def claimable(self) -> list[dict[str, Any]]:
        """The redeemable balances a payout can be requested from (something available)."""
        return [b for b in self.money if int(b.get("available") or 0) > 0]


def _player_path(player_id: str, rest: str = "") -> str:
    return f"/wallets/{quote(player_id, safe='')}{rest}"


@dataclass(frozen=True)
class ReadWallet:
    apis: PlatformApi

    async def __call__(self, player_id: str, *, token: str, cursor: str | None = None) -> Wallet:
        """Balances, one page of history (`cursor`: an earlier page's `next_cursor`) and the recent payout requests,
        read at once; a part rewards could not answer becomes a problem beside the others."""

        async def read(path: str, query: Mapping[str, str | int | None] | None = None) -> Any:
            try:
                return await self.apis.get("rewards", path, token=token, query=query)
            except ApiProblem as problem:
                return problem

        balances, history, claims = await asyncio.gather(
            read(_player_path(player_id)),
            read(_player_path(player_id, "/transactions"), {"cursor": cursor, "limit": 25}),
            read(_player_path(player_id, "/claims"), {"limit": 10}),
        )
        problems = [a for a in (balances, history, claims) if isinstance(a, ApiProblem)]
        wallet = balances if isinstance(balances, dict) else {}
        held = [b for b in wallet.get("balances") or [] if isinstance(b, dict)]
        page = history if isinstance(history, dict) else {}
        mine = claims if isinstance(claims, dict) else {}
        return Wallet(
            player_id=player_id,
            money=[b for b in held if _redeemable(b.get("asset"))],
            points=[b for b in held if not _redeemable(b.get("asset"))],
            receivables=[r for r in wallet.get("receivables") or [] if isinstance(r, dict) and r.get("owed")],
            history=[
                {**item, "words": kind_words(str(item.get("kind", ""))), "effect": effect(item)}
                for item in page.get("items") or []
                if isinstance(item, dict)
            ],
            next_cursor=page.get("next_cursor"),
            claims=[claim_view(c) for c in mine.get("items") or [] if isinstance(c, dict)],
            problems=problems,
        )


def _redeemable(code: Any) -> bool:
    spec = ASSETS.get(str(code))
    return spec is not None and spec.redeemable


def _mine(problem: ApiProblem) -> bool:
    """Not found, or someone else's: the same answer to the player (whether it exists is not theirs to know)."""
    return problem.status in {403, 404}


@dataclass(frozen=True)
class StartTopUp:
    apis: PlatformApi

    async def __call__(self, player_id: str, *, asset: str, amount: int, request_key: str, token: str) -> str:
        """A checkout session at the wallet's provider (rewards' default); returns the top-up id. The same
        `request_key` (one per rendered form) gets the same session back: a double submit makes one top-up."""
        answer = await self.apis.send(
            "POST",
            "rewards",
            _player_path(player_id, "/top-up-sessions/"),
            token=token,
            body={"asset": asset, "amount": amount},
            headers={"Idempotency-Key": request_key},
        )
        return str(answer["top_up_id"])


@dataclass(frozen=True)
class ShowTopUp:
    apis: PlatformApi

    async def __call__(self, player_id: str, top_up_id: str, *, token: str) -> dict[str, Any] | None:
        """The top-up with its progress; None when the player has no such top-up (or it is someone else's)."""
        try:
            top_up = await self.apis.get(
                "rewards", _player_path(player_id, f"/top-up-sessions/{quote(top_up_id, safe='')}"), token=token
            )
        except ApiProblem as problem:
            if _mine(problem):
                return None
            raise
        if not isinstance(top_up, dict) or top_up.get("player_id") != player_id:
            return None
        return {**top_up, "progress": top_up_progress(str(top_up.get("status", "")))}


@dataclass(frozen=True)
class CheckTopUp:
    apis: PlatformApi

    async def __call__(self, player_id: str, top_up_id: str, *, token: str) -> dict[str, Any]:
        """Back from a provider's checkout: rewards reads the session back from the provider (credits it if paid)."""
        path = _player_path(player_id, f"/top-up-sessions/{quote(top_up_id, safe='')}/verify")
        answer: dict[str, Any] = await self.apis.send("POST", "rewards", path, token=token)
        return answer


@dataclass(frozen=True)
class SandboxCheckout:
    apis: PlatformApi

    async def __call__(self, player_id: str, top_up_id: str, outcome: Outcome, *, token: str) -> dict[str, Any] | None:
        """What the player does at the sandbox provider's checkout (pay, or let it expire), with their own token,
        as a player coming back from a real checkout would; rewards verifies the top-up then. None: no such
        top-up of theirs. Rewards serves the sandbox's checkout in the dev profile only (and refuses the sandbox
        provider in any other), so this exists only there."""
        top_up = await ShowTopUp(self.apis)(player_id, top_up_id, token=token)
        if top_up is None or top_up.get("provider") != SANDBOX:
            return None
        path = f"/sandbox/checkout/{quote(str(top_up['session_ref']), safe='')}/complete"
        answer: dict[str, Any] = await self.apis.send(
            "POST", "rewards", path, token=token, body={"outcome": outcome.value}
        )
        return answer


@dataclass(frozen=True)
class RequestPayout:
    apis: PlatformApi

    async def __call__(
        self, *, asset: str, amount: int, destination: Mapping[str, str], request_key: str, token: str
    ) -> str:
        """A claim of `amount` to `destination`; returns its id. Rewards claims for the token's player only, and
        the same `request_key` (one per rendered form) returns the same claim: a double submit claims once."""
        answer = await self.apis.send(
            "POST",
            "rewards",
            "/claims/",
            token=token,
            body={"asset": asset, "amount": amount, "destination": dict(destination)},
            headers={"Idempotency-Key": request_key},
        )
        return str(answer["claim_id"])


@dataclass(frozen=True)
class ShowClaim:
    apis: PlatformApi

    async def __call__(self, player_id: str, claim_id: str, *, token: str) -> dict[str, Any] | None:
        """The claim with its progress; None when it does not exist or is not the player's. Rewards refuses a
        player another's claim; a player who is staff too may read it there, but their wallet shows only theirs."""
        try:
            claim = await self.apis.get("rewards", f"/claims/{quote(claim_id, safe='')}", token=token)
        except ApiProblem as problem:
            if _mine(problem):
                return None
            raise
        if not isinstance(claim, dict) or claim.get("player_id") != player_id:
            return None
        return claim_view(claim)


__all__ = [
    "CLAIM_PROGRESS",
    "KIND_WORDS",
    "SANDBOX",
    "TOP_UP_ASSETS",
    "TOP_UP_PROGRESS",
    "CheckTopUp",
    "Outcome",
    "Progress",
    "ReadWallet",
    "RequestPayout",
    "SandboxCheckout",
    "ShowClaim",
    "ShowTopUp",
    "StartTopUp",
    "Wallet",
    "claim_progress",
    "claim_view",
    "effect",
    "kind_words",
    "top_up_progress",
]
