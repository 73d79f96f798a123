"""The whole platform as separate OS processes, for e2e tests, fault injection and the end-to-end bench.

Unlike `prizeflow-dev up` (one long-lived stack per checkout), a `Platform` is private to its caller:
its own databases (`<prefix>_<service>`), its own topics (`KAFKA_TOPIC_SUFFIX`, provisioned before the
services start and deleted by `stop()`), its own ports, secrets, dev identity (`identity`: the key pair whose
JWKS its services verify tokens against) and logs, on the shared real PostgreSQL and Kafka. Services can be
SIGKILLed and restarted at will.

Replicas: `replicas={"settlement": 3}` runs three processes of settlement on its one database, in its consumer
groups, each with its own HTTP port. The first is `procs["settlement"]` (the one its peers and `url()` address);
the others are `procs["settlement#2"]`, … (`replica_names`). `add_replica` starts one more under load (Kafka
rebalances the group), `kill` SIGKILLs any one of them.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prizeflow_devstack import owners
from prizeflow_devstack.devenv import IDENTITY_ENV, generate_dev_env
from prizeflow_devstack.infra import Infra, create_database, drop_database
from prizeflow_devstack.paths import resolve_root
from prizeflow_devstack.ports import HOST, pick_free_port
from prizeflow_devstack.procs import run_sync, tail
from prizeflow_devstack.supervisor import (
    ServiceSpec,
    ServiceStartError,
    discover_services,
    health_ok,
    migrate,
    peer_settings,
    peer_url_env,
    service_argv,
)
from prizeflow_devstack.topics import delete_suffixed, provision_or_fail
from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.settings import audience_for

REPLICA_SEP = "#"  # `settlement#2`: the second process of settlement


@dataclass
class Proc:
    spec: ServiceSpec
    port: int | None
    database_url: str | None
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    peak_rss_kb: int = 0

    @property
    def url(self) -> str:
        assert self.port is not None, f"{self.spec.name} has no HTTP port"
        return f"http://{HOST}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def sample_rss(self) -> int:
        """Peak resident set (VmHWM) of the current process, remembered across restarts."""
        if self.alive and self.popen is not None:
            try:
                for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_rss_kb = max(self.peak_rss_kb, int(line.split()[1]))
            except OSError:
                pass
        return self.peak_rss_kb


# The stand-ins payouts' local settings name (`payouts_needs` in their `[tool.prizeflow.service]`): the providers'
# emulators of the payout rails the local providers parts name (payouts on those parts refuses to start without
# each one's URL; Stellar's is `soroban-rpc`, run on its own), the identity-verification vendor's (`kyc-api`: the dev
# settings name it payouts' KYC vendor) and the sanctions lists' publisher (`sanctions-lists`: payouts screens every
# payout against them; a platform without it screens nothing, which only the dev profile allows). Every platform
# that runs payouts runs these too; a new rail's emulator joins by declaring it, not by an entry here.
if TYPE_CHECKING:
    RAIL_EMULATORS: tuple[str, ...]


@functools.cache
def rail_emulators() -> tuple[str, ...]:
    return tuple(s.name for s in discover_services() if s.payouts_needs)


def __getattr__(name: str) -> Any:
    """`RAIL_EMULATORS`, found on first use (the checkout's services read then, not at import)."""
    if name == "RAIL_EMULATORS":
        return rail_emulators()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class Platform:
    infra: Infra
    workdir: Path
    # Every port is assigned before any process spawns, so the order does not matter: each finds the others
    # (`<NAME>_URL`) whether they are up yet or not. `rates-api` is the rates provider rewards quotes conversions from
    # (RATES_API_URL; without it a dev platform quotes nothing).
    services: tuple[str, ...] = field(
        default_factory=lambda: (
            "settlement", "rewards", "payouts", "signer", "soroban-rpc", "webhooks", "dev-idp", "console", "rates-api",
            *rail_emulators(),
        )
    )  # fmt: skip
    env: dict[str, str] = field(default_factory=dict)  # extra settings for every process
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)  # per service
    replicas: dict[str, int] = field(default_factory=dict)  # processes per service (default 1)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    procs: dict[str, Proc] = field(default_factory=dict)
    _identity: DevIdentity | None = field(default=None, init=False, repr=False)

    @property
    def identity(self) -> DevIdentity:
        """The dev identity provider of this platform: mint tokens its services accept with `identity.issue`."""
        if self._identity is None:
            raise RuntimeError("the platform's dev identity exists once start() has run")
        return self._identity

    @property
    def suffix(self) -> str:
        return f".e2e{self.run_id}"

    def database_name(self, service: str) -> str:
        return f"pf{self.run_id}_{service.replace('-', '_')}"

    def start(self, *, ready_timeout: float = 90.0) -> Platform:
        specs = {s.name: s for s in discover_services()}
        missing = [n for n in self.services if n not in specs]
        if missing:
            raise ServiceStartError(f"unknown services {missing}; discovered: {sorted(specs)}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        dev = generate_dev_env(self.workdir / "secrets", root=resolve_root(None))
        self._identity = DevIdentity.from_jwks_url(dev["JWT_JWKS_URL"])
        self._base_env = {
            **{k: v for k, v in os.environ.items() if k not in IDENTITY_ENV},
            **dev,
            **self.infra.env(),
            "KAFKA_TOPIC_SUFFIX": self.suffix,
            "PYTHONUNBUFFERED": "1",
            "LOG_JSON": "true",
            **self.env,
        }
        unknown = sorted(set(self.replicas) - set(self.services))
        if unknown or any(n < 1 for n in self.replicas.values()):
            raise ServiceStartError(f"replicas {self.replicas}: only of services in the platform, at least 1 each")
        for name in self.services:
            spec = specs[name]
            db_url = self._create_database(spec.name) if spec.database else None
            self.procs[name] = self._new_proc(spec, name, db_url)
            for n in range(2, self.replicas.get(name, 1) + 1):
                self.procs[f"{name}{REPLICA_SEP}{n}"] = self._new_proc(spec, f"{name}{REPLICA_SEP}{n}", db_url)
        # Each service migrates its own database: the migrations run at once (each an alembic process).
        migrating = [self.procs[n] for n in self.services if self.procs[n].spec.migrations]
        with ThreadPoolExecutor(max_workers=max(1, len(migrating))) as pool:
            for done in [pool.submit(migrate, p.spec, self._env(p), p.log) for p in migrating]:
                done.result()
        owners.claim("topics", self.suffix)
        provision_or_fail(self.infra.kafka_bootstrap, self.suffix)  # services verify topics; they never create them
        for proc in self.procs.values():
            self._spawn(proc)
        for name in self.procs:
            self.wait_ready(name, timeout=ready_timeout)
        return self

    def _new_proc(self, spec: ServiceSpec, name: str, database_url: str | None) -> Proc:
        port = pick_free_port({p.port for p in self.procs.values() if p.port}) if spec.http_port_env else None
        return Proc(spec, port, database_url, self.workdir / f"{name}.log")

    def replica_names(self, service: str) -> list[str]:
        """Every process of `service` started so far, alive or not: the first one's name is the service's."""
        return [name for name, proc in self.procs.items() if proc.spec.name == service]

    def add_replica(self, service: str, *, ready_timeout: float = 90.0) -> str:
        """Start one more process of `service` (same database, same consumer groups, a port of its own) and
        wait until it is ready; its name (`<service>#<n>`)."""
        first = self.procs[service]
        name = f"{service}{REPLICA_SEP}{len(self.replica_names(service)) + 1}"
        proc = self.procs[name] = self._new_proc(first.spec, name, first.database_url)
        self._spawn(proc)
        self.wait_ready(name, timeout=ready_timeout)
        return name

    def _create_database(self, service: str) -> str:
        name = self.database_name(service)
        owners.claim("database", name)  # its caller killed, the next session or bench drops it
        return run_sync(lambda: create_database(self.infra, name))

    def _drop_database(self, service: str) -> None:
        name = self.database_name(service)
        run_sync(lambda: drop_database(self.infra, name))
        owners.release("database", name)

    def _env(self, proc: Proc) -> dict[str, str]:
        env = dict(self._base_env)
        peers = {
            peer_url_env(other.spec.name): other.url
            for name, other in self.procs.items()
            if other.port is not None and name == other.spec.name  # peers address a service's first process
        }
        env.update(peers)
        env.update(peer_settings(peers, self._base_env))
        if proc.database_url:
            env["DATABASE_URL"] = proc.database_url
        if proc.spec.http_port_env and proc.port:
            env[proc.spec.http_port_env] = str(proc.port)
        env["PRIZEFLOW_SERVICE_NAME"] = proc.spec.name
        for key, value in self.service_env.get(proc.spec.name, {}).items():
            if value == "":
                env.pop(key, None)  # an empty override removes a setting (e.g. a hot key from an HSM signer)
            else:
                env[key] = value
        return env

    def _spawn(self, proc: Proc) -> None:
        with proc.log.open("ab") as out:
            out.write(f"\n=== start #{proc.starts + 1} ({time.strftime('%F %T')}) ===\n".encode())
            out.flush()
            proc.popen = subprocess.Popen(
                service_argv(proc.spec), cwd=proc.spec.directory, env=self._env(proc), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        proc.starts += 1

    def wait_ready(self, name: str, *, timeout: float = 90.0) -> None:
        proc = self.procs[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive:
                raise ServiceStartError(f"{name} exited during startup\n--- {proc.log} ---\n{tail(proc.log)}")
            if proc.port is None or health_ok(proc.port):
                proc.sample_rss()
                if proc.spec.name == "payouts" and "sanctions-lists" in self.services:
                    self._wait_screening(name, deadline)
                return
            time.sleep(0.2)
        raise ServiceStartError(f"{name} not ready within {timeout}s\n--- {proc.log} ---\n{tail(proc.log)}")

    def _wait_screening(self, name: str, deadline: float) -> None:
        """Until payouts screens: a payout requested while a configured list has not loaded yet is held for two
        people (fail closed), which no test of a platform just started means to ask for."""
        proc = self.procs[name]
        token = self.identity.issue("platform", ["ops"], audience=audience_for("payouts"))
        listed: object = None
        request = urllib.request.Request(  # noqa: S310 - this platform's own process on localhost
            f"{proc.url}/v1/admin/compliance/screening/lists", headers={"Authorization": f"Bearer {token}"}
        )
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - as above
                    listed = json.loads(response.read())
            except (urllib.error.URLError, ConnectionError, ValueError) as err:
                listed = repr(err)
            if isinstance(listed, list) and listed and all(entry.get("version") for entry in listed):
                return
            time.sleep(0.2)
        raise ServiceStartError(f"{name} has not loaded its sanctions lists: {listed!r}\n{tail(proc.log)}")

    def url(self, name: str) -> str:
        return self.procs[name].url

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown hook runs, in-flight work is lost exactly as in a crash."""
        proc = self.procs[name]
        proc.sample_rss()
        if proc.popen is not None and proc.alive:
            os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(timeout=30)

    def terminate(self, name: str, *, timeout: float = 30.0) -> None:
        """SIGTERM and wait: the process shuts down as on a rollout (its consumers leave their groups)."""
        proc = self.procs[name]
        proc.sample_rss()
        if proc.popen is not None and proc.alive:
            os.killpg(proc.popen.pid, signal.SIGTERM)
            proc.popen.wait(timeout=timeout)

    def restart(self, name: str, *, ready_timeout: float = 90.0) -> None:
        self.kill(name)
        self._spawn(self.procs[name])
        self.wait_ready(name, timeout=ready_timeout)

    def sample_rss(self) -> dict[str, int]:
        return {name: proc.sample_rss() for name, proc in self.procs.items()}

    def stop(self, *, drop_databases: bool = True) -> None:
        for proc in self.procs.values():
            proc.sample_rss()
            if proc.popen is not None and proc.alive:
                os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            if proc.popen is None:
                continue
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(timeout=10)
        if drop_databases:
            for name, proc in self.procs.items():
                if proc.database_url and name == proc.spec.name:  # replicas share their first process's database
                    self._drop_database(name)
            # A long-lived dev broker would otherwise collect thousands of topics (and their open files).
            delete_suffixed(self.infra.kafka_bootstrap, self.suffix)
            owners.release("topics", self.suffix)

    def logs(self, name: str, lines: int = 60) -> str:
        return tail(self.procs[name].log, lines)
