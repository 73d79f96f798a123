"""`prizeflow-ops preflight`: before go-live, every external URL the services are configured to call, fetched the way
their own clients fetch it, each redirect chain printed, and the command failing (exit 6) naming each one that
cannot be reached.

It reads the configuration the services read (their environment and payouts' providers directory), never a list of
its own: on Kubernetes the bundle's preflight Job runs it with payouts' ConfigMaps, its providers directory and its
network identity (deploy/k8s/README.md "Preflight"), so it goes out through the egress proxy exactly as payouts does,
and a host missing from the proxy's allow-list fails here, named, instead of holding every payout later.

What is fetched, one row per kind of setting (`TARGET_KINDS`), and what counts as reached:

- a **file** (a sanctions list, the identity provider's JWKS) must end in 200, following only the redirects its
  client follows: the sanctions lists' to their own host or one of PAYOUTS_SANCTIONS_REDIRECT_HOSTS
  (prizeflow_compliance.adapters.sanctions.http), the JWKS none (prizeflow_runtime.jwks);
- an **API** (the FX rates provider, each enabled rail, the Soroban RPC, the identity-verification vendor) must
  answer at all, below 500: a GET on its base proves the TLS path through the proxy; the clients call paths below
  it, so a redirect there is printed, never followed.

The body of a file is never downloaded (a sanctions list is ~100 MB): the answer's status is what is checked.
"""

from __future__ import annotations

import argparse
import json
import string
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import urljoin, urlsplit

import httpx
import yaml

from prizeflow_contracts.providers import DEFAULT_APIS
from prizeflow_ops.client import USER_AGENT, ExitCode

MAX_REDIRECTS: Final = 5  # as the sanctions lists' client
DEFAULT_TIMEOUT_S: Final = 20.0
TIMEOUT_ENV: Final = "PRIZEFLOW_PREFLIGHT_TIMEOUT_S"
PROVIDERS_ENV: Final = "PAYOUTS_PROVIDERS_FILE"
# Open Exchange Rates, rewards' rates provider when RATES_API_URL is not set (prizeflow_rewards.settings).
RATES_DEFAULT_BASE: Final = "https://openexchangerates.org"
RATES_PATH: Final = "/api/latest.json"
# The API a provider type calls when its part names none (`api_base` / `api_base_env`): the contract's
# `DEFAULT_APIS`, which payouts' rail options read too (the exchange's is ccxt's, the TON wallet's toncenter's by
# network). tests/deploy/test_preflight.py holds them to the hosts the egress test derives from the
# libraries.
PROVIDER_APIS: Final[Mapping[str, str]] = {str(kind): api for kind, api in DEFAULT_APIS.items()}
TON_APIS: Final[Mapping[str, str]] = {"mainnet": "https://toncenter.com", "testnet": "https://testnet.toncenter.com"}
EXCHANGE_APIS: Final[Mapping[str, str]] = {"binance": "https://api.binance.com"}
# Provider types that call nothing of their own (the manual rail) or whose endpoint is a setting (Stellar: the
# Soroban RPC, SOROBAN_RPC_URL, a target of its own).
NO_API: Final = frozenset({"manual", "stellar"})


class Expect(StrEnum):
    """What counts as reached."""

    FILE = "file"  # 200 at the end of the redirects its client follows
    API = "api"  # any answer below 500; a redirect is printed, not followed


@dataclass(frozen=True)
class Target:
    """One URL to fetch: what it is, and the hosts its client follows a redirect to (a file's; an API's are never
    followed)."""

    label: str
    url: str
    expect: Expect
    redirect_hosts: frozenset[str] = frozenset()
    redirect_setting: str = ""  # the setting a host it may be redirected to is added to; "": its client follows none


@dataclass
class Outcome:
    target: Target
    chain: list[str] = field(default_factory=list)  # `GET <url> -> <status>` per hop
    problem: str | None = None

    @property
    def reached(self) -> bool:
        return self.problem is None


