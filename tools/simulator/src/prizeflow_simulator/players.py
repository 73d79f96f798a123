"""Players who claim what they won, through the rewards API, like real users of a game would.

The simulator also plays the sponsor's admin once at start: it creates and funds the campaign its
sponsored rounds draw from (idempotently: the same funding reference funds once).
"""

from __future__ import annotations

import logging
import random
from collections import Counter as Tally
from dataclasses import dataclass, field

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


@dataclass
class ClaimStats:
    outcomes: Tally[str] = field(default_factory=Tally)


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

    async def claim(self, player_id: str, asset_code: str, amount: int, destination: dict[str, str]) -> str:
        response = await self.http.post(
            "/claims/",
            json={"asset": asset_code, "amount": amount, "destination": destination},
            headers=self._auth(player_id, "player"),
        )
        if response.status_code == 201:
            return str(response.json().get("status", "created"))
        body = response.json() if response.headers.get("content-type", "").endswith("json") else {}
        return f"refused:{body.get('code', response.status_code)}"


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
