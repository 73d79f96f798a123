"""The Stellar rail end to end: claim → payouts (Stellar provider) → signer → Soroban RPC emulator → paid.

Signed first by the signer's hot key, then — after restarting the signer with its PKCS#11 backend on a
SoftHSM2 token whose Ed25519 key is a signer of the funding account — by the HSM. Every payment is
checked against the emulator's own ledger: paid exactly once.
"""

from __future__ import annotations

from typing import Any

import pytest
from stellar_sdk import Keypair
from support import USDC, Api, GameServer, uid, wait_for

from prizeflow_devstack.platform import Platform
from prizeflow_signer.softhsm import SoftHsmToken
from prizeflow_soroban_emulator.client import Rpc
from prizeflow_testkit import fetch

pytestmark = pytest.mark.e2e


def stellar_destination(rpc: Rpc) -> str:
    account = Keypair.random().public_key
    rpc.admin.create_account(account, balances={"XLM": "1", "USDC": "0"})
    return account


async def win_and_claim(api: Api, game: GameServer, destination: str, prize_units: int) -> tuple[str, str]:
    """A player wins a winner-takes-all round and claims all of it to `destination`. Returns (player, claim)."""
    from prizeflow_contracts.events.game import DistributionTemplate

    campaign, round_id, player = uid("camp"), uid("round"), uid("p")
    await api.funded_campaign(campaign, prize_units * USDC)
    await game.sponsored_round(
        round_id,
        [player, uid("p")],
        campaign_id=campaign,
        prize=prize_units * USDC,
        template=DistributionTemplate.WINNER_TAKES_ALL,
    )
    await wait_for(lambda: api.available(player), lambda v: v == prize_units * USDC)
    claim = await api.ok(
        "POST",
        "rewards",
        "/claims/",
        user=player,
        roles=["player"],
        headers={"X-Correlation-Id": round_id},
        json={
            "asset": "USDC",
            "amount": prize_units * USDC,
            "destination": {"type": "stellar_account", "address": destination},
        },
    )
    if claim["status"] == "held":
        await api.ok("POST", "rewards", f"/holds/{claim['claim_id']}/release", user="ops-1", roles=["ops"], json={})
    return player, claim["claim_id"]


async def paid_once_on_the_ledger(
    api: Api, platform: Platform, rpc: Rpc, player: str, destination: str, units: int
) -> None:
    async def payout() -> dict[str, Any] | None:
        doc = await api.ok("GET", "payouts", f"/payouts/?player_id={player}", user="ops-1", roles=["ops"])
        return doc["items"][0] if doc["items"] else None

    paid = await wait_for(payout, lambda p: p is not None and p["state"] == "paid", timeout=120)
    assert paid is not None
    assert paid["provider_type"] == "stellar"
    assert paid["tx_hash"]
    payments = rpc.admin.payments(destination=destination)
    assert [p["amount"] for p in payments] == [units * USDC]  # stroops: USDC has 7 decimals on Stellar too
    await wait_for(lambda: api.available(player), lambda v: v == 0)
    rewards_db = platform.procs["rewards"].database_url
    assert rewards_db is not None
    sums = await fetch(rewards_db, "SELECT sum(credits_posted - debits_posted) AS s FROM ledger_accounts")
    assert sums[0]["s"] == 0


async def test_claim_paid_on_stellar_signed_by_hot_key_then_by_pkcs11(
    platform: Platform, game: GameServer, api: Api, tmp_path_factory: pytest.TempPathFactory
) -> None:
    rpc = Rpc(platform.url("soroban-rpc"))

    destination = stellar_destination(rpc)
    player, _ = await win_and_claim(api, game, destination, 7)
    await paid_once_on_the_ledger(api, platform, rpc, player, destination, 7)

    # Same flow through the HSM: an Ed25519 key generated inside a SoftHSM2 token, made a signer of the
    # funding account (medium threshold 1), the hot key removed from the signer process.
    token = SoftHsmToken.create(tmp_path_factory.mktemp("softhsm"))
    hsm_address = token.generate_key("payout-signer")
    funding = platform._base_env["PAYOUT_SOURCE_ACCOUNT"]
    rpc.admin.create_account(funding, signers={hsm_address: 1})
    previous = platform.service_env.get("signer")
    platform.service_env["signer"] = {
        **token.env("payout-signer"),
        "PAYOUTS_SIGN_WITH_HOT_KEY": "false",
        "PAYOUT_HOT_SIGNER_SECRET_FILE": "",
        "PAYOUT_HOT_SIGNER_SECRET": "",
    }
    platform.restart("signer")
    try:
        destination = stellar_destination(rpc)
        player, _ = await win_and_claim(api, game, destination, 9)
        await paid_once_on_the_ledger(api, platform, rpc, player, destination, 9)
        signer_db = platform.procs["signer"].database_url
        assert signer_db is not None
        signed_by = {
            r["signed_by"]
            for r in await fetch(signer_db, "SELECT signed_by FROM signer_audit WHERE signed_by IS NOT NULL")
        }
        assert hsm_address in signed_by
    finally:
        # The session platform is shared: the next tests (the TON rail's wallet is the hot key's) get the signer
        # they started with.
        if previous is None:
            platform.service_env.pop("signer", None)
        else:
            platform.service_env["signer"] = previous
        platform.restart("signer")