class PreflightConfigError(Exception):
    """The configuration itself is unusable (not an unreachable host): exit 2, naming the setting."""

    def __init__(self, setting: str, detail: str) -> None:
        super().__init__(f"{setting}: {detail}")
        self.setting = setting


# --- what to fetch ------------------------------------------------------------------------------------------------


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _sanctions(env: Mapping[str, str], _: Path | None) -> Iterator[Target]:
    redirect_hosts = frozenset(_split(env.get("PAYOUTS_SANCTIONS_REDIRECT_HOSTS", "")))
    for entry in _split(env.get("PAYOUTS_SANCTIONS_SOURCES", "")):
        source, sep, raw = entry.partition("=")
        if not sep:
            raise PreflightConfigError("PAYOUTS_SANCTIONS_SOURCES", f"{entry!r} is not <source>=<url>")
        template = string.Template(raw.strip())
        missing = [name for name in template.get_identifiers() if name not in env]
        if missing:
            raise PreflightConfigError(
                "PAYOUTS_SANCTIONS_SOURCES",
                f"{source.strip()}'s URL reads ${{{missing[0]}}}, which is not set here (give the preflight the same "
                "variable payouts gets)",
            )
        url = template.substitute(env)
        own = urlsplit(url).hostname or ""
        yield Target(
            f"sanctions list {source.strip()}",
            url,
            Expect.FILE,
            redirect_hosts | {own},
            "PAYOUTS_SANCTIONS_REDIRECT_HOSTS",
        )


def _fx(env: Mapping[str, str], _: Path | None) -> Iterator[Target]:
    raw = env.get("REWARDS_FX_PAIRS", "").strip()
    try:
        pairs = json.loads(raw) if raw else {}
    except ValueError:
        raise PreflightConfigError("REWARDS_FX_PAIRS", 'is not JSON ({"SOURCE/TARGET": spread_bps})') from None
    if pairs:
        base = env.get("RATES_API_URL", "").strip() or RATES_DEFAULT_BASE
        yield Target("FX rates provider", base.rstrip("/") + RATES_PATH, Expect.API)


def provider_parts(directory: Path) -> dict[str, Any]:
    """The providers directory as the services read it: every `*.yaml` part in file name order (the dot entries of a
    mounted ConfigMap skipped), or one file."""
    if directory.is_file():
        paths = [directory]
    elif directory.is_dir():
        paths = sorted(p for p in directory.iterdir() if p.suffix == ".yaml" and not p.name.startswith("."))
    else:
        raise PreflightConfigError(PROVIDERS_ENV, f"{directory} is neither a providers file nor a directory")
    parts: dict[str, Any] = {}
    for path in paths:
        try:
            parts[path.name] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise PreflightConfigError(PROVIDERS_ENV, f"{path.name} cannot be read: {err}") from None
    return parts


