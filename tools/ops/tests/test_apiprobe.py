"""`prizeflow-ops api-probe` without a socket: the `kubernetes` Service's URL from the kubelet's variables, an answer
of any status counted as the API reached (the probe sends no credential: 401/403 is the API answering), no answer as
unreachable; it refuses to start outside a pod."""

from __future__ import annotations

import io

import httpx
from prometheus_client import CollectorRegistry

from prizeflow_ops import run
from prizeflow_ops.apiprobe import ApiProbeMetrics, api_url, client, probe_once


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels or None)


def test_the_url_is_the_kubernetes_service_the_kubelet_names() -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert api_url(env) == "https://10.96.0.1:443/readyz"
    assert api_url({"KUBERNETES_SERVICE_HOST": "fd00::1"}) == "https://[fd00::1]:443/readyz"


def test_any_answer_is_the_api_reached_and_no_answer_is_not() -> None:
    registry = CollectorRegistry()
    metrics = ApiProbeMetrics.create(registry)
    seen: list[httpx.Request] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) > 1:
            raise httpx.ConnectTimeout("timed out", request=request)
        return httpx.Response(403)

    with client(1.0, httpx.MockTransport(api)) as http:
        assert probe_once(http, "https://10.96.0.1:443/readyz", metrics, lambda: 1234.0)
        assert _sample(registry, "prizeflow_kubernetes_api_up") == 1
        assert _sample(registry, "prizeflow_kubernetes_api_last_answer_timestamp_seconds") == 1234.0
        assert not probe_once(http, "https://10.96.0.1:443/readyz", metrics, lambda: 9999.0)
    assert _sample(registry, "prizeflow_kubernetes_api_up") == 0
    assert _sample(registry, "prizeflow_kubernetes_api_probes_total", outcome="answered") == 1
    assert _sample(registry, "prizeflow_kubernetes_api_probes_total", outcome="unreachable") == 1
    assert _sample(registry, "prizeflow_kubernetes_api_last_answer_timestamp_seconds") == 1234.0
    assert "authorization" not in seen[0].headers, "no credential is sent"


def test_outside_a_pod_it_refuses_to_start() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    assert run(["api-probe"], env={}, stdout=stdout, stderr=stderr) == 2
    assert "KUBERNETES_SERVICE_HOST is not set" in stderr.getvalue()
