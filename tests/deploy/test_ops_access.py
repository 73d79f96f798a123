"""How `prizeflow-ops` reaches the services' APIs on a cluster (docs/ops-cli.md "On Kubernetes"): a `kubectl
port-forward` to each service's Service, on this machine's loopback, waited for until the service answers, the URLs
given to prizeflow-ops as written, the forwards closed. Checked for every k8s: block of the documentation that
forwards a port: each forward names a Service of the production bundle on the port that leads to its pods' HTTP
port, its health wait polls that forward on the path the pods' probes use, prizeflow-ops' own configuration accepts
the URLs as written (loopback plain HTTP is allowed outside the dev profile: the token stays on the machine) and its
parser the command, and every forward is closed. Whether the forward connects: the rehearsal on a real cluster."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from k8s_helpers import k8s_helpers
from k8s_procedures import Command, blocks, commands

from prizeflow_ops.cli import build_parser
from prizeflow_ops.config import SERVICES, load_config, url_env

H = k8s_helpers()
ROOT = Path(__file__).resolve().parents[2]
Doc = dict[str, Any]

pytestmark = pytest.mark.k8s

DOCS = (ROOT / "docs" / "ops-cli.md", ROOT / "docs" / "runbooks" / "sanctions-list-stale.md")
PID_FILE = re.compile(r"echo \$! >(?P<file>\S+)")


def _steps() -> Iterator[tuple[Path, str]]:
    """(document, step) of every k8s: block that forwards a port, across the documentation."""
    seen = set()
    for path in (*sorted((ROOT / "docs").rglob("*.md")), ROOT / "deploy" / "k8s" / "README.md"):
        for step, line, _ in blocks(path):
            if "port-forward" in line and (path, step) not in seen:
                seen.add((path, step))
                yield path, step


STEPS = list(_steps())
IDS = [f"{p.name}:k8s:{s}" for p, s in STEPS]


@cache
def _commands(path: Path, step: str) -> tuple[Command, ...]:
    return tuple(commands(path, step, H.checkout()))


def _forward(command: Command) -> tuple[str, int, int]:
    """(service, local port, Service port) of `kubectl port-forward svc/<service> L:R`."""
    target = command.argv[command.argv.index("port-forward") + 1]
    local, _, remote = command.argv[command.argv.index("port-forward") + 2].partition(":")
    assert target.startswith("svc/"), f"{command.line}: forward a Service (its pods come and go), not a pod"
    return target.removeprefix("svc/"), int(local), int(remote)


def _forwards(path: Path, step: str) -> dict[str, tuple[int, int, Command]]:
    """service → (local port, Service port, the command) of each forward of the step."""
    out = {}
    for command in _commands(path, step):
        if "port-forward" in command.argv:
            service, local, remote = _forward(command)
            out[service] = (local, remote, command)
    return out


def test_the_documented_way_exists() -> None:
    """ops-cli.md forwards all four APIs; the sanctions runbook payouts' (and nothing else reaches the APIs)."""
    assert set(STEPS) >= {(p, s) for p, s in ((DOCS[0], "reach"), (DOCS[1], "refresh"))}
    assert set(_forwards(DOCS[0], "reach")) == set(SERVICES)


@pytest.mark.parametrize(("path", "step"), STEPS, ids=IDS)
def test_each_port_forward_reaches_a_services_http_port(path: Path, step: str) -> None:
    docs = H.rendered("prod")
    forwards = _forwards(path, step)
    assert forwards
    polled: set[int] = set()
    for command in _commands(path, step):
        found = re.search(r"until curl -fsS http://127\.0\.0\.1:(\d+)(/[\w/]+) ", " ".join(command.argv))
        if found:
            polled.add(int(found.group(1)))
            assert found.group(2) == "/health/live", command.line
    for service, (local, remote, command) in forwards.items():
        svc = H.named(docs, "Service", service)["spec"]
        [port] = [p for p in svc["ports"] if p["port"] == remote]
        deployment = H.named(docs, "Deployment", service)
        assert H._matches({"matchLabels": svc["selector"]}, H._pod_labels(docs, service)), command.line
        container = H._container(deployment)
        assert port["targetPort"] in {p["name"] for p in container["ports"]}, command.line
        assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": port["targetPort"]}
        assert 1024 < local < 65536, "a port an operator's user may bind"
        assert local in polled, f"{command.line}: nothing waits until it answers"
    assert len({local for local, _, _ in forwards.values()}) == len(forwards), "one local port per service"


@pytest.mark.parametrize(("path", "step"), STEPS, ids=IDS)
def test_prizeflow_ops_takes_the_forwarded_urls_as_they_are_written(path: Path, step: str) -> None:
    forwards = _forwards(path, step)
    runs = [c for c in _commands(path, step) if "prizeflow-ops" in c.argv]
    assert runs
    for command in runs:
        env = dict(w.split("=", 1) for w in command.argv[: command.argv.index("uv")] if "=" in w)
        argv = list(command.argv[command.argv.index("prizeflow-ops") + 1 :])
        for service, url in ((s, env[url_env(s)]) for s in SERVICES if url_env(s) in env):
            parts = urlsplit(url)
            assert (parts.scheme, parts.hostname, parts.port) == ("http", "127.0.0.1", forwards[service][0]), url
        args = build_parser(io.StringIO(), io.StringIO()).parse_args(argv)
        services = args.services(args) if callable(args.services) else args.services
        config = load_config(
            {"PRIZEFLOW_OPS_TOKEN": "a.token.here", "PRIZEFLOW_PROFILE": "production", **env}, services
        )
        assert set(config.urls) == set(services), command.line


@pytest.mark.parametrize(("path", "step"), STEPS, ids=IDS)
def test_every_port_forward_is_closed(path: Path, step: str) -> None:
    """A forward left running holds its port (the next one fails to bind) and a way into the cluster: each writes
    its pid, and the step kills that pid after its last command."""
    forwards = _forwards(path, step)
    killed = {w for c in _commands(path, step) if c.argv[:1] == ("kill",) for w in c.argv[1:]}
    for service, (_, _, command) in forwards.items():
        pid_file = PID_FILE.search(command.line)
        assert pid_file is not None, f"{command.line}: its pid is not kept"
        assert f"$(cat {pid_file.group('file')})" in killed, f"{service}'s forward is never closed"


def test_a_url_that_is_not_the_forward_is_caught() -> None:
    """What the checks refuse: a plain-http URL to another host (the token in clear), a forward to a pod."""
    from prizeflow_ops.config import ConfigError

    with pytest.raises(ConfigError, match="plain http"):
        load_config(
            {"PRIZEFLOW_OPS_TOKEN": "a.token.here", url_env("payouts"): "http://payouts.prizeflow.svc"}, ["payouts"]
        )
    pod = "kubectl -n prizeflow port-forward pod/payouts-0 18003:8080"
    with pytest.raises(AssertionError, match="not a pod"):
        _forward(Command("x", pod, tuple(pod.split()), ""))