def provider_api(provider: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """The API base one provider entry calls: its `api_base_env` (a variable's value), its `api_base`, or its type's
    default; None for a type that calls nothing of its own."""
    kind = str(provider.get("type", ""))
    options: Mapping[str, Any] = provider.get("options") or {}
    name = str(provider.get("name", kind))
    if kind in NO_API:
        return None
    if variable := options.get("api_base_env"):
        value = env.get(str(variable), "").strip()
        if not value:
            raise PreflightConfigError(str(variable), f"provider {name} reads its API from it, and it is not set")
        return value
    if base := options.get("api_base"):
        return str(base)
    if kind == "ton_wallet":
        return TON_APIS.get(str(options.get("network", "")))
    if kind == "crypto_exchange":
        exchange = str(options.get("exchange", ""))
        if exchange not in EXCHANGE_APIS:
            raise PreflightConfigError(PROVIDERS_ENV, f"provider {name}: exchange {exchange!r} has no known API here")
        return EXCHANGE_APIS[exchange]
    if kind in PROVIDER_APIS:
        return PROVIDER_APIS[kind]
    raise PreflightConfigError(PROVIDERS_ENV, f"provider {name}: type {kind!r} has no known API here")


def _providers(env: Mapping[str, str], directory: Path | None) -> Iterator[Target]:
    if directory is None:
        return
    for part in provider_parts(directory).values():
        for provider in part.get("providers") or []:
            if (api := provider_api(provider, env)) is not None:
                yield Target(f"rail {provider.get('name')} ({provider.get('type')})", api, Expect.API)


def _jwks(env: Mapping[str, str], _: Path | None) -> Iterator[Target]:
    if url := env.get("JWT_JWKS_URL", "").strip():
        yield Target("identity provider JWKS", url, Expect.FILE, frozenset())


def _soroban(env: Mapping[str, str], directory: Path | None) -> Iterator[Target]:
    url = env.get("SOROBAN_RPC_URL", "").strip()
    parts = provider_parts(directory) if directory is not None else {}
    if url and any(p.get("type") == "stellar" for part in parts.values() for p in part.get("providers") or []):
        yield Target("Stellar Soroban RPC", url, Expect.API)


def _kyc(env: Mapping[str, str], _: Path | None) -> Iterator[Target]:
    vendor = env.get("PAYOUTS_KYC_PROVIDER", "none").strip()
    if vendor in {"", "none"}:
        return
    base = env.get("PAYOUTS_KYC_BASE_URL", "").strip()
    if not base:
        raise PreflightConfigError("PAYOUTS_KYC_BASE_URL", f"the vendor {vendor} is configured, and its API is not")
    yield Target(f"identity-verification vendor ({vendor})", base, Expect.API)


@dataclass(frozen=True)
class TargetKind:
    """A setting that names external URLs, and how the URLs to fetch are derived from the configuration."""

    setting: str
    what: str
    derive: Callable[[Mapping[str, str], Path | None], Iterator[Target]]


TARGET_KINDS: Final = (
    TargetKind("JWT_JWKS_URL", "the identity provider's JWKS (every API verifies tokens with it)", _jwks),
    TargetKind("PAYOUTS_SANCTIONS_SOURCES", "each sanctions list (payouts sends nothing until they load)", _sanctions),
    TargetKind(PROVIDERS_ENV, "each payout rail's API (payouts' providers directory)", _providers),
    TargetKind("SOROBAN_RPC_URL", "Stellar's Soroban RPC (when a providers part pays with stellar)", _soroban),
    TargetKind("PAYOUTS_KYC_BASE_URL", "the identity-verification vendor (PAYOUTS_KYC_PROVIDER not none)", _kyc),
    TargetKind("REWARDS_FX_PAIRS", "the FX rates provider (RATES_API_URL or Open Exchange Rates), pairs enabled", _fx),
)


def targets(env: Mapping[str, str], providers: Path | None = None) -> list[Target]:
    """Every external URL the configuration in `env` (and payouts' providers directory: `providers`, else
    PAYOUTS_PROVIDERS_FILE) names, in `TARGET_KINDS` order, each URL once."""
    if providers is None and env.get(PROVIDERS_ENV):
        providers = Path(env[PROVIDERS_ENV])
    found: dict[str, Target] = {}
    for kind in TARGET_KINDS:
        for target in kind.derive(env, providers):
            found.setdefault(target.url, target)
    return list(found.values())


# --- fetching -----------------------------------------------------------------------------------------------------


def shown(url: str) -> str:
    """A URL as printed: its query (a token, a pre-signed URL's signature) left out."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


# A connection refused or not made is tried again, briefly: a pod's network policy is programmed by the CNI after
# the pod starts (the first connections of a new pod can be refused for a second or two), and a proxy replica may be
# rolling. An answer, whatever it says (a proxy's refusal included), is never tried again.
CONNECT_RETRIES_S = (0.5, 1.0, 2.0, 4.0)


def _get(client: httpx.Client, url: str) -> tuple[int, str]:
    for pause in (*CONNECT_RETRIES_S, None):
        try:
            with client.stream("GET", url) as response:
                return response.status_code, response.headers.get("location", "")
        except (httpx.ConnectError, httpx.ConnectTimeout):
            if pause is None:
                raise
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def probe(client: httpx.Client, target: Target) -> Outcome:
    """Fetch `target` as its client would; stop at the first answer that settles it."""
    outcome = Outcome(target)
    url = target.url
    for _ in range(MAX_REDIRECTS + 1):
        try:
            status, location = _get(client, url)
        except httpx.HTTPError as err:
            outcome.chain.append(f"GET {shown(url)} -> no answer")
            outcome.problem = f"GET {shown(url)}: {type(err).__name__}: {err}"
            return outcome
        outcome.chain.append(f"GET {shown(url)} -> {status}")
        if status >= 500:
            outcome.problem = f"GET {shown(url)}: HTTP {status}"
            return outcome
        if target.expect is Expect.API:
            return outcome
        if 300 <= status < 400 and location:
            following = urljoin(url, location)
            host = urlsplit(following).hostname or ""
            if host not in target.redirect_hosts:
                outcome.chain.append(f"(redirect to {host} not followed)")
                outcome.problem = f"GET {shown(url)}: redirected to {host}, " + (
                    f"which is not in {target.redirect_setting} (add it there and to the egress proxy's allow-list)"
                    if target.redirect_setting
                    else "and its client follows no redirect"
                )
                return outcome
            url = following
            continue
        if status != 200:
            outcome.problem = f"GET {shown(url)}: HTTP {status}"
        return outcome
    outcome.problem = f"GET {shown(target.url)}: more than {MAX_REDIRECTS} redirects"
    return outcome


def _timeout(env: Mapping[str, str]) -> float:
    raw = env.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise PreflightConfigError(TIMEOUT_ENV, "must be a number of seconds") from None
    if not 0 < value <= 300:
        raise PreflightConfigError(TIMEOUT_ENV, "must be between 0 and 300 seconds")
    return value


def check(
    env: Mapping[str, str],
    providers: Path | None,
    stdout: TextIO,
    stderr: TextIO,
    *,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Fetch every target; print each chain on stdout and each failure on stderr. The exit code: 0 every target
    reached, 6 one or more not, 2 a configuration that names no usable target."""
    try:
        found = targets(env, providers)
        timeout = _timeout(env)
    except PreflightConfigError as err:
        stderr.write(f"preflight: {err}\n")
        return ExitCode.USAGE
    if not found:
        stderr.write("preflight: no external URL is configured here (is this the services' environment?)\n")
        return ExitCode.USAGE
    # trust_env: HTTPS_PROXY/NO_PROXY from the environment, as every service's httpx client reads them.
    with httpx.Client(
        timeout=timeout,
        follow_redirects=False,
        headers={"user-agent": USER_AGENT},
        transport=transport,
        trust_env=True,
    ) as client:
        outcomes = [probe(client, target) for target in found]
    for outcome in outcomes:
        verdict = "ok" if outcome.reached else "FAILED"
        stdout.write(f"{verdict:6} {outcome.target.label}: {' -> '.join(outcome.chain)}\n")
    failed = [o for o in outcomes if not o.reached]
    for outcome in failed:
        stderr.write(f"preflight: {outcome.target.label} cannot be reached: {outcome.problem}\n")
    stdout.write(f"preflight: {len(outcomes) - len(failed)} of {len(outcomes)} reached\n")
    return ExitCode.UNAVAILABLE if failed else ExitCode.OK


def register(groups: Any) -> None:
    """`preflight` as a command of its own: it needs no token and no service URL."""
    help_ = "fetch every external URL the services are configured to call, as they would; exit 6 naming what fails"
    p = groups.add_parser("preflight", help=help_, description=help_)
    p.add_argument(
        "--providers",
        type=Path,
        metavar="DIR",
        help=f"payouts' providers directory or file (default: {PROVIDERS_ENV})",
    )
    p.set_defaults(standalone=run_preflight)


def run_preflight(args: argparse.Namespace, env: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    return check(env, args.providers, stdout, stderr)


__all__ = [
    "PROVIDER_APIS",
    "TARGET_KINDS",
    "Expect",
    "Outcome",
    "PreflightConfigError",
    "Target",
    "check",
    "probe",
    "provider_api",
    "register",
    "targets",
]
