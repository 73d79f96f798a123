"""`prizeflow-ops api-probe`: whether the Kubernetes API server answers from the pods that need it, as a metric.

CloudNativePG's standbys take the primary lease through the API before they promote, the barman-cloud plugin reads
its ObjectStore through it, Strimzi's entity operator and the brokers' rack init use it: a NetworkPolicy that lets
them out to too few of the API server's addresses (one of three control-plane nodes) blocks a failover only when
it happens. The bundle runs this probe under the same egress rule as those pods (deploy/k8s/README.md "Egress": the
site's list of the API server's ranges) and alerts when it stops reaching the API (PrizeflowKubernetesApiUnreachable,
docs/runbooks/kubernetes-api-unreachable.md).

Every interval it opens the `kubernetes` Service the pods' clients use (KUBERNETES_SERVICE_HOST/PORT, set by the
kubelet in every pod) and asks `/readyz`. Any HTTP answer is the API reached (401 or 403 included: the probe sends
no credential and mounts no token); no answer in time is not. The certificate is not verified: the probe proves the
path, sends nothing, and reads nothing but the status.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TextIO

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

DEFAULT_INTERVAL_S: Final = 15.0
DEFAULT_TIMEOUT_S: Final = 5.0
DEFAULT_PORT: Final = 9410


@dataclass(frozen=True)
class ApiProbeMetrics:
    up: Gauge
    probes: Counter
    last_answer: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ApiProbeMetrics:
        return cls(
            up=Gauge(
                "prizeflow_kubernetes_api_up",
                "1 when the last probe of the Kubernetes API (its `kubernetes` Service) got an answer, 0 when not",
                registry=registry,
            ),
            probes=Counter(
                "prizeflow_kubernetes_api_probes",
                "Probes of the Kubernetes API, by outcome (answered, unreachable)",
                ["outcome"],
                registry=registry,
            ),
            last_answer=Gauge(
                "prizeflow_kubernetes_api_last_answer_timestamp_seconds",
                "When the Kubernetes API last answered a probe",
                registry=registry,
            ),
        )


def api_url(env: Mapping[str, str]) -> str:
    """The `kubernetes` Service as the kubelet tells every pod (an IPv6 address in brackets)."""
    host = env.get("KUBERNETES_SERVICE_HOST", "").strip()
    port = env.get("KUBERNETES_SERVICE_PORT", "443").strip() or "443"
    if not host:
        raise ValueError("KUBERNETES_SERVICE_HOST is not set: this runs in a pod of the cluster")
    return f"https://{f'[{host}]' if ':' in host else host}:{port}/readyz"


def probe_once(client: httpx.Client, url: str, metrics: ApiProbeMetrics, now: Callable[[], float]) -> bool:
    try:
        client.get(url)
    except httpx.HTTPError:
        metrics.up.set(0)
        metrics.probes.labels(outcome="unreachable").inc()
        return False
    metrics.up.set(1)
    metrics.probes.labels(outcome="answered").inc()
    metrics.last_answer.set(now())
    return True


def client(timeout_s: float, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    # verify=False: the path is what is probed, nothing is sent and nothing but the status is read (module docstring).
    return httpx.Client(timeout=timeout_s, verify=False, trust_env=False, transport=transport)  # noqa: S501


def run(
    args: argparse.Namespace,
    env: Mapping[str, str],
    stdout: TextIO,
    stderr: TextIO,
    *,
    stop: threading.Event | None = None,
) -> int:
    """Serve the metrics on `--port` and probe every `--interval` seconds until `stop` is set (never, in a pod)."""
    try:
        url = api_url(env)
    except ValueError as err:
        stderr.write(f"api-probe: {err}\n")
        return 2
    registry = CollectorRegistry()
    metrics = ApiProbeMetrics.create(registry)
    start_http_server(args.port, registry=registry)
    stdout.write(f"api-probe: {url} every {args.interval:g} s; metrics on :{args.port}/metrics\n")
    stopping = stop or threading.Event()
    with client(args.timeout) as http:
        while not stopping.is_set():
            probe_once(http, url, metrics, time.time)
            stopping.wait(args.interval)
    return 0


def register(groups: Any) -> None:
    help_ = "serve prizeflow_kubernetes_api_up: whether this pod reaches the Kubernetes API (the bundle's probe)"
    p = groups.add_parser("api-probe", help=help_, description=help_)
    p.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds between probes (15)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait for an answer (5)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the metrics port ({DEFAULT_PORT})")
    p.set_defaults(standalone=run)


__all__ = ["ApiProbeMetrics", "api_url", "client", "probe_once", "register", "run"]
