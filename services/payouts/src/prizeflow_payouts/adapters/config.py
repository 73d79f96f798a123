"""Provider registry and approval rules from a YAML file plus secrets from the environment.

Secrets are referenced by environment variable NAME in the file; their values are read once at start-up,
handed to the provider that needs them and never logged or returned (`Secret.__repr__` hides them).
Everything that could make a payout go wrong is refused here, at start-up, with a message naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from prizeflow_contracts.money import ASSETS, parse_decimal
from prizeflow_contracts.providers import DestinationType, ProviderType, RewardPayoutProvider
from prizeflow_payouts.application.registry import ProviderEntry, ProviderRegistry, Route
from prizeflow_payouts.domain.approval import ApprovalBook, ApprovalRule

_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ENV_RE: Final = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class ProviderConfigError(ValueError):
    """The payouts configuration is unusable; the service refuses to start."""


class Secret:
    """A secret value that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value", "env")

    def __init__(self, env: str, value: str) -> None:
        self.env = env
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(env={self.env!r}, value='***')"

    __str__ = __repr__


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    type: ProviderType
    assets: tuple[str, ...]
    destination_types: tuple[DestinationType, ...]
    secrets: Mapping[str, Secret]
    options: Mapping[str, Any]


@dataclass(frozen=True)
class ProviderContext:
    """What a factory may use besides its own spec."""

    live_execution: bool
    database_url: str
    provider_timeout_s: float
    source: str = "/prizeflow/payouts"
    max_attempts: int = 5
    confirm_poll_ms: int = 2500
    confirm_max_polls: int = 20
    reconcile_interval_ms: int = 60_000


ProviderFactory = Callable[[ProviderSpec, ProviderContext], tuple[RewardPayoutProvider, bool]]


def _factories() -> dict[ProviderType, ProviderFactory]:
    """Implemented provider types. A type of the contract missing here is refused at start-up."""
    from prizeflow_payouts.adapters.providers.manual import build_manual
    from prizeflow_payouts.adapters.providers.sandbox import build_sandbox
    from prizeflow_payouts.adapters.stellar import build_stellar

    return {ProviderType.MANUAL: build_manual, ProviderType.SANDBOX: build_sandbox, ProviderType.STELLAR: build_stellar}


@dataclass(frozen=True)
class PayoutsConfig:
    registry: ProviderRegistry
    approvals: ApprovalBook
    source: str = ""
    specs: tuple[ProviderSpec, ...] = field(default_factory=tuple)


def load_config(
    path: Path,
    context: ProviderContext,
    *,
    env: Mapping[str, str] | None = None,
    factories: Mapping[ProviderType, ProviderFactory] | None = None,
) -> PayoutsConfig:
    if not path.is_file():
        raise ProviderConfigError(f"payouts providers file {path} does not exist (PAYOUTS_PROVIDERS_FILE)")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ProviderConfigError(f"{path}: not valid YAML: {err}") from err
    return parse_config(doc, context, env=os.environ if env is None else env, factories=factories, source=str(path))


def parse_config(
    doc: Any,
    context: ProviderContext,
    *,
    env: Mapping[str, str],
    factories: Mapping[ProviderType, ProviderFactory] | None = None,
    source: str = "<config>",
) -> PayoutsConfig:
    if not isinstance(doc, dict):
        raise ProviderConfigError(f"{source}: the top level must be a mapping with `providers`")
    unknown_keys = set(doc) - {"providers", "routes", "approvals"}
    if unknown_keys:
        raise ProviderConfigError(f"{source}: unknown top-level keys {sorted(unknown_keys)}")
    implemented = dict(factories or _factories())
    raw_providers = doc.get("providers")
    if not isinstance(raw_providers, list) or not raw_providers:
        raise ProviderConfigError(f"{source}: `providers` must be a non-empty list")
    specs = [_spec(raw, env, source) for raw in raw_providers]
    names = [s.name for s in specs]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise ProviderConfigError(f"{source}: provider names must be unique; repeated: {dupes}")
    entries = []
    for spec in specs:
        factory = implemented.get(spec.type)
        if factory is None:
            raise ProviderConfigError(
                f"provider {spec.name!r}: type {spec.type.value!r} is not implemented in this build "
                f"(implemented: {', '.join(sorted(t.value for t in implemented))})"
            )
        provider, polls = factory(spec, context)
        entries.append(
            ProviderEntry(
                name=spec.name,
                provider=provider,
                assets=spec.assets,
                destination_types=spec.destination_types,
                polls_status=polls,
                public={
                    "name": spec.name,
                    "type": spec.type.value,
                    "assets": list(spec.assets),
                    "destination_types": [d.value for d in spec.destination_types],
                    "capabilities": provider.capabilities.model_dump(mode="json"),
                },
            )
        )
    routes = [_route(raw, {s.name: s for s in specs}, source) for raw in doc.get("routes") or []]
    approvals = _approvals(doc.get("approvals") or {}, source)
    return PayoutsConfig(ProviderRegistry(entries, routes), approvals, source, tuple(specs))


