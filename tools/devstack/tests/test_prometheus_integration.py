"""The devstack's Prometheus as a process: it starts on a remembered port, scrapes what it is given under the
service's name, loads the project's rules as they are in deploy/prometheus/rules, evaluates them (a service whose
dead-letter counter grows makes the DLQ alert fire), restarts on the same port, shows in `status`, and
`prizeflow-dev down` stops it and finds nothing left. A tiny in-test metrics endpoint stands in for a service."""

from __future__ import annotations

import http.server
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from prizeflow_devstack.cli import _down
from prizeflow_devstack.infra import status
from prizeflow_devstack.paths import Paths, find_root
from prizeflow_devstack.procs import pid_alive
from prizeflow_devstack.prometheus import RULES_DIR, api, fetch_alerts, leftover_pids, start_prometheus
from prizeflow_devstack.state import State, load_state, save_state
from prizeflow_devstack.supervisor import ServiceSpec, reserve_ports

pytestmark = pytest.mark.integration

T = TypeVar("T")


def until(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 30.0) -> T:
    """Poll `probe` until `done` holds; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s; last value: {value!r}")
        time.sleep(0.2)


class _Settlement(http.server.BaseHTTPRequestHandler):
    """/metrics of a settlement whose consumer dead-letters one more record at every scrape."""

    scrapes = 0

    def do_GET(self) -> None:
        if self.path != "/metrics":
            self.send_response(404)
            self.end_headers()
            return
        type(self).scrapes += 1
        body = (
            "# TYPE prizeflow_settlement_events_dead_lettered_total counter\n"
            "prizeflow_settlement_events_dead_lettered_total"
            f'{{consumer="settlement-rounds",topic="prizeflow.game.rounds.v1",reason="malformed_json"}} '
            f"{type(self).scrapes}\n"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def settlement() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Settlement)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _rule_names(rules: Path) -> set[str]:
    names: set[str] = set()
    for path in rules.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(rule.get("alert") or rule["record"] for rule in group["rules"])
    return names


def _targets(address: str) -> dict[str, str]:
    active = api(address, "/api/v1/targets")["data"]["activeTargets"]
    return {t["labels"]["job"]: t["health"] for t in active}


def _loaded_rules(address: str) -> set[str]:
    return {rule["name"] for group in api(address, "/api/v1/rules")["data"]["groups"] for rule in group["rules"]}


def test_the_devstack_prometheus_scrapes_loads_the_rules_fires_and_is_stopped_by_down(
    tmp_path: Path, settlement: str
) -> None:
    rules = tmp_path / RULES_DIR
    shutil.copytree(find_root() / RULES_DIR, rules)  # whatever the project's rules are now
    expected_rules = _rule_names(rules)
    assert "PrizeflowEventsDeadLettered" in expected_rules
    paths = Paths(tmp_path)
    state = State()
    try:
        address = start_prometheus(paths, state, {"settlement": settlement}, interval_s=1)
        save_state(paths, state)
        first_pid = state.prometheus.pid
        assert address == f"http://127.0.0.1:{state.prometheus.port}"
        assert load_state(paths).prometheus.port == state.prometheus.port

        until(lambda: _targets(address), lambda t: t == {"settlement": "up"})
        assert until(lambda: _loaded_rules(address), lambda names: names == expected_rules)
        firing = until(
            lambda: [a for a in fetch_alerts(address) if a.state == "firing"],
            lambda alerts: any(a.name == "PrizeflowEventsDeadLettered" for a in alerts),
        )
        dlq = next(a for a in firing if a.name == "PrizeflowEventsDeadLettered")
        assert dlq.labels["job"] == "settlement"
        assert dlq.labels["consumer"] == "settlement-rounds"
        assert dlq.severity == "warning"
        assert "settlement-rounds" in dlq.summary

        shown = status(tmp_path).prometheus
        assert shown.running
        assert shown.pid == first_pid
        assert shown.address == address

        again = start_prometheus(paths, state, {"settlement": settlement}, interval_s=1)  # a second `up`
        save_state(paths, state)
        assert again == address  # the same port
        assert first_pid is not None
        assert not pid_alive(first_pid)
        assert state.prometheus.pid != first_pid
    finally:
        assert _down(tmp_path) == 0  # stops it and finds no process of ours left
    assert leftover_pids(paths) == []
    assert load_state(paths).prometheus.pid is None
    assert not status(tmp_path).prometheus.running


def test_ports_are_reserved_before_the_services_start_and_kept(tmp_path: Path) -> None:
    spec = ServiceSpec(name="echo", directory=tmp_path, command=("x",), http_port_env="HTTP_PORT")
    worker = ServiceSpec(name="worker", directory=tmp_path, command=("x",))
    ports = reserve_ports([spec, worker], tmp_path)
    assert set(ports) == {"echo"}
    assert load_state(Paths(tmp_path)).services["echo"].port == ports["echo"]
    assert reserve_ports([spec, worker], tmp_path) == ports  # what start_services will use
