"""Pure parts of the devstack: ports, state file, lock, root discovery, service discovery, URLs."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from prizeflow_devstack import kafka, owners, ports
from prizeflow_devstack.infra import Infra, _own_url, asyncpg_dsn, to_asyncpg_url
from prizeflow_devstack.paths import Paths, RootNotFoundError, find_root
from prizeflow_devstack.ports import pick_free_port, port_is_free, remembered_or_free
from prizeflow_devstack.state import KafkaState, ServiceState, State, load_state, locked, save_state
from prizeflow_devstack.supervisor import ServiceSpecError, discover_services, parse_service_spec


@pytest.mark.integration  # binds ports or starts processes
def test_pick_free_port_is_bindable_and_respects_exclusions() -> None:
    first = pick_free_port()
    assert port_is_free(first)
    assert pick_free_port(exclude={first}) != first


@pytest.mark.integration  # binds ports or starts processes
def test_picked_ports_stay_out_of_the_range_outgoing_connections_draw_from() -> None:
    """A picked port is promised to a listener that may bind a minute later (a compose tier); a port from the
    ephemeral range could by then be some other lane's client's local port (CI failed on exactly that)."""
    low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    picked = {pick_free_port() for _ in range(50)}
    assert all(not low <= port <= high for port in picked), sorted(picked)
    assert len(picked) > 40  # spread out, so two lanes picking at once rarely choose the same one


@pytest.mark.integration  # binds ports or starts processes
def test_a_port_promised_to_a_live_process_is_picked_by_no_other_until_it_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port a process picked stays its own while nothing listens on it (a service it stopped and will start
    again on the same address): no other lane picks it; a dead process's promise is taken over."""
    monkeypatch.setenv("PRIZEFLOW_PORTS_DIR", str(tmp_path))
    held = next(p for p in range(15100, 16000) if port_is_free(p) and port_is_free(p + 1))
    free = held + 1
    monkeypatch.setattr(ports, "_outside_ephemeral", lambda: range(held, free + 1))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / str(held)).write_text(owners.record_of(other.pid))
        assert pick_free_port() == free
        again = pick_free_port()  # free is now this process's: handed out once
        assert again not in (held, free)
    finally:
        other.kill()
        other.wait()
    assert pick_free_port() == held
    assert json.loads((tmp_path / str(held)).read_text())["pid"] == os.getpid()


@pytest.mark.integration  # binds ports or starts processes
def test_remembered_port_is_kept_when_free_and_replaced_when_busy() -> None:
    port = pick_free_port()
    assert remembered_or_free(port) == port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        assert remembered_or_free(port) != port
    assert remembered_or_free(None) > 0


