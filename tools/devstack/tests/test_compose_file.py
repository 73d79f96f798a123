"""docker-compose.yml and the secrets it reads, statically: who can reach the signer, what every container may do,
who may connect to which database. (The live stack is tests/containers; these need no podman.)"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from prizeflow_devstack import compose as secrets_module
from prizeflow_devstack.compose import DATABASE_SERVICES, ensure_compose_secrets, owner_role, runtime_role
from prizeflow_devstack.paths import resolve_root

# Who may share each network the signer is on: Kafka (its only peer), its database and its migrations, Prometheus.
SIGNER_PEERS = {"signer": {"kafka"}, "signer-db": {"postgres", "migrate-signer"}, "signer-metrics": {"prometheus"}}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((resolve_root(None) / "docker-compose.yml").read_text(encoding="utf-8"))
    return doc


def _networks(service: dict[str, Any]) -> set[str]:
    return set(service.get("networks") or ["default"])


def test_the_signer_shares_networks_only_with_kafka_its_database_and_prometheus(compose: dict[str, Any]) -> None:
    """Nothing but Kafka reaches the signer, and the signer reaches nothing else: payouts talks to it through Kafka
    (on `backend`), so no service's HTTP API is one hop from the key, nor the key's health port from a service."""
    services = compose["services"]
    assert _networks(services["signer"]) == set(SIGNER_PEERS)
    for network, allowed in SIGNER_PEERS.items():
        members = {name for name, svc in services.items() if network in _networks(svc)} - {"signer"}
        assert members == allowed, f"{network}: {sorted(members - allowed)} can reach the signer"
        assert compose["networks"][network] == {"internal": True}, f"{network} must have no route out"


def test_every_container_runs_without_new_privileges(compose: dict[str, Any]) -> None:
    """setuid binaries cannot raise a process's privileges in any container; Prizeflow's own also drop every
    capability and run on a read-only root filesystem."""
    for name, svc in compose["services"].items():
        assert "no-new-privileges:true" in (svc.get("security_opt") or []), name
        if str(svc["image"]).startswith("localhost/prizeflow-"):
            assert svc.get("read_only") is True, name
            assert svc.get("cap_drop") == ["ALL"], name


def test_a_service_role_can_connect_to_its_own_database_only(tmp_path: Path) -> None:
    """PostgreSQL grants CONNECT on every database to PUBLIC: without the revocations the signer's role could open
    payouts' database (and `postgres`) and read its catalog."""
    out = ensure_compose_secrets(tmp_path)
    init = (out / "postgres-init.sql").read_text(encoding="utf-8")
    assert "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;" in init
    for name in DATABASE_SERVICES:
        assert f"REVOKE CONNECT ON DATABASE prizeflow_{name} FROM PUBLIC;" in init
    migrate_envs = (f"{n}-migrate.env" for n in DATABASE_SERVICES)
    for secret in ("postgres.env", *(f"{n}.env" for n in DATABASE_SERVICES), *migrate_envs, "hot-signer.seed"):
        mode = stat.S_IMODE((out / secret).stat().st_mode)
        assert mode & 0o077 == 0, f"{secret} is {oct(mode)}: readable beyond its owner"
    assert stat.S_IMODE(out.stat().st_mode) == 0o700  # postgres-init.sql (0644, read by the container) sits inside


def _env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if line)


def test_migrations_run_as_the_owner_and_services_as_a_runtime_role(compose: dict[str, Any], tmp_path: Path) -> None:
    """Only a migrate-<service> job logs in as its database's owner; the service logs in as a role the migrations
    grant the use of the data (MIGRATIONS_RUNTIME_ROLE), which cannot disable a trigger nor drop a constraint."""
    out = ensure_compose_secrets(tmp_path)
    init = (out / "postgres-init.sql").read_text(encoding="utf-8")
    services = compose["services"]
    for name in DATABASE_SERVICES:
        owner, app = owner_role(name), runtime_role(name)
        assert owner != app
        assert f"CREATE ROLE {owner} LOGIN" in init
        assert f"CREATE ROLE {app} LOGIN" in init
        assert f"CREATE DATABASE prizeflow_{name} OWNER {owner};" in init
        migrate, runtime = _env(out / f"{name}-migrate.env"), _env(out / f"{name}.env")
        assert migrate["DATABASE_URL"].startswith(f"postgresql://{owner}:")
        assert migrate["MIGRATIONS_RUNTIME_ROLE"] == app
        assert runtime["DATABASE_URL"].startswith(f"postgresql://{app}:")
        assert "MIGRATIONS_RUNTIME_ROLE" not in runtime
        assert services[f"migrate-{name}"]["env_file"] == [f"deploy/compose/secrets/{name}-migrate.env"]
    # No long-running container reads an owner's credentials.
    for name, svc in services.items():
        if not name.startswith("migrate-"):
            assert not [f for f in svc.get("env_file") or [] if f.endswith("-migrate.env")], name


