"""The secrets and generated settings `docker-compose.yml` reads, under `deploy/compose/secrets/` (ignored by git).

`prizeflow-dev compose-secrets` writes them once (it never replaces what exists, so a running stack keeps its keys):

- `identity/`: the dev identity (Ed25519 key pair; `jwks.json` is what every service verifies tokens against, the
  private key is mounted only into the simulator, which mints its players' tokens);
- `hot-signer.seed`: the signer's Stellar hot key (a compose *secret*, a file: never an environment value; readable by
  the image's user without compose running as root: `share_with_container`);
- `postgres.env`, `postgres-init.sql`: the superuser's password; per service one database, its owner role and a
  runtime role;
- `<service>-migrate.env`: its migrations job's `DATABASE_URL` (the owner) and `MIGRATIONS_RUNTIME_ROLE`;
- `<service>.env`: that service's `DATABASE_URL` (its runtime role) and secrets it reads from the environment;
- `stack.env`: generated, non-secret settings every container shares (the payout source account).

The compose stack runs the explicit dev profile (`PRIZEFLOW_PROFILE=dev`: a file JWKS, the sandbox rail); production
is deploy/k8s, with secrets from the platform.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import yaml

from prizeflow_devstack.docker_engine import Engine
from prizeflow_devstack.images import podman, podman_env
from prizeflow_runtime.dev_identity import DevIdentity, write_private_file

# The uid:gid the images run as (Containerfile): file secrets are bind mounts, so they must be readable by it.
IMAGE_UID = 10001
GRAFANA_UID = 472  # the official Grafana image's user
# Mounted into containers (compose secrets and the simulator's identity volume); every other file here is read by
# compose itself (env_file) or, for postgres-init.sql, by the postgres image's entrypoint (0644).
MOUNTED_SECRETS = {"hot-signer.seed": IMAGE_UID, "grafana-admin-password": GRAFANA_UID}
DATABASE_SERVICES = ("settlement", "rewards", "payouts", "signer", "webhooks")


def owner_role(service: str) -> str:
    """The role owning a service's database: its migrations run as it, the service never does."""
    return f"prizeflow_{service}"


def runtime_role(service: str) -> str:
    """The role a service runs as: reads and writes its rows, no DDL, not the owner."""
    return f"prizeflow_{service}_app"


def secrets_dir(root: Path) -> Path:
    return root / "deploy" / "compose" / "secrets"


def _write(path: Path, data: str, *, mode: int = 0o600) -> None:
    if path.exists():
        return
    write_private_file(path, data.encode())
    os.chmod(path, mode)


def share_with_container(path: Path, uid: int) -> None:
    """Make a file secret readable by the container user `uid` that compose bind-mounts it into.

    Run as root, the file is handed to that user (`uid:uid`, 0400): nobody else in the container or on the host
    reads it. Run as anyone else (a normal Docker or podman user), the file cannot be given away, so it is made
    readable by every uid (0444) and confined on the host by its directory instead: `deploy/compose/secrets/` is
    0700, so no other host user can reach it, while a bind mount (which bypasses the directory) lets the container's
    user read it — under rootful Docker (the host's uid) and rootless (the file appears as root's) alike. The
    alternative, starting as root to read secrets and then dropping to the service user, would need setuid/setgid
    capabilities in containers that drop them all with no-new-privileges. Applied on every run, so files written
    by an earlier version (0400, the host user's) are readable too."""
    if os.geteuid() == 0:
        os.chown(path, uid, uid)
        os.chmod(path, 0o400)
    else:
        os.chmod(path, 0o444)


