"""`prizeflow-dev token`: a token every service of the local stack accepts, from the devstack's own identity, and
nothing outside the dev profile or without that identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prizeflow_devstack.cli import main
from prizeflow_devstack.dev_tokens import DevTokenRefusedError, dev_token
from prizeflow_devstack.devenv import DEV_ENV_FILE, identity_env
from prizeflow_runtime.auth import Role
from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.settings import audience_for


def checkout(tmp_path: Path, *services: str, dev_env: bool = True) -> Path:
    """A workspace with these services declared and, unless told otherwise, a devstack identity."""
    for name in services:
        directory = tmp_path / "services" / name
        directory.mkdir(parents=True)
        (directory / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\n[tool.prizeflow.service]\nname = "{name}"\ncommand = ["python"]\n'
        )
    (tmp_path / "pyproject.toml").write_text("[tool.uv.workspace]\nmembers = []\n")
    if dev_env:
        (tmp_path / ".devstack").mkdir()
        env = identity_env(tmp_path / ".devstack" / "secrets")
        (tmp_path / ".devstack" / DEV_ENV_FILE).write_text(json.dumps(env))
    return tmp_path


def identity_of(root: Path) -> DevIdentity:
    stored = json.loads((root / ".devstack" / DEV_ENV_FILE).read_text())
    return DevIdentity.from_jwks_url(stored["JWT_JWKS_URL"])


async def test_one_ops_token_is_accepted_by_every_service_of_the_stack(tmp_path: Path) -> None:
    root = checkout(tmp_path, "settlement", "rewards", "payouts", "webhooks")
    token = dev_token(root, {}, user="alice", roles=["ops", "admin"])
    identity = identity_of(root)
    for service in ("settlement", "rewards", "payouts", "webhooks"):
        principal = await identity.verifier(audience=audience_for(service)).verify(token)
        assert principal.user_id == "alice"
        assert principal.roles == frozenset({Role.OPS, Role.ADMIN})


async def test_the_environment_wins_as_it_does_for_the_services(tmp_path: Path) -> None:
    root = checkout(tmp_path, "rewards", dev_env=False)
    other = DevIdentity.ensure(tmp_path / "elsewhere")
    env = {"PRIZEFLOW_PROFILE": "dev", "JWT_JWKS_URL": other.jwks_url, "JWT_ISSUER": "local-idp"}
    token = dev_token(root, env, user="bob", roles=["approver"], audiences=["custom"])
    principal = await other.verifier(audience="custom", issuer="local-idp").verify(token)
    assert principal.roles == frozenset({Role.APPROVER})


@pytest.mark.parametrize(
    ("env", "roles", "user", "message"),
    [
        ({"PRIZEFLOW_PROFILE": "production"}, ["ops"], "alice", "dev profile only"),
        ({"JWT_JWKS_URL": "https://idp.example/.well-known/jwks.json"}, ["ops"], "alice", "identity provider"),
        ({}, ["root"], "alice", "--role"),
        ({}, [], "alice", "--role"),
        ({}, ["ops"], "alice smith", "--user"),
        ({}, ["ops"], "alice@example.com", "--user"),  # the services accept no such subject: every call a 401
    ],
)
def test_refused(tmp_path: Path, env: dict[str, str], roles: list[str], user: str, message: str) -> None:
    root = checkout(tmp_path, "rewards")
    with pytest.raises(DevTokenRefusedError, match=message):
        dev_token(root, env, user=user, roles=roles)


def test_refused_without_a_service_to_name(tmp_path: Path) -> None:
    with pytest.raises(DevTokenRefusedError, match="no service"):
        dev_token(checkout(tmp_path), {}, user="alice", roles=["ops"])


def test_refused_without_a_devstack_identity(tmp_path: Path) -> None:
    root = checkout(tmp_path, "rewards", dev_env=False)
    with pytest.raises(DevTokenRefusedError, match="prizeflow-dev up"):
        dev_token(root, {}, user="alice", roles=["ops"])
    assert not (root / ".devstack").exists()  # nothing was created on the way


def test_refused_when_the_key_is_gone(tmp_path: Path) -> None:
    root = checkout(tmp_path, "rewards")
    (root / ".devstack" / "secrets" / "identity" / "signing-key.pem").unlink()
    with pytest.raises(DevTokenRefusedError, match="private key"):
        dev_token(root, {}, user="alice", roles=["ops"])


IDENTITY_ENV = ("PRIZEFLOW_PROFILE", "JWT_JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_ROLES_CLAIM")


def test_the_command_prints_the_token_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in IDENTITY_ENV:  # the session's own dev identity is in the environment
        monkeypatch.delenv(key, raising=False)
    root = checkout(tmp_path, "rewards")
    # `--root` sets PRIZEFLOW_ROOT when it is unset; set it here so that the monkeypatch restores it afterwards
    # (a delenv of an unset variable records nothing, and the checkout's root leaked into later tests).
    monkeypatch.setenv("PRIZEFLOW_ROOT", str(root))
    with pytest.raises(SystemExit) as done:
        main(["--root", str(root), "token", "--role", "ops", "--user", "alice"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.count(".") == 2  # header.claims.signature

    monkeypatch.setenv("PRIZEFLOW_PROFILE", "production")
    with pytest.raises(SystemExit) as refused:
        main(["--root", str(root), "token", "--role", "ops"])
    assert refused.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "dev profile only" in captured.err