def test_secrets_from_before_the_runtime_roles_are_refused(tmp_path: Path) -> None:
    """An old secrets directory (one role per service, its owner) would start services as owners: it is refused."""
    out = ensure_compose_secrets(tmp_path)
    (out / "settlement-migrate.env").unlink()
    with pytest.raises(RuntimeError, match="predates the owner/runtime database roles"):
        ensure_compose_secrets(tmp_path)


def test_a_non_root_run_makes_mounted_secrets_readable_in_containers_and_nowhere_else(tmp_path: Path) -> None:
    """Without root the files cannot be given to uid 10001 (or Grafana's 472): the ones compose mounts into a
    container are readable by any uid, inside a 0700 directory no other host user can enter; what compose itself
    reads (env files) stays the owner's. Files an earlier run left unreadable (0400) are opened up on the next."""
    with mock.patch("os.geteuid", return_value=1000):
        out = ensure_compose_secrets(tmp_path)
        os.chmod(out / "hot-signer.seed", 0o400)
        ensure_compose_secrets(tmp_path)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in secrets_module.MOUNTED_SECRETS:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o444, name
    key = next(p for p in (out / "identity").iterdir() if p.name != "jwks.json")
    assert stat.S_IMODE(key.stat().st_mode) == 0o444  # mounted into the simulator
    for env_file in ("postgres.env", "signer.env", "signer-migrate.env"):
        assert stat.S_IMODE((out / env_file).stat().st_mode) & 0o077 == 0, env_file


def test_a_root_run_gives_each_mounted_secret_to_its_containers_user_alone(tmp_path: Path) -> None:
    chowned: dict[str, int] = {}
    with (
        mock.patch("os.geteuid", return_value=0),
        mock.patch("os.chown", side_effect=lambda p, uid, gid: chowned.update({Path(p).name: uid})),
    ):
        out = ensure_compose_secrets(tmp_path)
    assert chowned["hot-signer.seed"] == secrets_module.IMAGE_UID
    assert chowned["grafana-admin-password"] == secrets_module.GRAFANA_UID
    assert stat.S_IMODE((out / "hot-signer.seed").stat().st_mode) == 0o400


def test_a_stack_that_fails_says_when_the_hosts_firewall_drops_its_internal_networks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge_nf = tmp_path / "bridge-nf-call-iptables"
    bridge_nf.write_text("1\n", encoding="ascii")
    policy = {"rules": "-P FORWARD DROP\n-A FORWARD -j DOCKER-USER\n"}

    def iptables(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        assert argv[1:] == ["-S", "FORWARD"]
        return subprocess.CompletedProcess(argv, 0, stdout=policy["rules"], stderr="")

    monkeypatch.setattr("prizeflow_devstack.compose.shutil.which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr("prizeflow_devstack.compose.subprocess.run", iptables)
    assert "FORWARD policy is DROP" in secrets_module.firewall_note(bridge_nf)
    policy["rules"] = "-P FORWARD ACCEPT\n"
    assert secrets_module.firewall_note(bridge_nf) == ""
    bridge_nf.write_text("0\n", encoding="ascii")
    policy["rules"] = "-P FORWARD DROP\n"
    assert secrets_module.firewall_note(bridge_nf) == "", "bridged packets that skip iptables are not dropped by it"
    assert secrets_module.firewall_note(tmp_path / "absent") == ""