def ensure_compose_secrets(root: Path) -> Path:
    """Create what is missing; return the directory."""
    from stellar_sdk import Keypair

    out = secrets_dir(root)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(out, 0o700)  # the host-side boundary of the secrets a non-root run makes readable in containers
    identity = DevIdentity.ensure(out / "identity")
    jwks = out / "identity" / "jwks.json"
    os.chmod(jwks, 0o644)  # public keys
    os.chmod(out / "identity", 0o755)  # noqa: S103 - the simulator's user enters it; the parent is 0700
    key_file = next(p for p in (out / "identity").iterdir() if p.name != "jwks.json")
    share_with_container(key_file, IMAGE_UID)  # the simulator (uid 10001) mints tokens with it
    del identity

    seed = out / "hot-signer.seed"
    if not seed.exists():
        keypair = Keypair.random()
        _write(seed, keypair.secret, mode=0o400)
        source = keypair.public_key
        accounts = json.dumps({source: {"XLM": "100000000", "USDC": "100000000"}})
        _write(out / "stack.env", f"PAYOUT_SOURCE_ACCOUNT={source}\nSOROBAN_EMULATOR_ACCOUNTS={accounts}\n", mode=0o644)

    _write(out / "grafana-admin-password", secrets.token_urlsafe(18), mode=0o400)
    for name, uid in MOUNTED_SECRETS.items():
        share_with_container(out / name, uid)

    if (out / "postgres-init.sql").exists() and not (out / "settlement-migrate.env").exists():
        raise RuntimeError(
            f"{out} predates the owner/runtime database roles: remove it and the stack's postgres-data volume "
            "(`podman-compose down -v`), then run `prizeflow-dev compose-secrets` again"
        )
    owners = {name: secrets.token_urlsafe(24) for name in DATABASE_SERVICES}
    apps = {name: secrets.token_urlsafe(24) for name in DATABASE_SERVICES}
    if not (out / "postgres-init.sql").exists():
        # Per service two roles: the owner of its database (only its migrate-<service> job logs in as it) and the
        # runtime role the service runs as, which the migrations grant the use of the data and nothing more (no
        # DDL: it cannot disable the append-only triggers nor drop a constraint).
        init = [f"CREATE ROLE {owner_role(n)} LOGIN PASSWORD '{pw}';" for n, pw in owners.items()]
        init += [f"CREATE ROLE {runtime_role(n)} LOGIN PASSWORD '{pw}';" for n, pw in apps.items()]
        init += [f"CREATE DATABASE prizeflow_{n} OWNER {owner_role(n)};" for n in owners]
        # PUBLIC may connect to every database by default: the owner reaches its own, the runtime role is granted
        # CONNECT on its own by the migrations, and no role any other.
        init += [
            f"REVOKE CONNECT ON DATABASE {db} FROM PUBLIC;" for db in ("postgres", *map("prizeflow_{}".format, owners))
        ]
        # The sandbox rail keeps its books in payouts' database, in a schema of the runtime role's (the rail's
        # tables, never the service's own): made here because the runtime role may not create schemas.
        init += ["\\connect prizeflow_payouts", f"CREATE SCHEMA sandbox AUTHORIZATION {runtime_role('payouts')};"]
        # The superuser's init script runs as uid postgres inside the container, through psql (`\connect` works).
        _write(out / "postgres-init.sql", "\n".join(init) + "\n", mode=0o644)
        _write(out / "postgres.env", f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}\n")
        sandbox_secret = secrets.token_hex(24)
        for name in DATABASE_SERVICES:
            owner_url = f"postgresql://{owner_role(name)}:{owners[name]}@postgres:5432/prizeflow_{name}"
            migrate = [f"DATABASE_URL={owner_url}", f"MIGRATIONS_RUNTIME_ROLE={runtime_role(name)}"]
            _write(out / f"{name}-migrate.env", "\n".join(migrate) + "\n")
            lines = [f"DATABASE_URL=postgresql://{runtime_role(name)}:{apps[name]}@postgres:5432/prizeflow_{name}"]
            if name == "webhooks":
                lines.append(f"WEBHOOK_SECRET_SANDBOX={sandbox_secret}")
            _write(out / f"{name}.env", "\n".join(lines) + "\n")
    return out


# --- driving the compose file with podman-compose (make deploy-test) ----------------------------------------------

# What the compose file runs here: everything but Grafana, whose image cannot be pulled or built on this machine.
NOT_RUNNABLE_HERE = {"grafana": "grafana/grafana cannot be pulled (no registry) and Grafana has no Debian package"}
HTTP_SERVICES = ("settlement", "rewards", "payouts", "webhooks")
PORT_ENV = {
    "settlement": "PRIZEFLOW_SETTLEMENT_PORT",
    "rewards": "PRIZEFLOW_REWARDS_PORT",
    "payouts": "PRIZEFLOW_PAYOUTS_PORT",
    "webhooks": "PRIZEFLOW_WEBHOOKS_PORT",
    "kafka": "PRIZEFLOW_KAFKA_PORT",
    "prometheus": "PRIZEFLOW_PROMETHEUS_PORT",
    "grafana": "PRIZEFLOW_GRAFANA_PORT",
}


