"""Every host a Prizeflow process is configured to call is on the egress proxy's allow-list (issue 44): read from every
setting of every Deployment of every overlay, alone and with each component (the payout rails, the KYC vendor), as
the manifests set them: single URLs, lists of URLs (PAYOUTS_SANCTIONS_SOURCES), hosts a redirect may lead to
(PAYOUTS_SANCTIONS_REDIRECT_HOSTS), the URLs the providers' parts name, and the hosts a provider type calls without
a setting (its library's API). The proxy lets a CONNECT through to an allow-listed name only, so a host missing here
is a call that fails in production and nowhere else: the sanctions lists were one, and with them every payout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from k8s_helpers import k8s_helpers

from prizeflow_rewards.settings import RATES_DEFAULT_BASE_URL

H = k8s_helpers()
Doc = dict[str, Any]

pytestmark = pytest.mark.k8s

# A URL's host in a setting's value: one URL, a comma-separated list, `<name>=<url>` entries.
URL = re.compile(r"https?://(?P<host>[^/:?#,\s\"']+)")
# Settings whose URL the process never calls: each a value it compares or hands to someone else's browser.
NOT_CALLED: Mapping[str, str] = {
    "JWT_ISSUER": "the `iss` the services compare a token's with, never fetched",
    "OIDC_ISSUER": "the console's expected issuer, compared, never fetched (its discovery URL is)",
    "CONSOLE_PUBLIC_URL": "the console's own public address, its redirect URI, given to browsers",
    "REWARDS_TOPUP_SUCCESS_URL": "where Stripe Checkout sends the player's browser after a top-up",
    "REWARDS_TOPUP_CANCEL_URL": "where Stripe Checkout sends the player's browser after a cancelled top-up",
}
# Settings naming hosts, not URLs: where a call may be redirected.
HOST_SETTINGS = {"PAYOUTS_SANCTIONS_REDIRECT_HOSTS"}
# The components an overlay may list that call out (each rail; the identity-verification vendor; the FX rates).
COMPONENTS = (*H.RAILS, "kyc/sumsub", "fx/openexchangerates")


def _implied_hosts(provider_type: str, options: Mapping[str, Any]) -> set[str]:
    """Hosts a provider calls that no setting names: its library's own API, or its network's public endpoint. (The
    exchange's are ccxt's market-load hosts: tests/deploy/test_k8s.py lists them with the rail.)"""
    if provider_type == "stripe":
        import stripe

        return {str(urlsplit(stripe.api_base).hostname)}
    if provider_type == "telegram_if_supported":
        import inspect

        from telegram import Bot

        default = inspect.signature(Bot.__init__).parameters["base_url"].default
        return {str(urlsplit(default).hostname)}
    if provider_type == "ton_wallet":
        from prizeflow_payouts.adapters.ton.options import TONCENTER_MAINNET, TONCENTER_TESTNET

        base = TONCENTER_MAINNET if options.get("network") == "mainnet" else TONCENTER_TESTNET
        return {str(urlsplit(options.get("api_base", base)).hostname)}
    return set()


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def called_hosts(docs: tuple[Doc, ...]) -> dict[str, set[str]]:
    """Deployment → every external host its process may call, as its settings and providers parts say."""
    out: dict[str, set[str]] = {}
    for deployment in H.of_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        if name in H.PLATFORM_DEPLOYMENTS:  # the proxy itself; the API probe (the Kubernetes API only)
            continue
        container = H._container(deployment)
        env = H._config(docs, container)
        internal = tuple(h for h in env.get("NO_PROXY", "").split(",") if h.startswith("."))
        hosts: set[str] = set()
        verifies_tokens = getattr(H.k8s.settings_class(name), "verifies_tokens", True)
        for key, value in env.items():
            if key in NOT_CALLED or key in {"HTTPS_PROXY", "NO_PROXY"}:
                continue
            if key == "JWT_JWKS_URL" and not verifies_tokens:
                continue  # the signer shares prizeflow-common and verifies no token (SignerSettings.verifies_tokens)
            if key in HOST_SETTINGS:
                hosts |= {h.strip() for h in value.split(",") if h.strip()}
            else:
                hosts |= {m.group("host") for m in URL.finditer(value)}
        if name in ("payouts", "webhooks"):
            for text in H._providers_parts(docs, name).values():
                part = yaml.safe_load(text) or {}
                hosts |= {m.group("host") for s in _strings(part) for m in URL.finditer(s)}
                for provider in part.get("providers", []):
                    hosts |= _implied_hosts(provider["type"], provider.get("options", {}))
        if env.get("REWARDS_TOPUP_PROVIDER") == "stripe":
            hosts |= _implied_hosts("stripe", {})
        if json.loads(env.get("REWARDS_FX_PAIRS") or "{}"):  # conversion enabled: the rates provider, by default OXR
            hosts |= {str(urlsplit(env.get("RATES_API_URL") or RATES_DEFAULT_BASE_URL).hostname)}
        out[name] = {h for h in hosts if not h.endswith(internal) and h not in {"localhost", "127.0.0.1"}}
    return out


def allowed(host: str, names: frozenset[str]) -> bool:
    """Squid's `dstdomain`: a name matches itself; `.example.org` matches it and every name under it."""
    return any(host == n or (n.startswith(".") and (host == n[1:] or host.endswith(n))) for n in names)


