"""Players who claim what they won, through the rewards API, like real users of a game would.

The simulator also plays the sponsor's admin once at start: it creates and funds the campaign its
sponsored rounds draw from (idempotently: the same funding reference funds once).
"""

from __future__ import annotations

import logging
import random
from collections import Counter as Tally
from dataclasses import dataclass, field
from typing import Any

import httpx

from prizeflow_contracts.money import asset
from prizeflow_runtime.dev_identity import DevIdentity

log = logging.getLogger("prizeflow.simulator.players")


@dataclass(frozen=True)
class ClaimConfig:
    share: float = 0.8  # of the available balance a claiming player asks for
    destinations: tuple[tuple[str, float], ...] = (("sandbox:success", 0.9), ("sandbox:pending", 0.1))
    stellar_accounts: tuple[str, ...] = ()  # G... accounts on the Soroban RPC emulator
    stellar_share: float = 0.2
    inr_share: float = 0.0  # of claims made by INR players: a quote into INR, paid to a UPI VPA (SIM_INR_SHARE)
    inr_asset: str = "INR"


# Rewards' answers that turn the INR players off for the rest of the run: no rates, or the pair not converted.
FX_OFF_CODES = frozenset({"rates_unavailable", "pair_not_enabled"})
REQUOTED = frozenset({"quote_expired", "quote_moved"})  # refused with a `new_quote` to claim with instead


@dataclass
class ClaimStats:
    outcomes: Tally[str] = field(default_factory=Tally)
    fx_off: str | None = None  # why the INR players stopped (the first refusal's code), None while they claim


@dataclass(frozen=True)
class TokenMinter:
    """Tokens for the simulated players and ops: signed by the dev identity, for the rewards audience."""

    identity: DevIdentity
    audience: str
    issuer: str
    roles_claim: str = "roles"

    def bearer(self, user: str, *roles: str) -> dict[str, str]:
        token = self.identity.issue(
            user, roles, audience=self.audience, issuer=self.issuer, roles_claim=self.roles_claim, ttl_s=600
        )
        return {"Authorization": f"Bearer {token}"}