CONDITION_ORDER = ("", "service_started", "service_healthy", "service_completed_successfully")


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's dependencies with their conditions (the short list form means `service_started`)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


class ComposeError(RuntimeError):
    """The compose stack did not come up or go down as it should; the message carries what podman said."""


BRIDGE_NF_CALL_IPTABLES = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")


def firewall_note(bridge_nf: Path = BRIDGE_NF_CALL_IPTABLES) -> str:
    """Why containers on one of the stack's internal networks may not reach each other, when that is the host's
    firewall: bridged packets pass iptables' FORWARD chain (br_netfilter, which Docker loads) and its policy is
    DROP (which Docker sets when it switches IP forwarding on); podman 4.3's netavark accepts forwarded traffic for
    its routed networks only, not for `internal: true` ones (`signer-db`). Empty when that is not the case."""
    try:
        bridged = bridge_nf.read_text(encoding="ascii").strip() == "1"
    except OSError:
        return ""
    iptables = shutil.which("iptables")
    if not bridged or iptables is None:
        return ""
    rules = subprocess.run([iptables, "-S", "FORWARD"], capture_output=True, text=True, check=False, timeout=30)
    if "-P FORWARD DROP" not in rules.stdout.splitlines():
        return ""
    return (
        "\nthe host's iptables FORWARD policy is DROP and bridged traffic passes iptables (br_netfilter): podman "
        "drops every packet on the stack's internal networks (signer-db). A dockerd that switched IP forwarding on "
        "set that policy; `iptables -P FORWARD ACCEPT`, or a rule accepting the podman bridges, restores them"
    )


