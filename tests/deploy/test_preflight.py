"""The go-live preflight in the bundle (base/migrate/preflight.yaml): the Job runs `prizeflow-ops preflight` with
payouts' network identity (the egress policies that let payouts reach the egress proxy select it, the proxy admits
it, it gets payouts' HTTPS_PROXY and nothing of payouts' Service or disruption budget selects it), in the migrate
stage (waited for before the apps), and with the configuration it gets (payouts' and rewards' ConfigMaps, payouts'
providers directory, each enabled rail's API variable) it fetches every external host the services are configured to
call, in every overlay and with every component. Its table of provider APIs agrees with the libraries the services
call them with."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from k8s_helpers import deploy_module, k8s_helpers

from prizeflow_ops import preflight
from prizeflow_rewards.settings import RATES_DEFAULT_BASE_URL

H = k8s_helpers()
EGRESS = deploy_module("test_k8s_egress")
CASES, called_hosts = EGRESS.CASES, EGRESS.called_hosts
Doc = dict[str, Any]
JOB = "payouts-preflight"
IDS = [f"{o}{''.join('+' + c for c in cs)}" for o, cs in CASES]

pytestmark = pytest.mark.k8s


def _docs(overlay: str, components: tuple[str, ...]) -> tuple[Doc, ...]:
    docs: tuple[Doc, ...] = H.rendered_with(overlay, *components) if components else H.rendered(overlay)
    return docs


def _job(docs: tuple[Doc, ...]) -> Doc:
    return dict(H.named(docs, "Job", JOB))


def _labels(workload: Doc) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def _egress_to_proxy(docs: tuple[Doc, ...], labels: Mapping[str, str]) -> list[str]:
    """The policies selecting these pod labels that let them reach the egress proxy (the only way out)."""
    return sorted(
        p["metadata"]["name"]
        for p in H._policies_of(docs, labels)
        for rule in p["spec"].get("egress", [])
        if any(peer == H.PROXY for peer in rule.get("to", []))
    )


def _proxy_admits(docs: tuple[Doc, ...], labels: Mapping[str, str], port: int) -> bool:
    policy = H.named(docs, "NetworkPolicy", "egress-proxy")["spec"]
    return any(
        any("podSelector" in peer and H._matches(peer["podSelector"], labels) for peer in rule["from"])
        and {"protocol": "TCP", "port": port} in rule["ports"]
        for rule in policy["ingress"]
    )


@pytest.mark.parametrize(("overlay", "components"), CASES, ids=IDS)
def test_the_preflight_job_runs_with_payouts_network_identity(overlay: str, components: tuple[str, ...]) -> None:
    docs = _docs(overlay, components)
    job, payouts = _job(docs), H.named(docs, "Deployment", "payouts")
    labels, payouts_labels = _labels(job), _labels(payouts)
    assert labels["app.kubernetes.io/name"] == payouts_labels["app.kubernetes.io/name"] == "payouts"
    assert job["metadata"]["labels"]["prizeflow.io/stage"] == "migrate", "waited for before the apps"
    assert _egress_to_proxy(docs, labels) == _egress_to_proxy(docs, payouts_labels)
    assert _egress_to_proxy(docs, labels), "it reaches the proxy as payouts does"
    assert _proxy_admits(docs, labels, 3128)
    assert _proxy_admits(docs, payouts_labels, 3128)
    env, payouts_env = H._config(docs, H._container(job)), H._config(docs, H._container(payouts))
    assert {k: env[k] for k in H.PROXY_ENV} == {k: payouts_env[k] for k in H.PROXY_ENV}
    assert job["spec"]["template"]["spec"].get("serviceAccountName") == payouts["spec"]["template"]["spec"].get(
        "serviceAccountName"
    )
    # Not one of payouts' serving pods: its Service and disruption budget do not count it.
    assert not H._matches({"matchLabels": H.named(docs, "Service", "payouts")["spec"]["selector"]}, labels)
    assert not H._matches(H.named(docs, "PodDisruptionBudget", "payouts")["spec"]["selector"], labels)
    container = H._container(job)
    assert container["command"] == ["prizeflow-ops", "preflight"]
    assert container["image"] == H._container(H.named(docs, "Job", "topics-check"))["image"], "the ops image"
    assert not H._secret_refs(container), "no key: the path to each API, not the credentials"


def _mounted_env(docs: tuple[Doc, ...], tmp: Path) -> tuple[dict[str, str], Path]:
    """The preflight's environment and its providers directory as mounted."""
    job = _job(docs)
    container = H._container(job)
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "providers"]
    [volume] = [v for v in H.docs_volumes(job) if v["name"] == "providers"]
    env = H._config(docs, container)
    assert Path(env["PAYOUTS_PROVIDERS_FILE"]) == Path(mount["mountPath"])
    parts = H.named(docs, "ConfigMap", volume["configMap"]["name"])["data"]
    assert parts == H._providers_parts(docs, "payouts"), "payouts' own providers directory"
    return env, H._mounted(tmp / "providers", parts)


