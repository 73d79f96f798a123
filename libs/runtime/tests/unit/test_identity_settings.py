"""No secret has a usable default outside the dev profile: identity settings refuse to load, naming the env var."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from prizeflow_runtime.auth import HmacVerifier, JwksVerifier, token_verifier
from prizeflow_runtime.dev_identity import JWKS_FILE, KEY_FILE, DevIdentity
from prizeflow_runtime.settings import ServiceSettings, settings_or_exit
from prizeflow_testkit import dev_bearer
from prizeflow_testkit.kafka import production_kafka
from prizeflow_testkit.production import PRODUCTION_DATABASE_URL

IDENTITY_ENV = ("PRIZEFLOW_PROFILE", "JWT_JWKS_URL", "JWT_SECRET", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_ROLES_CLAIM")
IDP = {
    "jwt_jwks_url": "https://id.example.com/jwks.json",
    "jwt_issuer": "https://id.example.com/",
    "kafka_security": production_kafka(),  # production also refuses unauthenticated Kafka
    "database_url": PRODUCTION_DATABASE_URL,  # production has no default database
}


@pytest.fixture(autouse=True)
def _no_identity_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The test session runs in the dev profile; these tests start from nothing (and no `.env`)."""
    for key in IDENTITY_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)


def load(**values: object) -> ServiceSettings:
    return ServiceSettings(service_name="rewards", **values)  # type: ignore[arg-type]


def test_production_is_the_default_and_refuses_to_start_without_the_identity_provider() -> None:
    with pytest.raises(ValidationError) as err:
        load()
    assert "JWT_JWKS_URL, JWT_ISSUER, JWT_AUDIENCE not set" in str(err.value)
    with pytest.raises(ValidationError, match="JWT_AUDIENCE not set"):
        load(**IDP)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"jwt_secret": "x" * 64}, "JWT_SECRET \\(HS256\\) is for PRIZEFLOW_PROFILE=dev only"),
        ({"jwt_jwks_url": "http://id.example.com/jwks.json"}, "JWT_JWKS_URL must start with https://"),
        ({"jwt_jwks_url": "file:///etc/jwks.json"}, "JWT_JWKS_URL must start with https://"),
        ({"jwt_algorithms": "RS256,HS256"}, "JWT_ALGORITHMS: only asymmetric algorithms"),
    ],
)
def test_production_refuses_dev_only_keys(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load(**{**IDP, "jwt_audience": "prizeflow-rewards", **values})


def test_production_with_the_identity_provider_loads_and_verifies_asymmetric_tokens() -> None:
    settings = load(**IDP, jwt_audience="prizeflow-rewards", jwt_algorithms="ES256,EdDSA")
    assert (settings.issuer, settings.audience, settings.jwt_algorithms) == (
        "https://id.example.com/",
        "prizeflow-rewards",
        ["ES256", "EdDSA"],
    )
    verifier = token_verifier(settings)
    assert isinstance(verifier, JwksVerifier)
    assert verifier.algorithms == {"ES256", "EdDSA"}


def test_the_dev_profile_must_be_explicit_and_still_needs_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIZEFLOW_PROFILE", "dev")
    with pytest.raises(ValidationError, match="JWT_JWKS_URL is not set"):
        load()
    dev = load(jwt_jwks_url="file:///tmp/identity/jwks.json")
    assert (dev.issuer, dev.audience) == ("prizeflow-dev", "prizeflow-rewards")


def test_hs256_is_dev_only_with_a_key_of_at_least_32_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIZEFLOW_PROFILE", "dev")
    short = "s3cret-" * 4  # 28 bytes
    with pytest.raises(ValidationError) as err:
        load(jwt_secret=short)
    assert "JWT_SECRET must be at least 32 bytes long" in str(err.value)
    assert short not in str(err.value)  # a refused value is never echoed
    with pytest.raises(ValidationError, match="one of JWT_JWKS_URL or JWT_SECRET"):
        load(jwt_secret="k" * 32, jwt_jwks_url="file:///x/jwks.json")
    assert isinstance(token_verifier(load(jwt_secret="k" * 32)), HmacVerifier)


def test_a_process_refusing_to_start_names_settings_and_never_prints_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JWT_SECRET", "top-secret-value-0123456789-abcdef")
    with pytest.raises(SystemExit) as exit_:
        settings_or_exit(ServiceSettings, "prizeflow-unit")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "prizeflow-unit: refusing to start: JWT_SECRET (HS256) is for PRIZEFLOW_PROFILE=dev only" in err
    assert "top-secret-value" not in err


def test_the_dev_identity_key_is_private_from_its_first_byte_and_mints_tokens_the_service_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[int] = []
    real_open = os.open

    def spy(path: str | os.PathLike[str], flags: int, mode: int = 0o777, *args: object, **kw: object) -> int:
        if str(path).endswith(".tmp") and KEY_FILE in str(path):
            created.append(mode)
        return real_open(path, flags, mode, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", spy)
    directory = tmp_path / "identity"
    identity = DevIdentity.ensure(directory)
    assert created == [0o600]  # the file was created with that mode, not chmod-ed afterwards
    assert stat.S_IMODE((directory / KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert DevIdentity.ensure(directory).kid == identity.kid  # the key is kept, never replaced
    published = json.loads((directory / JWKS_FILE).read_text())["keys"]
    assert [sorted(k) for k in published] == [["alg", "crv", "kid", "kty", "use", "x"]]  # no private member "d"

    monkeypatch.setenv("PRIZEFLOW_PROFILE", "dev")
    settings = load(jwt_jwks_url=identity.jwks_url)
    header = dev_bearer(settings, "alice", "admin")
    assert header["Authorization"].startswith("Bearer ")


async def test_the_dev_identity_tokens_verify_through_its_file_jwks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = DevIdentity.ensure(tmp_path / "identity")
    monkeypatch.setenv("PRIZEFLOW_PROFILE", "dev")
    settings = load(jwt_jwks_url=identity.jwks_url)
    principal = await token_verifier(settings).verify(dev_bearer(settings, "alice", "ops")["Authorization"][7:])
    assert principal.user_id == "alice"


def test_production_refuses_to_start_without_a_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default DATABASE_URL (a local superuser, no password) is a dev convenience, never production's."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ValidationError, match="DATABASE_URL is not set"):
        ServiceSettings(
            jwt_jwks_url="https://id.example.com/jwks.json",
            jwt_issuer="https://id.example.com/",
            jwt_audience="prizeflow-settlement",
            kafka_security=production_kafka(),
        )
    assert ServiceSettings(prizeflow_profile="dev", jwt_jwks_url="file:///jwks.json").database_url