def _spec(raw: Any, env: Mapping[str, str], source: str) -> ProviderSpec:  # noqa: PLR0912 - one check per field, each with its message
    if not isinstance(raw, dict):
        raise ProviderConfigError(f"{source}: each provider must be a mapping")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ProviderConfigError(f"{source}: provider name {name!r} must match {_NAME_RE.pattern}")
    extra = set(raw) - {"name", "type", "assets", "destination_types", "secrets", "options"}
    if extra:
        raise ProviderConfigError(f"provider {name!r}: unknown keys {sorted(extra)}")
    raw_type = raw.get("type")
    try:
        ptype = ProviderType(str(raw_type))
    except ValueError:
        known = ", ".join(t.value for t in ProviderType)
        raise ProviderConfigError(f"provider {name!r}: unknown provider type {raw_type!r} (known: {known})") from None
    assets = raw.get("assets")
    if not isinstance(assets, list) or not assets:
        raise ProviderConfigError(f"provider {name!r}: `assets` must be a non-empty list")
    for code in assets:
        if code not in ASSETS:
            raise ProviderConfigError(f"provider {name!r}: unknown asset {code!r}")
        if not ASSETS[code].redeemable:
            raise ProviderConfigError(f"provider {name!r}: asset {code!r} is not redeemable and can never be paid")
    dtypes = raw.get("destination_types")
    if not isinstance(dtypes, list) or not dtypes:
        raise ProviderConfigError(f"provider {name!r}: `destination_types` must be a non-empty list")
    try:
        destination_types = tuple(DestinationType(d) for d in dtypes)
    except ValueError as err:
        raise ProviderConfigError(f"provider {name!r}: {err}") from None
    secrets: dict[str, Secret] = {}
    for key, env_name in (raw.get("secrets") or {}).items():
        if not isinstance(env_name, str) or not _ENV_RE.fullmatch(env_name):
            raise ProviderConfigError(
                f"provider {name!r}: secret {key!r} must name an environment variable, not hold a value"
            )
        value = env.get(env_name)
        if not value:
            raise ProviderConfigError(
                f"provider {name!r}: secret {key!r} needs environment variable {env_name}, which is not set"
            )
        secrets[str(key)] = Secret(env_name, value)
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ProviderConfigError(f"provider {name!r}: `options` must be a mapping")
    return ProviderSpec(name, ptype, tuple(assets), destination_types, secrets, options)


def _route(raw: Any, specs: Mapping[str, ProviderSpec], source: str) -> Route:
    if not isinstance(raw, dict) or set(raw) != {"asset", "destination_type", "provider"}:
        raise ProviderConfigError(f"{source}: a route needs exactly asset, destination_type and provider: {raw!r}")
    spec = specs.get(raw["provider"])
    if spec is None:
        raise ProviderConfigError(f"{source}: route {raw!r} names an unknown provider {raw['provider']!r}")
    try:
        dtype = DestinationType(raw["destination_type"])
    except ValueError as err:
        raise ProviderConfigError(f"{source}: route {raw!r}: {err}") from None
    if raw["asset"] not in spec.assets or dtype not in spec.destination_types:
        raise ProviderConfigError(f"{source}: route {raw!r}: provider {spec.name!r} does not serve it")
    return Route(raw["asset"], dtype, spec.name)


def _approvals(raw: Any, source: str) -> ApprovalBook:
    if not isinstance(raw, dict):
        raise ProviderConfigError(f"{source}: `approvals` must map asset codes to thresholds")
    rules = {}
    for code, thresholds in raw.items():
        if code not in ASSETS:
            raise ProviderConfigError(f"{source}: approvals for unknown asset {code!r}")
        if not isinstance(thresholds, dict) or set(thresholds) - {"auto_below", "dual_from"}:
            raise ProviderConfigError(f"{source}: approvals.{code} takes auto_below and dual_from (decimal strings)")

        def amount(key: str, code: str = code, thresholds: dict[str, Any] = thresholds) -> int | None:
            value = thresholds.get(key)
            if value is None:
                return None
            try:
                return parse_decimal(str(value), code)
            except ValueError as err:
                raise ProviderConfigError(f"{source}: approvals.{code}.{key}: {err}") from None

        try:
            rules[code] = ApprovalRule(code, amount("auto_below"), amount("dual_from"))
        except ValueError as err:
            raise ProviderConfigError(f"{source}: approvals.{code}: {err}") from None
    return ApprovalBook(rules)


__all__ = [
    "PayoutsConfig",
    "ProviderConfigError",
    "ProviderContext",
    "ProviderFactory",
    "ProviderSpec",
    "Secret",
    "load_config",
    "parse_config",
]