def unreachable(docs: tuple[Doc, ...]) -> list[str]:
    """`<deployment>: <host>` for every host a process may call that the proxy would refuse it (or that it could not
    even ask for: a process without HTTPS_PROXY reaches no public address at all)."""
    providers = frozenset().union(*(H._acl_hosts(p).get("providers", frozenset()) for p in H._allowlist(docs).values()))
    missing = []
    for name, hosts in called_hosts(docs).items():
        proxied = "HTTPS_PROXY" in H._config(docs, H._container(H.named(docs, "Deployment", name)))
        missing += [f"{name}: {h}" for h in sorted(hosts) if not (proxied and allowed(h, providers))]
    return missing


CASES = [(o, ()) for o in H.OVERLAYS] + [(o, (c,)) for o in ("dev", "prod") for c in COMPONENTS]


@pytest.mark.parametrize(
    ("overlay", "components"), CASES, ids=[f"{o}{''.join('+' + c for c in cs)}" for o, cs in CASES]
)
def test_every_host_a_service_is_configured_to_call_is_on_the_allow_list(
    overlay: str, components: tuple[str, ...]
) -> None:
    docs = H.rendered_with(overlay, *components) if components else H.rendered(overlay)
    assert not unreachable(docs), "the egress proxy would refuse these calls"


def test_the_sanctions_lists_and_the_kyc_vendor_are_among_what_is_read() -> None:
    """Not vacuous: the lists payouts must load before it sends anything, every host of each (and the host OFAC's
    exports redirect to), the vendor, the rates provider."""
    prod = called_hosts(H.rendered("prod"))
    assert {
        "sanctionslistservice.ofac.treas.gov",
        "scsanctions.un.org",
        "wc2h-sls-prod-public-published.s3.us-gov-west-1.amazonaws.com",
    } <= prod["payouts"]
    assert "openexchangerates.org" in called_hosts(H.rendered_with("prod", "fx/openexchangerates"))["rewards"]
    assert "api.stripe.com" in prod["payouts"] & prod["rewards"] & prod["webhooks"]
    assert urlsplit(H.SITE["identity-jwks-url"]).hostname in prod["settlement"]
    assert "api.sumsub.com" in called_hosts(H.rendered_with("prod", "kyc/sumsub"))["payouts"]
    assert "toncenter.com" in called_hosts(H.rendered_with("prod", "ton_wallet"))["payouts"]
    assert "api.telegram.org" in called_hosts(H.rendered_with("prod", "telegram_if_supported"))["payouts"]


def test_a_host_missing_from_the_allow_list_is_caught() -> None:
    """What main shipped (the sanctions lists' hosts on no list), a redirect host an overlay adds without its list
    entry, a vendor's URL, the rates provider conversion calls by default: each found, named with its Deployment."""
    docs = H.rendered("prod")
    without_lists = tuple(_without_part(d, "sanctions.conf") for d in docs)
    assert unreachable(without_lists) == [
        "payouts: sanctionslistservice.ofac.treas.gov",
        "payouts: scsanctions.un.org",
        "payouts: wc2h-sls-prod-public-published.s3.us-gov-west-1.amazonaws.com",
    ]
    redirected = tuple(
        _with_setting(d, "payouts-config", "PAYOUTS_SANCTIONS_REDIRECT_HOSTS", "files.lists.test") for d in docs
    )
    assert unreachable(redirected) == ["payouts: files.lists.test"]
    vendor = tuple(_with_setting(d, "payouts-config", "PAYOUTS_KYC_BASE_URL", "https://kyc.vendor.test") for d in docs)
    assert unreachable(vendor) == ["payouts: kyc.vendor.test"]
    # Conversion enabled without RATES_API_URL: rewards calls its default provider, which no setting names.
    fx = tuple(_with_setting(d, "rewards-config", "REWARDS_FX_PAIRS", '{"USD/INR": 150}') for d in docs)
    assert unreachable(fx) == ["rewards: openexchangerates.org"]
    assert allowed("a.b.test", frozenset({".b.test"}))
    assert allowed("b.test", frozenset({".b.test"}))
    assert not allowed("ab.test", frozenset({".b.test", "a.b.test"}))