def test_state_round_trips_and_ignores_unknown_keys(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    state = State(kafka=KafkaState(port=9092, controller_port=9093, pid=1))
    state.services["settlement"] = ServiceState(pid=2, port=8001)
    save_state(paths, state)
    assert load_state(paths) == state
    raw = json.loads(paths.state_file.read_text())
    raw["kafka"]["from_the_future"] = True
    paths.state_file.write_text(json.dumps(raw))
    assert load_state(paths).kafka.port == 9092
    assert load_state(paths).used_ports() == {9092, 9093, 8001}


def test_missing_state_is_empty(tmp_path: Path) -> None:
    assert load_state(Paths(tmp_path)) == State()


@pytest.mark.integration  # binds ports or starts processes
def test_lock_is_reentrant_in_process_and_exclusive_across_processes(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    probe = textwrap.dedent(
        f"""
        import fcntl, os, sys
        fd = os.open({str(paths.lock_file)!r}, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.exit(3)
        sys.exit(0)
        """
    )
    with locked(paths), locked(paths):
        assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 3
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


def test_find_root_walks_up_to_the_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["tools/*"]\n')
    member = tmp_path / "tools" / "x"
    member.mkdir(parents=True)
    (member / "pyproject.toml").write_text('[project]\nname = "x"\n')
    monkeypatch.delenv("PRIZEFLOW_ROOT", raising=False)
    monkeypatch.chdir(member)
    assert find_root() == tmp_path.resolve()
    monkeypatch.setenv("PRIZEFLOW_ROOT", str(member))
    assert find_root() == member.resolve()


def test_find_root_fails_loudly_outside_a_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIZEFLOW_ROOT", raising=False)
    with pytest.raises(RootNotFoundError):
        find_root(tmp_path)


def _member(root: Path, rel: str, service_toml: str) -> Path:
    directory = root / rel
    directory.mkdir(parents=True)
    (directory / "pyproject.toml").write_text(f'[project]\nname = "{directory.name}"\n\n{service_toml}')
    return directory


def test_discovery_finds_declared_services_only(tmp_path: Path) -> None:
    settlement = _member(
        tmp_path,
        "services/settlement",
        textwrap.dedent(
            """
            [tool.prizeflow.service]
            name = "settlement"
            command = ["python", "-m", "prizeflow_settlement"]
            http_port_env = "HTTP_PORT"
            database = "prizeflow_settlement"
            migrations = "alembic.ini"
            """
        ),
    )
    _member(tmp_path, "tools/simulator", '[tool.prizeflow.service]\nname = "simulator"\ncommand = ["sim"]\n')
    _member(tmp_path, "tools/devstack", "")
    specs = discover_services(tmp_path)
    assert [s.name for s in specs] == ["settlement", "simulator"]
    first = specs[0]
    assert first.command == ("python", "-m", "prizeflow_settlement")
    assert first.http_port_env == "HTTP_PORT"
    assert first.database == "prizeflow_settlement"
    assert first.migrations == settlement / "alembic.ini"
    assert specs[1].http_port_env is None
    assert specs[1].database is None


def test_discovery_of_an_empty_workspace_finds_nothing(tmp_path: Path) -> None:
    assert discover_services(tmp_path) == []


@pytest.mark.parametrize(
    "body",
    [
        'name = "x"\n',
        'name = "x"\ncommand = "python -m x"\n',
        'name = "has space"\ncommand = ["x"]\n',
        'name = "x"\ncommand = ["x"]\ndatabase = 3\n',
    ],
)
def test_invalid_service_declarations_fail(tmp_path: Path, body: str) -> None:
    directory = _member(tmp_path, "services/x", f"[tool.prizeflow.service]\n{body}")
    with pytest.raises(ServiceSpecError):
        parse_service_spec(directory / "pyproject.toml")


def test_duplicate_service_names_fail(tmp_path: Path) -> None:
    for rel in ("services/a", "services/b"):
        _member(tmp_path, rel, '[tool.prizeflow.service]\nname = "same"\ncommand = ["x"]\n')
    with pytest.raises(ServiceSpecError, match="duplicate"):
        discover_services(tmp_path)


def test_urls() -> None:
    assert to_asyncpg_url("postgres://u:p@h:5/db") == "postgresql+asyncpg://u:p@h:5/db"
    assert asyncpg_dsn("postgresql+asyncpg://u@h:5/db") == "postgresql://u@h:5/db"
    infra = Infra("postgresql+asyncpg://postgres@127.0.0.1:5432/postgres", "127.0.0.1:9092", managed=True)
    assert infra.database_url("payouts") == "postgresql+asyncpg://postgres@127.0.0.1:5432/payouts"
    assert infra.env() == {
        "DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    }
    assert _own_url("postgresql://postgres@127.0.0.1:5432/x", 5432)
    assert not _own_url("postgresql://postgres@db.example:5432/x", 5432)
    assert _own_url("127.0.0.1:9092", 9092)


@pytest.mark.integration  # binds ports or starts processes
def test_supervisor_starts_waits_ready_and_stops_a_service(tmp_path: Path) -> None:
    """A real process with /health/ready; no database, so no infrastructure is needed."""
    from prizeflow_devstack.procs import pid_alive
    from prizeflow_devstack.supervisor import running_services, start_services, stop_services

    directory = _member(
        tmp_path,
        "services/echo",
        '[tool.prizeflow.service]\nname = "echo"\ncommand = ["python", "app.py"]\nhttp_port_env = "HTTP_PORT"\n',
    )
    (directory / "app.py").write_text(
        textwrap.dedent(
            """
            import http.server, os
            class H(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200 if self.path == "/health/ready" else 404)
                    self.end_headers()
            http.server.HTTPServer(("127.0.0.1", int(os.environ["HTTP_PORT"])), H).serve_forever()
            """
        )
    )
    fake = Infra("postgresql+asyncpg://postgres@127.0.0.1:1/postgres", "127.0.0.1:1", managed=True)
    [svc] = start_services(fake, tmp_path, deadline_s=20)
    assert pid_alive(svc.pid)
    assert svc.port is not None
    assert os.getpgid(svc.pid) == svc.pid  # its own process group
    [again] = start_services(fake, tmp_path, deadline_s=20)
    assert again.pid == svc.pid  # idempotent
    assert [r.spec.name for r in running_services(tmp_path)] == ["echo"]
    assert stop_services(tmp_path, grace=5) == ["echo"]
    assert not pid_alive(svc.pid)
    assert running_services(tmp_path) == []


@pytest.mark.integration  # binds ports or starts processes
def test_a_service_that_dies_fails_with_its_log(tmp_path: Path) -> None:
    from prizeflow_devstack.supervisor import ServiceStartError, start_services

    directory = _member(
        tmp_path,
        "services/crash",
        '[tool.prizeflow.service]\nname = "crash"\n'
        'command = ["python", "-c", "raise SystemExit(\'boom-42\')"]\n'
        'http_port_env = "HTTP_PORT"\n',
    )
    assert directory.is_dir()
    fake = Infra("postgresql+asyncpg://postgres@127.0.0.1:1/postgres", "127.0.0.1:1", managed=True)
    with pytest.raises(ServiceStartError, match="boom-42"):
        start_services(fake, tmp_path, deadline_s=20)


def test_generated_kafka_cluster_ids_are_valid_and_never_start_with_a_dash() -> None:
    """1 in 64 random ids starts with `-`, which `kafka-storage format --cluster-id` reads as an option."""
    ids = [kafka._cluster_id() for _ in range(20_000)]  # ~312 raw draws would have started with "-"
    assert all(kafka.valid_cluster_id(i) for i in ids)
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)


def test_a_cluster_id_that_would_start_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    dashed = uuid.UUID(bytes=base64.urlsafe_b64decode("-" + "A" * 21 + "=="))
    plain = uuid.UUID("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9")
    draws = iter([dashed, plain])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    assert kafka._cluster_id() == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")


@pytest.mark.parametrize(
    "cluster_id",
    [
        "-AAAAAAAAAAAAAAAAAAAAA",  # an option to the storage tool
        "AAAAAAAAAAAAAAAAAAAAA",  # 21 characters
        "AAAAAAAAAAAAAAAAAAAAAAA",  # 23 characters
        "AAAAAAAAAAAAAAAAAAAAAB",  # not the canonical encoding of 16 bytes
        "AAAAAAAAAAAAAAAAAAAA+A",  # standard, not URL-safe, base64
        "AAAAAAAAAAAAAAAAAAAAAA==",  # padded
    ],
)
def test_invalid_cluster_ids_are_recognised(cluster_id: str) -> None:
    assert not kafka.valid_cluster_id(cluster_id)


def test_restarting_kafka_where_this_devstack_runs_none_refuses_instead_of_starting_a_stray_broker(
    tmp_path: Path,
) -> None:
    from prizeflow_devstack.infra import InfraError, restart_kafka

    (tmp_path / "pyproject.toml").write_text("[tool.uv.workspace]\nmembers = []\n")
    with pytest.raises(InfraError, match="nothing to restart"):
        restart_kafka(tmp_path)
    assert load_state(Paths(tmp_path)).kafka.pid is None


def test_a_path_matches_a_process_only_where_a_path_begins() -> None:
    """Another checkout whose path ends with this one's is neither taken for this one's broker nor stopped with it
    (a clone at /check/work/main beside /work/main: the devstack of /work/main waited 90 s on the clone's Kafka)."""
    from prizeflow_devstack.procs import occurs

    config = "/work/main/.devstack/kafka/server.properties"
    assert occurs(config, f"java -Xmx1g kafka.Kafka {config}")
    assert occurs(config, f"java -Dconfig={config}")
    assert not occurs(config, "java kafka.Kafka /check/work/main/.devstack/kafka/server.properties")
    assert occurs("/work/main/.devstack/cluster", "/work/main/.devstack/cluster/bin/kubelet --config x")
    assert not occurs("/work/main/.devstack/cluster", "/check/work/main/.devstack/cluster/bin/kubelet")
    assert occurs("dockerd", "/usr/sbin/dockerd -H unix:///x")