class RewardsClient:
    def __init__(self, base_url: str, tokens: TokenMinter, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    def _auth(self, user: str, *roles: str) -> dict[str, str]:
        return self.tokens.bearer(user, *roles)

    async def close(self) -> None:
        await self.http.aclose()

    async def ensure_funded_campaign(self, campaign_id: str, asset_code: str, whole_units: int) -> None:
        admin = self._auth("simulator-sponsor", "admin")
        created = await self.http.post(
            "/campaigns/",
            json={"campaign_id": campaign_id, "name": f"Simulator {campaign_id}", "asset": asset_code},
            headers=admin,
        )
        if created.status_code not in (201, 409):
            created.raise_for_status()
        funded = await self.http.post(
            f"/campaigns/{campaign_id}/fund",
            json={"amount": whole_units * asset(asset_code).unit, "reference": f"{campaign_id}-initial"},
            headers=admin,
        )
        funded.raise_for_status()

    async def available(self, player_id: str, asset_code: str) -> int:
        response = await self.http.get(f"/wallets/{player_id}", headers=self._auth(player_id, "player"))
        if response.status_code == 404:
            return 0
        response.raise_for_status()
        for balance in response.json().get("balances", []):
            if balance.get("asset") == asset_code:
                return int(balance.get("available", 0))
        return 0

    async def claim(
        self, player_id: str, asset_code: str, amount: int, destination: dict[str, str], *, quote_id: str | None = None
    ) -> str:
        outcome, _problem = await self.claim_answer(player_id, asset_code, amount, destination, quote_id=quote_id)
        return outcome

    async def claim_answer(
        self, player_id: str, asset_code: str, amount: int, destination: dict[str, str], *, quote_id: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """The claim's outcome (its status, or `refused:<code>`) and, when refused, the problem details."""
        body: dict[str, Any] = {"asset": asset_code, "amount": amount, "destination": destination}
        if quote_id is not None:
            body["quote_id"] = quote_id
        response = await self.http.post("/claims/", json=body, headers=self._auth(player_id, "player"))
        if response.status_code == 201:
            return str(response.json().get("status", "created")), {}
        problem = _json(response)
        return f"refused:{problem.get('code', response.status_code)}", problem

    async def quote(self, player_id: str, source: str, target: str, amount: int) -> tuple[str | None, dict[str, Any]]:
        """A conversion quote for the player: (None, the quote), or (the refusal's code, its problem details)."""
        response = await self.http.post(
            "/fx/quotes",
            json={"source_asset": source, "target_asset": target, "amount": amount},
            headers=self._auth(player_id, "player"),
        )
        if response.status_code == 201:
            return None, response.json()
        problem = _json(response)
        return str(problem.get("code", response.status_code)), problem


def _json(response: httpx.Response) -> dict[str, Any]:
    if not response.headers.get("content-type", "").endswith("json"):
        return {}
    body = response.json()
    return body if isinstance(body, dict) else {}


def vpa_of(player_id: str) -> str:
    """The simulated player's UPI id (`handle@psp`): `player-7` is `player-7@okbank`."""
    return f"{player_id.lower()}@okbank"


def pays_in_rupees(rng: random.Random, config: ClaimConfig, stats: ClaimStats) -> bool:
    """Whether this claim is an INR player's: a share of claims, none once rewards said it cannot convert."""
    return stats.fx_off is None and config.inr_share > 0 and rng.random() < config.inr_share


async def claim_in_rupees(
    client: RewardsClient, player: str, asset_code: str, amount: int, *, config: ClaimConfig, stats: ClaimStats
) -> str | None:
    """An INR player's claim: a quote from `asset_code` into INR, then a claim to the player's VPA locking it; a quote
    refused as expired or moved is retried once with the `new_quote` the refusal carries. None (nothing claimed) when
    rewards cannot convert (no rates, the pair not enabled): the INR players stop, logged once, the others go on."""
    refused, quote = await client.quote(player, asset_code, config.inr_asset, amount)
    if refused is not None:
        if refused in FX_OFF_CODES:
            stats.fx_off = refused
            log.warning("INR players stop: rewards does not quote %s/%s (%s)", asset_code, config.inr_asset, refused)
            return None
        return f"inr:quote_refused:{refused}"
    destination = {"type": "upi", "address": vpa_of(player)}
    outcome, problem = await client.claim_answer(player, asset_code, amount, destination, quote_id=quote["quote_id"])
    new_quote = problem.get("new_quote")
    if problem.get("code") in REQUOTED and isinstance(new_quote, dict) and "quote_id" in new_quote:
        stats.outcomes["inr:requoted"] += 1
        outcome, _ = await client.claim_answer(
            player, asset_code, amount, destination, quote_id=str(new_quote["quote_id"])
        )
    return f"inr:{outcome}"


def pick_destination(rng: random.Random, config: ClaimConfig, player_id: str) -> dict[str, str]:
    if config.stellar_accounts and rng.random() < config.stellar_share:
        return {"type": "stellar_account", "address": rng.choice(config.stellar_accounts)}
    kinds = [k for k, _ in config.destinations]
    kind = rng.choices(kinds, weights=[w for _, w in config.destinations])[0]
    rail, _, scenario = kind.partition(":")
    return {"type": rail, "address": f"{scenario}:{player_id}" if rail == "sandbox" else scenario}


async def claim_round(
    client: RewardsClient,
    rng: random.Random,
    players: list[str],
    *,
    asset_code: str,
    config: ClaimConfig,
    stats: ClaimStats,
    minimum: int,
) -> None:
    """Each given player looks at their wallet and, if there is something worth claiming, claims part of it."""
    for player in players:
        available = await client.available(player, asset_code)
        amount = int(available * config.share)
        if amount < minimum:
            continue
        outcome = None
        if pays_in_rupees(rng, config, stats):
            outcome = await claim_in_rupees(client, player, asset_code, amount, config=config, stats=stats)
        if outcome is None:
            outcome = await client.claim(player, asset_code, amount, pick_destination(rng, config, player))
        stats.outcomes[outcome] += 1


async def review_holds(client: RewardsClient, rng: random.Random, stats: ClaimStats, *, reject_rate: float) -> None:
    """Play the ops reviewer: release held claims, reject a few (every decision is audited by rewards)."""
    ops = client._auth("simulator-ops", "ops")
    response = await client.http.get("/holds/", headers=ops)
    response.raise_for_status()
    for hold in response.json():
        claim_id = hold["claim_id"]
        if rng.random() < reject_rate:
            decided = await client.http.post(
                f"/holds/{claim_id}/reject", json={"reason": "simulated review: suspicious"}, headers=ops
            )
            stats.outcomes["hold_rejected" if decided.is_success else "hold_reject_failed"] += 1
        else:
            decided = await client.http.post(f"/holds/{claim_id}/release", json={}, headers=ops)
            stats.outcomes["hold_released" if decided.is_success else "hold_release_failed"] += 1


async def stellar_accounts(rpc_url: str, n: int) -> tuple[str, ...]:
    """Create `n` destination accounts (with a USDC trustline) on the Soroban RPC emulator (its `/_emulator` admin)."""
    from stellar_sdk import Keypair

    accounts = tuple(Keypair.random().public_key for _ in range(n))
    admin = rpc_url.rstrip("/").removesuffix("/rpc") + "/_emulator/accounts"
    async with httpx.AsyncClient(timeout=10) as http:
        for account in accounts:
            response = await http.post(admin, json={"account": account, "balances": {"XLM": "1", "USDC": "0"}})
            response.raise_for_status()
    return accounts