@pytest.mark.parametrize(("overlay", "components"), CASES, ids=IDS)
def test_the_preflight_fetches_every_host_the_services_are_configured_to_call(
    overlay: str, components: tuple[str, ...], tmp_path: Path
) -> None:
    """Every host any Deployment may call (tests/deploy/test_k8s_egress.py reads them from the same manifests) is a
    host the preflight fetches, but the hosts a sanctions list may only be redirected to: those it reaches by
    following the list's redirect, as payouts does."""
    docs = _docs(overlay, components)
    env, providers = _mounted_env(docs, tmp_path)
    fetched = {urlsplit(t.url).hostname for t in preflight.targets(env, providers)}
    redirects = set(filter(None, env.get("PAYOUTS_SANCTIONS_REDIRECT_HOSTS", "").split(",")))
    called = set().union(*called_hosts(docs).values()) - redirects
    assert called - fetched == set(), "hosts the services call that the preflight never checks"
    followed = {h for t in preflight.targets(env, providers) for h in t.redirect_hosts}
    assert redirects <= followed


def test_the_coverage_check_can_fail(tmp_path: Path) -> None:
    """Without payouts' providers directory the rails' APIs go unchecked, and the comparison says which."""
    docs = H.rendered_with("prod", "upi")
    env, providers = _mounted_env(docs, tmp_path)
    fetched = {urlsplit(t.url).hostname for t in preflight.targets(env | {"PAYOUTS_PROVIDERS_FILE": ""}, None)}
    assert {"api.razorpay.com", "api.stripe.com"} <= set().union(*called_hosts(docs).values()) - fetched
    with pytest.raises(preflight.PreflightConfigError, match="UPI_API_URL"):
        preflight.targets({k: v for k, v in env.items() if k != "UPI_API_URL"}, providers)


def test_the_preflights_default_apis_are_the_services_own() -> None:
    """Its table of provider APIs and the rates provider agree with what the services and their libraries call."""
    from prizeflow_payouts.adapters.giftcard.options import SANDBOX_API
    from prizeflow_payouts.adapters.telegram.options import TELEGRAM_API
    from prizeflow_payouts.adapters.ton.options import TONCENTER_MAINNET, TONCENTER_TESTNET
    from prizeflow_payouts.adapters.upi.options import RAZORPAY_API

    def host(url: str) -> str:
        return str(urlsplit(url).hostname)

    assert {host(preflight.PROVIDER_APIS["stripe"])} == EGRESS._implied_hosts("stripe", {})
    implied = EGRESS._implied_hosts("telegram_if_supported", {})
    assert {host(preflight.PROVIDER_APIS["telegram_if_supported"])} == implied
    assert preflight.PROVIDER_APIS["telegram_if_supported"] == TELEGRAM_API
    assert preflight.PROVIDER_APIS["upi"] == RAZORPAY_API
    assert preflight.PROVIDER_APIS["gift_card"] == SANDBOX_API
    assert preflight.TON_APIS == {"mainnet": TONCENTER_MAINNET, "testnet": TONCENTER_TESTNET}
    assert preflight.RATES_DEFAULT_BASE == RATES_DEFAULT_BASE_URL
    assert host(preflight.EXCHANGE_APIS["binance"]) in H.RAILS["crypto_exchange"].hosts