def _without_part(doc: Doc, key: str) -> Doc:
    if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("egress-proxy-allowlist"):
        return doc | {"data": {k: v for k, v in doc["data"].items() if k != key}}
    return doc


def _with_setting(doc: Doc, config_map: str, key: str, value: str) -> Doc:
    if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith(f"{config_map}-"):
        return doc | {"data": doc["data"] | {key: value}}
    return doc


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_kyc_component_adds_its_settings_secrets_callbacks_and_egress(overlay: str, tmp_path: Any) -> None:
    """Like a rail: payouts gets the vendor and its keys (in prod from the ExternalSecret), webhooks its callbacks'
    part and secret, the proxy the vendor's host; and payouts' settings load with it in the production profile."""
    base, docs = H.rendered(overlay), H.rendered_with(overlay, "kyc/sumsub")
    env = H._config(docs, H._container(H.named(docs, "Deployment", "payouts")))
    assert (env["PAYOUTS_KYC_PROVIDER"], env["PAYOUTS_KYC_BASE_URL"]) == ("sumsub", "https://api.sumsub.com")
    refs = H._secret_refs(H._container(H.named(docs, "Deployment", "payouts")))
    assert {k: refs[k] for k in ("PAYOUTS_KYC_APP_TOKEN", "PAYOUTS_KYC_SECRET_KEY")} == {
        "PAYOUTS_KYC_APP_TOKEN": ("payouts-secrets", "PAYOUTS_KYC_APP_TOKEN"),
        "PAYOUTS_KYC_SECRET_KEY": ("payouts-secrets", "PAYOUTS_KYC_SECRET_KEY"),
    }
    added = set(H._parts_of(docs, "webhooks")) - set(H._parts_of(base, "webhooks"))
    assert added == {"kyc-sumsub.yaml"}
    assert set(H._allowlist(docs)) - set(H._allowlist(base)) == {"kyc-sumsub.conf"}
    assert not H._unset_provider_env(docs)
    assert not H._unknown_env(docs)
    if overlay == "prod":
        assert {"PAYOUTS_KYC_APP_TOKEN", "PAYOUTS_KYC_SECRET_KEY"} <= set(H._external_keys(docs, "payouts-secrets"))
        assert "SUMSUB_WEBHOOK_SECRET" in H._external_keys(docs, "webhooks-secrets")
        settings = H._load(docs, "payouts", tmp_path / "payouts")
        assert settings.registry is not None
        assert "sumsub" in H._load(docs, "webhooks", tmp_path / "webhooks").providers
    for doc in docs:
        if doc not in base:
            H.validate(doc)
            assert "prizeflow.io/stage" in doc["metadata"].get("labels", {}), doc["metadata"]["name"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_fx_component_adds_its_pairs_key_and_egress(overlay: str, tmp_path: Any) -> None:
    """Like a rail (components/rails/upi): rewards gets its pairs and the rates provider's key (in prod from the
    ExternalSecret rewards-secrets, store path prizeflow/rewards), the proxy the provider's host; rewards' settings
    load with it in the production profile (outside dev they refuse pairs without the key). Without it no manifest
    enables conversion."""
    base, docs = H.rendered(overlay), H.rendered_with(overlay, "fx/openexchangerates")
    rewards = H._container(H.named(docs, "Deployment", "rewards"))
    env = H._config(docs, rewards)
    assert json.loads(env["REWARDS_FX_PAIRS"])
    assert "REWARDS_FX_PAIRS" not in H._config(base, H._container(H.named(base, "Deployment", "rewards")))
    assert H._secret_refs(rewards)["RATES_APP_ID"] == ("rewards-secrets", "RATES_APP_ID")
    assert set(H._allowlist(docs)) - set(H._allowlist(base)) == {"fx-openexchangerates.conf"}
    assert H._acl_hosts(H._allowlist(docs)["fx-openexchangerates.conf"]) == {
        "providers": frozenset({str(urlsplit(RATES_DEFAULT_BASE_URL).hostname)})
    }
    assert not unreachable(docs)
    assert not H._unknown_env(docs)
    settings = H._load(docs, "rewards", tmp_path)
    assert settings.rewards_fx_pairs
    assert settings.rates_base_url == RATES_DEFAULT_BASE_URL
    if overlay == "prod":
        assert H._external_keys(docs, "rewards-secrets")["RATES_APP_ID"] == "prizeflow/rewards"
    for doc in docs:
        if doc not in base:
            H.validate(doc)
            assert "prizeflow.io/stage" in doc["metadata"].get("labels", {}), doc["metadata"]["name"]
