"""Identity at every service's door (ADR 0005): no service starts without its verification or key settings outside
the dev profile (and says which), each documents bearer JWT in its OpenAPI schema, and a token minted for one
service is refused by another."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.settings import audience_for
from prizeflow_testkit.production import PRODUCTION_ENV

IDENTITY_ENV = ("PRIZEFLOW_PROFILE", "JWT_JWKS_URL", "JWT_SECRET", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_ROLES_CLAIM")
NOWHERE = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}
IDP_NAMES = "JWT_JWKS_URL, JWT_ISSUER, JWT_AUDIENCE not set"


def production_env(**extra: str) -> dict[str, str]:
    """The environment of a process given no identity settings at all (so the default profile: production), its
    Kafka settings those of production (authenticated)."""
    env = {k: v for k, v in os.environ.items() if k not in IDENTITY_ENV}
    return {**env, **NOWHERE, **PRODUCTION_ENV, "LOG_JSON": "false", **extra}


def start(service: str, env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", f"prizeflow_{service}"]
    return subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.integration  # starts the service process
@pytest.mark.parametrize("service", ["settlement", "rewards", "payouts"])
def test_a_service_without_identity_provider_settings_refuses_to_start_and_names_them(
    service: str, tmp_path: Path
) -> None:
    done = start(service, production_env(), tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"prizeflow-{service}: refusing to start: {IDP_NAMES}" in done.stderr


@pytest.mark.integration  # starts the signer process
@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"SIGNER_BACKEND": "hot_key", "PAYOUTS_SIGN_WITH_HOT_KEY": "true"}, "PAYOUT_HOT_SIGNER_SECRET or "),
        (
            {"SIGNER_BACKEND": "pkcs11", "SIGNER_PKCS11_TOKEN_LABEL": "t", "SIGNER_PKCS11_KEY_LABEL": "k"},
            "SIGNER_BACKEND=pkcs11 needs SIGNER_PKCS11_PIN or SIGNER_PKCS11_PIN_FILE, SIGNER_PKCS11_MODULE",
        ),
    ],
)
def test_the_signer_without_its_key_settings_refuses_to_start_and_names_them(
    env: dict[str, str], names: str, tmp_path: Path
) -> None:
    account = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"
    base = production_env(PAYOUT_SOURCE_ACCOUNT=account)
    for key in (
        "PAYOUT_HOT_SIGNER_SECRET",
        "PAYOUT_HOT_SIGNER_SECRET_FILE",
        "SIGNER_PKCS11_PIN",
        "SIGNER_PKCS11_MODULE",
    ):
        base.pop(key, None)
    done = start("signer", {**base, **env}, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "prizeflow-signer: refusing to start" in done.stderr
    assert names in done.stderr


def test_the_signer_needs_no_token_settings_and_softhsm_is_a_dev_default_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from prizeflow_signer.settings import SignerSettings

    for key in IDENTITY_ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(key, value)
    account = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"
    external = SignerSettings(payout_source_account=account)  # no inbound API: nothing to verify
    assert external.signer_backend == "external"
    pkcs11: dict[str, Any] = {
        "payout_source_account": account,
        "signer_backend": "pkcs11",
        "signer_pkcs11_token_label": "t",
        "signer_pkcs11_key_label": "k",
        "signer_pkcs11_pin": "1234",
    }
    with pytest.raises(ValidationError, match="SIGNER_PKCS11_MODULE"):
        SignerSettings(**pkcs11)
    assert SignerSettings(**pkcs11, prizeflow_profile="dev").pkcs11_module.endswith("libsofthsm2.so")


@pytest.mark.integration  # starts the payouts process
def test_a_provider_secret_names_an_env_var_that_must_resolve(tmp_path: Path) -> None:
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        "providers:\n  - {name: sandbox, type: sandbox, assets: [USDC], destination_types: [sandbox],\n"
        "     secrets: {webhook_secret: PRIZEFLOW_TEST_UNSET_WEBHOOK_SECRET}}\n"
    )
    env = {**os.environ, **NOWHERE, "PAYOUTS_PROVIDERS_FILE": str(providers)}  # dev profile: the session's
    env.pop("PRIZEFLOW_TEST_UNSET_WEBHOOK_SECRET", None)
    done = start("payouts", env, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "needs environment variable PRIZEFLOW_TEST_UNSET_WEBHOOK_SECRET, which is not set" in done.stderr


def apps(tmp: Path) -> dict[str, Any]:
    """Each service's app as its process builds it, in the test session's dev profile (nothing is started)."""
    from prizeflow_payouts.bootstrap import build as payouts
    from prizeflow_payouts.settings import PayoutsSettings
    from prizeflow_rewards.bootstrap import build as rewards
    from prizeflow_rewards.settings import RewardsSettings
    from prizeflow_settlement.bootstrap import build as settlement
    from prizeflow_settlement.settings import SettlementSettings

    where: dict[str, Any] = {"kafka_bootstrap_servers": "127.0.0.1:1", "database_url": "postgresql://x@127.0.0.1:1/x"}
    providers = tmp / "providers.yaml"
    providers.write_text("providers:\n  - {name: manual, type: manual, assets: [USD], destination_types: [manual]}\n")
    return {
        "settlement": settlement(SettlementSettings(**where)),
        "rewards": rewards(RewardsSettings(**where)),
        "payouts": payouts(PayoutsSettings(**where, payouts_providers_file=providers)),
    }


# A route each service guards with a role the tokens below do not hold: past authentication, the guard answers.
GUARDED = {"settlement": "/rounds/", "rewards": "/campaigns/", "payouts": "/payouts/"}


async def test_each_service_documents_bearer_jwt_and_accepts_only_its_own_audience(
    tmp_path: Path, dev_identity: DevIdentity
) -> None:
    for service, app in apps(tmp_path).items():
        transport = httpx.ASGITransport(app=app)  # no lifespan: nothing behind the routes is needed
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
            schema = (await client.get("/schema/openapi.json")).json()
            assert schema["components"]["securitySchemes"]["BearerJWT"]["scheme"] == "bearer", service
            assert schema["security"] == [{"BearerJWT": []}], service
            answers = {}
            for audience in sorted({audience_for(s) for s in GUARDED}):
                token = dev_identity.issue("p-1", ["player"], audience=audience)
                response = await client.get(GUARDED[service], headers={"Authorization": f"Bearer {token}"})
                answers[audience] = response.status_code
        assert answers == {a: 403 if a == audience_for(service) else 401 for a in answers}, service