@dataclass
class ComposeStack:
    """`docker-compose.yml` under podman-compose, as one project with its own published ports."""

    root: Path
    project: str
    ports: dict[str, int]
    profiles: tuple[str, ...] = ()
    log: list[str] = field(default_factory=list)
    startup_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = podman_env(self.root)
        env.update({PORT_ENV[name]: str(port) for name, port in self.ports.items()})
        return env

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        profiles = [a for p in self.profiles for a in ("--profile", p)]
        argv = [_podman_compose(), "-f", str(self.root / "docker-compose.yml"), "-p", self.project, *profiles, *args]
        result = subprocess.run(
            argv, cwd=self.root, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        self.log.append(f"$ podman-compose {' '.join(args)}\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
        if check and result.returncode != 0:
            raise ComposeError(
                f"podman-compose {' '.join(args)} failed (exit {result.returncode}):\n{result.stderr[-4000:]}"
            )
        return result

    def services(self) -> list[str]:
        names = self.compose("config", "--services").stdout.split()
        return [n for n in names if n not in NOT_RUNNABLE_HERE]

    def definition(self) -> dict[str, Any]:
        doc: dict[str, Any] = yaml.safe_load((self.root / "docker-compose.yml").read_text(encoding="utf-8"))
        return doc

    def tiers(self) -> list[list[str]]:
        """The services this stack runs, in start order: each tier depends only on earlier ones."""
        wanted = set(self.services())
        deps = {name: set(depends_on(svc)) & wanted for name, svc in self.definition()["services"].items()}
        tiers: list[list[str]] = []
        placed: set[str] = set()
        while placed != wanted:
            tier = sorted(n for n in wanted - placed if deps[n] <= placed)
            if not tier:
                raise ComposeError(f"circular depends_on among {sorted(wanted - placed)}")
            tiers.append(tier)
            placed.update(tier)
        return tiers

    def up(self, *, timeout: float = 360) -> None:
        """Start the file tier by tier, each dependency condition enforced before its dependants start.

        podman-compose 1.6 on podman 4.3 cannot do it in one `up`: podman before 4.6 has no `wait
        --condition=healthy` (podman-compose then ignores `service_healthy`), `service_completed_successfully` is
        mapped to "stopped" whatever the exit code, and podman 4.3's `--requires` fails on a transitive dependency.
        So each tier starts with `up -d --no-deps`, and the driver itself waits: `service_healthy` by the
        container's own health check (`podman healthcheck run`), `service_completed_successfully` by exit code 0,
        `service_started` by the container running. Docker Compose honours the same file's conditions itself."""
        services = self.definition()["services"]
        conditions: dict[str, str] = {}
        for name in self.services():
            for dep, condition in depends_on(services[name]).items():
                conditions[dep] = max(conditions.get(dep, ""), condition, key=CONDITION_ORDER.index)
        deadline = time.monotonic() + timeout
        for tier in self.tiers():
            self.compose("up", "-d", "--no-deps", *tier, timeout=600)
            for name in tier:
                if name in conditions:
                    self._wait_condition(name, conditions[name], deadline)

    def _wait_condition(self, service: str, condition: str, deadline: float) -> None:
        while True:
            code = self.exit_code(service)
            if condition == "service_completed_successfully":
                if code == 0:
                    return
                if code is not None:
                    raise ComposeError(f"one-shot {service} exited {code}:\n{self.logs(service)}{firewall_note()}")
            elif code is not None:
                raise ComposeError(f"{service} exited {code} before it was {condition}:\n{self.logs(service)}")
            elif condition == "service_started" or self._healthy(service):
                return
            if time.monotonic() > deadline:
                raise ComposeError(f"{service} not {condition} in time:\n{self.logs(service)}{firewall_note()}")
            time.sleep(1)  # polling the container's own state

    def _healthy(self, service: str) -> bool:
        return podman(self.root, "healthcheck", "run", self.container(service), check=False).returncode == 0

    def containers(self) -> list[dict[str, object]]:
        """Every container of the project, running or not (podman's own view, not podman-compose's)."""
        out = podman(
            self.root, "ps", "-a", "--format", "json", "--filter", f"label=io.podman.compose.project={self.project}"
        )
        return list(json.loads(out.stdout or "[]"))

    def exit_code(self, service: str) -> int | None:
        for c in self.containers():
            labels = c.get("Labels") or {}
            assert isinstance(labels, dict)
            if labels.get("com.docker.compose.service") == service and c.get("Exited"):
                return int(str(c.get("ExitCode")))
        return None

    def logs(self, service: str, tail: int = 60) -> str:
        name = f"{self.project}_{service}_1"
        result = podman(self.root, "logs", "--tail", str(tail), name, check=False)
        return result.stdout + result.stderr

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def jobs(self) -> list[str]:
        return [s for s in self.services() if s == "topics" or s.startswith("migrate-")]

    def ready(self, service: str) -> bool:
        """/health/ready answers 200: through the published port, or (the signer publishes none) by running the
        container's own health check inside it."""
        if service in self.ports:
            try:
                with urllib.request.urlopen(f"{self.url(service)}/health/ready", timeout=2) as response:  # noqa: S310
                    return bool(response.status == HTTPStatus.OK)
            except OSError:
                return False
        return self._healthy(service)

    def wait_ready(self, *, timeout: float) -> None:
        """Every one-shot job exited 0 and every long-running service is ready; a job that failed, or a service not
        ready by the deadline, raises with its log."""
        deadline = time.monotonic() + timeout
        running = [s for s in self.services() if s not in self.jobs() and s not in ("postgres", "kafka", "prometheus")]
        pending = set(running) | set(self.jobs())
        while pending:
            for job in [j for j in self.jobs() if j in pending]:
                code = self.exit_code(job)
                if code == 0:
                    pending.discard(job)
                elif code is not None:
                    raise ComposeError(f"one-shot {job} exited {code}:\n{self.logs(job)}")
            for service in [s for s in running if s in pending]:
                if self.ready(service):
                    pending.discard(service)
            if pending and time.monotonic() > deadline:
                details = "\n".join(f"--- {s} ---\n{self.logs(s)}" for s in sorted(pending))
                raise ComposeError(f"not ready within {timeout:.0f} s: {sorted(pending)}\n{details}")
            if pending:
                time.sleep(1)  # polling the services' own readiness

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['kafka']}"

    def down(self) -> list[str]:
        """Stop and remove containers, networks and volumes; return what is still left (nothing, or a failure)."""
        self.compose("down", "-v", "-t", "20", timeout=300, check=False)
        left = [str(c.get("Names")) for c in self.containers()]
        nets = podman(self.root, "network", "ls", "--format", "{{.Name}}").stdout.split()
        left += [f"network {n}" for n in nets if n.startswith(f"{self.project}_")]
        vols = podman(self.root, "volume", "ls", "--format", "{{.Name}}").stdout.split()
        left += [f"volume {v}" for v in vols if v.startswith(f"{self.project}_")]
        return left


def _podman_compose() -> str:
    found = shutil.which("podman-compose") or str(Path(sys.executable).parent / "podman-compose")
    if not Path(found).is_file():
        raise ComposeError("podman-compose is not installed (it is in the dev dependency group: `make sync`)")
    return found


# --- driving the compose file with Docker Compose (the container tier, as the README runs it) -----------------------


@dataclass
class DockerComposeStack:
    """`docker-compose.yml` under Docker Compose on a Docker engine, as one project with its own published ports:
    `docker compose up --build` exactly as a user runs it (detached, waiting for health), every service of the file
    but `NOT_RUNNABLE_HERE`. `build_env` is what the builds need here (the wheel mirror, `PRIZEFLOW_FIND_LINKS`)."""

    root: Path
    project: str
    ports: dict[str, int]
    engine: Engine
    profiles: tuple[str, ...] = ()
    build_env: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    startup_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = self.engine.env()
        env.update({PORT_ENV[name]: str(port) for name, port in self.ports.items()})
        env.update(self.build_env)
        return env

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        profiles = [a for p in self.profiles for a in ("--profile", p)]
        argv = ["docker", "compose", "-f", str(self.root / "docker-compose.yml"), "-p", self.project, *profiles, *args]
        result = subprocess.run(
            argv, cwd=self.root, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        # Whole (bounded): the build's output says which layers came from the cache.
        self.log.append(f"$ docker compose {' '.join(args)}\n{result.stdout[-200_000:]}{result.stderr[-200_000:]}")
        if check and result.returncode != 0:
            raise ComposeError(
                f"docker compose {' '.join(args)} failed (exit {result.returncode}):\n{result.stderr[-6000:]}"
            )
        return result

    def services(self) -> list[str]:
        names = self.compose("config", "--services").stdout.split()
        return [n for n in names if n not in NOT_RUNNABLE_HERE]

    def up(self, *, timeout: float = 360, build_timeout: float = 1200) -> None:
        """`docker compose up --detach --build --wait`: every image of the file built from the repository, then
        every service started in `depends_on` order with its conditions (Docker Compose honours them itself) and
        waited for until healthy (a one-shot job: exited 0)."""
        wait = ("--wait", "--wait-timeout", str(int(timeout)))
        self.compose("up", "--detach", "--build", *wait, *self.services(), timeout=build_timeout + timeout)

    def containers(self) -> list[dict[str, Any]]:
        """Every container of the project, running or exited (`docker compose ps --all`, one JSON object a line)."""
        out = self.compose("ps", "--all", "--format", "json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def exit_code(self, service: str) -> int | None:
        for c in self.containers():
            if c.get("Service") == service and c.get("State") == "exited":
                return int(c.get("ExitCode", -1))
        return None

    def logs(self, service: str, tail: int = 60) -> str:
        result = self.compose("logs", "--no-color", "--tail", str(tail), service, check=False)
        return result.stdout + result.stderr

    def jobs(self) -> list[str]:
        return [s for s in self.services() if s == "topics" or s.startswith("migrate-")]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['kafka']}"

    def down(self) -> list[str]:
        """Stop and remove containers, networks and volumes (the built images stay: the next build is cached);
        return what of the project is still left (nothing, or a failure)."""
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=300, check=False)
        label = f"label=com.docker.compose.project={self.project}"
        left = []
        for kind, listing in (
            ("container", ["ps", "--all", "--filter", label, "--format", "{{.Names}}"]),
            ("network", ["network", "ls", "--filter", label, "--format", "{{.Name}}"]),
            ("volume", ["volume", "ls", "--filter", label, "--format", "{{.Name}}"]),
        ):
            left += [f"{kind} {name}" for name in self.engine.docker(*listing).stdout.split()]
        return left
