"""The local stack's identity: an explicit dev profile, a key pair under .devstack/ (0600 from the first byte) and
a file:// JWKS every service verifies against; a checkout still on a shared HS256 secret is moved to it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from prizeflow_devstack.devenv import DEV_ENV_FILE, dev_env, generate_dev_env
from prizeflow_devstack.paths import Paths
from prizeflow_devstack.supervisor import peer_settings
from prizeflow_rates_emulator.settings import EmulatorSettings as RatesSettings
from prizeflow_runtime.auth import token_verifier
from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.settings import ServiceSettings
from prizeflow_testkit import dev_bearer
from prizeflow_upi_emulator.settings import EmulatorSettings as UpiSettings

IDENTITY_ENV = ("PRIZEFLOW_PROFILE", "JWT_JWKS_URL", "JWT_SECRET", "JWT_ISSUER", "JWT_AUDIENCE")


@pytest.fixture(autouse=True)
def _no_identity_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in IDENTITY_ENV:
        monkeypatch.delenv(key, raising=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_dev_env_is_the_dev_profile_with_a_local_jwks_and_private_keys(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    env = generate_dev_env(secrets, root=tmp_path)
    assert env["PRIZEFLOW_PROFILE"] == "dev"
    assert env["JWT_JWKS_URL"] == (secrets / "identity" / "jwks.json").resolve().as_uri()
    assert "JWT_SECRET" not in env
    assert mode(secrets / "identity" / "signing-key.pem") == 0o600
    assert mode(secrets / "hot-signer.seed") == 0o600

    settings = ServiceSettings(
        service_name="rewards", prizeflow_profile=env["PRIZEFLOW_PROFILE"], jwt_jwks_url=env["JWT_JWKS_URL"]
    )
    token = dev_bearer(settings, "alice", "admin")["Authorization"].removeprefix("Bearer ")
    assert (await token_verifier(settings).verify(token)).user_id == "alice"


def test_a_checkout_on_a_shared_hs256_secret_moves_to_the_dev_identity(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    paths.base.mkdir(parents=True)
    (paths.base / DEV_ENV_FILE).write_text(json.dumps({"JWT_SECRET": "0" * 64, "PAYOUT_SOURCE_ACCOUNT": "GA"}))
    env = dev_env(paths)
    assert "JWT_SECRET" not in env
    assert env["PAYOUT_SOURCE_ACCOUNT"] == "GA"
    assert DevIdentity.from_jwks_url(env["JWT_JWKS_URL"]).directory == paths.base / "secrets" / "identity"
    assert mode(paths.base / DEV_ENV_FILE) == 0o600
    assert dev_env(paths) == env  # stable from then on


def test_the_webhook_ingress_gets_its_providers_file_and_random_secrets_also_on_an_older_checkout(
    tmp_path: Path,
) -> None:
    env = generate_dev_env(tmp_path / "secrets", root=tmp_path)
    parts = tmp_path / "providers" / "webhooks"  # beside the secrets: a directory of parts, deploy/local's linked in it
    assert env["WEBHOOKS_PROVIDERS_FILE"] == str(parts)
    assert (parts / "local.yaml").readlink() == tmp_path / "deploy" / "local" / "webhooks.yaml"
    assert env["STRIPE_WEBHOOK_SECRET"].startswith("whsec_")
    assert env["STRIPE_API_KEY"] == env["STRIPE_EMULATOR_API_KEYS"]  # the emulator accepts the ingress's key
    assert len(env["WEBHOOK_SECRET_SANDBOX"]) >= 32
    assert (
        generate_dev_env(tmp_path / "secrets", root=tmp_path)["WEBHOOK_SECRET_SANDBOX"] != env["WEBHOOK_SECRET_SANDBOX"]
    )

    paths = Paths(tmp_path)
    paths.base.mkdir(parents=True)
    older = {"PRIZEFLOW_PROFILE": "dev", "JWT_JWKS_URL": env["JWT_JWKS_URL"], "PAYOUT_SOURCE_ACCOUNT": "GA"}
    (paths.base / DEV_ENV_FILE).write_text(json.dumps(older))
    added = dev_env(paths)
    assert {"WEBHOOKS_PROVIDERS_FILE", "WEBHOOK_SECRET_SANDBOX", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_KEY"} <= set(
        added
    )
    assert added["PAYOUT_SOURCE_ACCOUNT"] == "GA"
    assert dev_env(paths) == added  # stable from then on


def test_identity_verification_pairs_payouts_with_the_kyc_emulator_also_on_an_older_checkout(tmp_path: Path) -> None:
    env = generate_dev_env(tmp_path / "secrets", root=tmp_path)
    assert env["PAYOUTS_KYC_PROVIDER"] == "sumsub"
    assert env["PAYOUTS_KYC_APP_TOKEN"] == env["KYC_EMULATOR_APP_TOKEN"]
    assert env["PAYOUTS_KYC_SECRET_KEY"] == env["KYC_EMULATOR_SECRET_KEY"]
    assert env["PAYOUTS_KYC_LEVEL"] in env["KYC_EMULATOR_LEVELS"].split(",")
    assert env["KYC_EMULATOR_WEBHOOK_URL"] == "${WEBHOOKS_URL}/providers/sumsub/events"
    assert env["KYC_EMULATOR_WEBHOOK_SECRET"] == "${SUMSUB_WEBHOOK_SECRET}"
    assert len(env["SUMSUB_WEBHOOK_SECRET"]) >= 32
    assert "PAYOUTS_KYC_BASE_URL" not in env  # the emulator's address, set when the stack starts

    paths = Paths(tmp_path)
    paths.base.mkdir(parents=True, exist_ok=True)
    older = {"PRIZEFLOW_PROFILE": "dev", "JWT_JWKS_URL": env["JWT_JWKS_URL"], "PAYOUT_SOURCE_ACCOUNT": "GA"}
    (paths.base / DEV_ENV_FILE).write_text(json.dumps(older))
    added = dev_env(paths)
    assert added["PAYOUTS_KYC_APP_TOKEN"] == added["KYC_EMULATOR_APP_TOKEN"]
    assert dev_env(paths) == added


def test_payouts_finds_the_kyc_vendor_at_the_emulators_address() -> None:
    peers = {"KYC_API_URL": "http://127.0.0.1:5000", "WEBHOOKS_URL": "http://127.0.0.1:5001"}
    assert peer_settings(peers, {}) == {"PAYOUTS_KYC_BASE_URL": "http://127.0.0.1:5000"}
    assert peer_settings(peers, {"PAYOUTS_KYC_BASE_URL": "https://api.sumsub.com"}) == {}  # set by hand: kept
    # No emulator running (a subset of the platform): no vendor, rather than one without its address.
    assert peer_settings({"WEBHOOKS_URL": "http://127.0.0.1:5001"}, {}) == {"PAYOUTS_KYC_PROVIDER": "none"}


def test_payouts_screens_against_the_sanctions_emulator_where_it_runs() -> None:
    base = "http://127.0.0.1:5002"
    sources = peer_settings({"SANCTIONS_LISTS_URL": base}, {})["PAYOUTS_SANCTIONS_SOURCES"].split(",")
    assert [s.split("=", 1)[0] for s in sources] == ["ofac_sdn", "ofac_consolidated", "eu", "un"]
    assert all(s.split("=", 1)[1].startswith(base + "/") for s in sources)
    assert peer_settings(
        {"SANCTIONS_LISTS_URL": base, "KYC_API_URL": base}, {"PAYOUTS_SANCTIONS_SOURCES": "un=https://x"}
    ) == {"PAYOUTS_KYC_BASE_URL": base}
    assert "PAYOUTS_SANCTIONS_SOURCES" not in peer_settings({"KYC_API_URL": base}, {})  # no emulator: no lists


def test_the_upi_and_rates_emulators_get_keys_the_stack_shares_also_on_an_older_checkout(tmp_path: Path) -> None:
    env = generate_dev_env(tmp_path / "secrets", root=tmp_path)
    assert env["UPI_EMULATOR_KEYS"] == f"{env['RAZORPAYX_KEY_ID']}:{env['RAZORPAYX_KEY_SECRET']}"
    assert env["UPI_EMULATOR_WEBHOOK_URL"] == "${WEBHOOKS_URL}/providers/razorpayx/events"
    assert env["UPI_EMULATOR_WEBHOOK_SECRET"] == "${RAZORPAYX_WEBHOOK_SECRET}"
    assert env["RATES_EMULATOR_APP_IDS"] == env["RATES_APP_ID"]
    resolved = {**env, "WEBHOOKS_URL": "http://127.0.0.1:5001"}
    assert UpiSettings.from_env(resolved).webhook_url == "http://127.0.0.1:5001/providers/razorpayx/events"
    assert RatesSettings.from_env(resolved).app_ids == (env["RATES_APP_ID"],)

    paths = Paths(tmp_path)
    paths.base.mkdir(parents=True, exist_ok=True)
    older = {"PRIZEFLOW_PROFILE": "dev", "JWT_JWKS_URL": env["JWT_JWKS_URL"], "PAYOUT_SOURCE_ACCOUNT": "GA"}
    (paths.base / DEV_ENV_FILE).write_text(json.dumps(older))
    added = dev_env(paths)
    assert added["UPI_EMULATOR_KEYS"].startswith(added["RAZORPAYX_KEY_ID"] + ":")
    assert added["RATES_EMULATOR_APP_IDS"] == added["RATES_APP_ID"]
    assert dev_env(paths) == added


def test_make_runs_simulator_has_inr_players_whose_pair_rewards_converts_also_on_an_older_checkout(
    tmp_path: Path,
) -> None:
    env = generate_dev_env(tmp_path / "secrets", root=tmp_path)
    assert 0 < float(env["SIM_INR_SHARE"]) < 0.5  # a few of the claims, not most
    assert "USDC/INR" in json.loads(env["REWARDS_FX_PAIRS"])  # the simulator's asset into rupees

    paths = Paths(tmp_path)
    paths.base.mkdir(parents=True, exist_ok=True)
    older = {"PRIZEFLOW_PROFILE": "dev", "JWT_JWKS_URL": env["JWT_JWKS_URL"], "PAYOUT_SOURCE_ACCOUNT": "GA"}
    (paths.base / DEV_ENV_FILE).write_text(json.dumps(older))
    added = dev_env(paths)
    assert added["SIM_INR_SHARE"] == env["SIM_INR_SHARE"]
    assert dev_env(paths) == added

    (paths.base / DEV_ENV_FILE).write_text(json.dumps({**added, "SIM_INR_SHARE": "0"}))  # turned off: stays off
    assert dev_env(paths)["SIM_INR_SHARE"] == "0"


def test_a_checkout_whose_settings_named_the_providers_files_gets_the_directories_of_parts(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    paths.base.mkdir(parents=True)
    older = {
        "PAYOUT_SOURCE_ACCOUNT": "GA",
        "PAYOUTS_PROVIDERS_FILE": str(tmp_path / "deploy" / "local" / "providers.yaml"),
        "WEBHOOKS_PROVIDERS_FILE": str(tmp_path / "deploy" / "local" / "webhooks.yaml"),
    }
    (paths.base / DEV_ENV_FILE).write_text(json.dumps(older))
    env = dev_env(paths)
    for variable, service, file in (
        ("PAYOUTS_PROVIDERS_FILE", "payouts", "providers.yaml"),
        ("WEBHOOKS_PROVIDERS_FILE", "webhooks", "webhooks.yaml"),
    ):
        parts = paths.base / "providers" / service
        assert env[variable] == str(parts)
        assert (parts / "local.yaml").readlink() == tmp_path / "deploy" / "local" / file
    assert (
        json.loads((paths.base / DEV_ENV_FILE).read_text())["PAYOUTS_PROVIDERS_FILE"] == env["PAYOUTS_PROVIDERS_FILE"]
    )
    (paths.base / "providers" / "payouts" / "rail-gone.yaml").symlink_to(tmp_path / "gone.yaml")
    assert dev_env(paths) == env  # stable from then on
    assert not (paths.base / "providers" / "payouts" / "rail-gone.yaml").is_symlink(), "a stand-in removed: unlinked"
