"""Provider registry and approval rules from a YAML file (pydantic models) plus secrets from the environment.

Secrets are referenced by environment variable NAME in the file; their values are read once at start-up,
handed to the provider that needs them and never logged or returned (`Secret` hides them). Everything that
could make a payout go wrong is refused here, at start-up, with a message naming it. Which factory builds
which provider type is the caller's (bootstrap's) choice.

`PAYOUTS_PROVIDERS_FILE` names one file, or a directory whose `*.yaml` parts (in name order) are merged into one
document (`read_parts`): a Kubernetes overlay adds a rail as one more key of the mounted ConfigMap.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import ErrorDetails

from prizeflow_contracts.money import ASSETS, parse_decimal
from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_payouts.application.registry import ProviderEntry, ProviderRegistry, Route
from prizeflow_payouts.domain.approval import ApprovalBook, ApprovalRule
from prizeflow_payouts.provider_spec import (
    ProviderConfigError,
    ProviderContext,
    ProviderFactory,
    ProviderSpec,
)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RouteModel(_Model):
    asset: str
    destination_type: DestinationType
    provider: str


class Thresholds(_Model):
    """Decimal strings in whole units of the asset."""

    auto_below: str | int | float | None = None
    dual_from: str | int | float | None = None


class ProvidersFile(_Model):
    """The providers file. Validate with `context={"env": environment}`: secrets resolve against it."""

    providers: list[ProviderSpec]
    routes: list[RouteModel] = []
    approvals: dict[str, Thresholds] = {}

    @field_validator("providers")
    @classmethod
    def _unique_names(cls, value: list[ProviderSpec]) -> list[ProviderSpec]:
        if not value:
            raise ValueError("`providers` must be a non-empty list")
        names = [s.name for s in value]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"provider names must be unique; repeated: {dupes}")
        return value

    @field_validator("routes", "approvals", mode="before")
    @classmethod
    def _empty(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return [] if info.field_name == "routes" else {}
        return value

    @model_validator(mode="after")
    def _routes_served(self) -> ProvidersFile:
        specs = {s.name: s for s in self.providers}
        for route in self.routes:
            spec = specs.get(route.provider)
            if spec is None:
                raise ValueError(f"route {route.model_dump(mode='json')} names an unknown provider {route.provider!r}")
            if route.asset not in spec.assets or route.destination_type not in spec.destination_types:
                raise ValueError(f"route {route.model_dump(mode='json')}: provider {spec.name!r} does not serve it")
        return self


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
    factories: Mapping[ProviderType, ProviderFactory],
    env: Mapping[str, str] | None = None,
) -> PayoutsConfig:
    """The providers file at `path`, or the parts of the directory at `path` merged (`read_parts`)."""
    if path.is_dir():
        doc: Any = read_parts(path)
    elif path.is_file():
        doc = _read_yaml(path)
    else:
        raise ProviderConfigError(f"payouts providers file {path} does not exist (PAYOUTS_PROVIDERS_FILE)")
    return parse_config(doc, context, env=os.environ if env is None else env, factories=factories, source=str(path))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ProviderConfigError(f"{path}: not valid YAML: {err}") from err


_PART_KEYS: Final = frozenset({"providers", "routes", "approvals"})


def read_parts(directory: Path) -> dict[str, Any]:
    """The `*.yaml` parts of a providers directory as one document, in file name order: `providers` and `routes`
    concatenated, `approvals` united. Refused, naming the files: a directory without parts; an entry that is not a
    `*.yaml` file (a `.yml` typo would drop a rail silently); a part that is not a mapping of those three keys, or
    holds nothing; a provider, an asset's approvals or an (asset, destination type)'s route given by two parts; an
    (asset, destination type) paid by providers of two parts without a route for it (file names would choose the
    provider). Names starting with a dot are skipped (a mounted ConfigMap's `..data`)."""
    parts = [(path, _part(path)) for path in _part_paths(directory)]
    merged: dict[str, Any] = {"providers": [], "routes": [], "approvals": {}}
    providers: dict[str, Path] = {}
    approvals: dict[str, Path] = {}
    routes: dict[tuple[str, str], Path] = {}
    served: dict[tuple[str, str], dict[str, Path]] = {}
    for path, part in parts:
        for entry in part.get("providers", []):
            name = entry.get("name") if isinstance(entry, Mapping) else None
            if isinstance(name, str):
                if (first := providers.setdefault(name, path)) != path:
                    raise ProviderConfigError(f"provider {name!r} is declared by two parts: {first} and {path}")
                for key in _served(entry):
                    served.setdefault(key, {})[name] = path
            merged["providers"].append(entry)
        for route in part.get("routes", []):
            pair = _route_key(route)
            if pair is not None and (first := routes.setdefault(pair, path)) != path:
                raise ProviderConfigError(
                    f"a route for {pair[0]} to {pair[1]} is given by two parts: {first} and {path}"
                )
            merged["routes"].append(route)
        for asset, rule in part.get("approvals", {}).items():
            if (first := approvals.setdefault(str(asset), path)) != path:
                raise ProviderConfigError(f"approvals for {asset} are given by two parts: {first} and {path}")
            merged["approvals"][asset] = rule
    for (asset, destination), by in sorted(served.items()):
        if len(set(by.values())) > 1 and (asset, destination) not in routes:
            who = ", ".join(f"{name!r} ({path})" for name, path in by.items())
            raise ProviderConfigError(
                f"{asset} to {destination} is paid by providers of different parts, {who}: give a `routes` entry "
                "for it (the order of file names must not choose the provider)"
            )
    return merged


def _part_paths(directory: Path) -> list[Path]:
    paths = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if not (path.name.endswith(".yaml") and path.is_file()):
            raise ProviderConfigError(
                f"{path}: not a *.yaml file, and the providers directory {directory} (PAYOUTS_PROVIDERS_FILE) holds "
                "parts only"
            )
        paths.append(path)
    if not paths:
        raise ProviderConfigError(f"providers directory {directory} holds no *.yaml part (PAYOUTS_PROVIDERS_FILE)")
    return paths


def _part(path: Path) -> Mapping[str, Any]:
    doc = _read_yaml(path)
    if not isinstance(doc, dict) or not doc:
        raise ProviderConfigError(f"{path}: a part is a mapping of {sorted(_PART_KEYS)}")
    if unknown := sorted(str(k) for k in set(doc) - _PART_KEYS):
        raise ProviderConfigError(f"{path}: unknown keys {unknown} (a part holds {sorted(_PART_KEYS)})")
    for key, kind in (("providers", list), ("routes", list), ("approvals", dict)):
        if doc.get(key) is not None and not isinstance(doc[key], kind):
            raise ProviderConfigError(f"{path}: `{key}` must be a {'list' if kind is list else 'mapping'}")
    part = {k: v for k, v in doc.items() if v}
    if not part:
        raise ProviderConfigError(f"{path}: the part is empty (a lost rail?): give it providers, routes or approvals")
    return part


def _served(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (asset, destination type) pairs a raw provider entry claims; nothing when it is mis-shaped (the model
    refuses it then, with its own message)."""
    assets, destinations = entry.get("assets"), entry.get("destination_types")
    if not isinstance(assets, list) or not isinstance(destinations, list):
        return []
    return [(str(a), str(d)) for a in assets for d in destinations]


def _route_key(route: Any) -> tuple[str, str] | None:
    if not isinstance(route, Mapping):
        return None
    return str(route.get("asset")), str(route.get("destination_type"))


def parse_config(
    doc: Any,
    context: ProviderContext,
    *,
    env: Mapping[str, str],
    factories: Mapping[ProviderType, ProviderFactory],
    source: str = "<config>",
) -> PayoutsConfig:
    """The registry and approval rules of a parsed providers file; each provider built by its type's factory.
    Raises `ProviderConfigError` naming the culprit."""
    if not isinstance(doc, dict):
        raise ProviderConfigError(f"{source}: the top level must be a mapping with `providers`")
    try:
        parsed = ProvidersFile.model_validate(doc, context={"env": env})
    except ValidationError as err:
        raise ProviderConfigError(_describe(err, doc, source)) from None
    _one_account_each(parsed.providers)
    entries = []
    for spec in parsed.providers:
        factory = factories.get(spec.type)
        if factory is None:
            raise ProviderConfigError(
                f"provider {spec.name!r}: type {spec.type.value!r} is not implemented in this build "
                f"(implemented: {', '.join(sorted(t.value for t in factories))})"
            )
        rail = factory(spec, replace(context, env=env))
        entry = ProviderEntry(name=spec.name, rail=rail, assets=spec.assets, destination_types=spec.destination_types)
        public = {
            "name": spec.name,
            "type": spec.type.value,
            "assets": list(spec.assets),
            "destination_types": [d.value for d in spec.destination_types],
            "capabilities": entry.capabilities.model_dump(mode="json"),
        }
        entries.append(replace(entry, public=public))
    routes = [Route(r.asset, r.destination_type, r.provider) for r in parsed.routes]
    approvals = _approvals(parsed.approvals, source)
    return PayoutsConfig(ProviderRegistry(entries, routes), approvals, source, tuple(parsed.providers))


# The secret naming the account a rail's own books are kept for: two entries on one account would each settle
# the other's transactions (a Telegram bot's Star transactions, an exchange account's withdrawals).
_ACCOUNT_SECRETS: Mapping[ProviderType, str] = {
    ProviderType.TELEGRAM_IF_SUPPORTED: "bot_token",
    ProviderType.CRYPTO_EXCHANGE: "api_key",
}


def _one_account_each(specs: Sequence[ProviderSpec]) -> None:
    seen: dict[tuple[ProviderType, str], str] = {}
    for spec in specs:
        key = _ACCOUNT_SECRETS.get(spec.type)
        secret = spec.secrets.get(key) if key else None
        if key is None or secret is None:
            continue
        for ident in (f"env:{secret.env}", f"value:{hashlib.sha256(secret.reveal().encode()).hexdigest()}"):
            other = seen.setdefault((spec.type, ident), spec.name)
            if other != spec.name:
                raise ProviderConfigError(
                    f"provider {spec.name!r}: its {key} ({secret.env}) is also provider {other!r}'s: one "
                    f"{spec.type.value} account per provider (each keeps its own books of what it sent)"
                )


def _describe(err: ValidationError, doc: Mapping[str, Any], source: str) -> str:
    """One line naming each problem: `provider '<name>': ...` for a provider entry, `<source>: ...` otherwise.
    Never echoes a value given under `secrets`."""
    raw_providers = doc.get("providers")
    problems: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    errors = err.errors()
    locs = [tuple(e["loc"]) for e in errors]
    for e in errors:
        here = tuple(e["loc"])
        if any(len(other) > len(here) and other[: len(here)] == here for other in locs):
            continue  # a container's complaint about an item already named below it
        loc = list(here)
        where = f"{source}:"
        if loc[:1] == ["providers"] and len(loc) > 1 and isinstance(loc[1], int) and isinstance(raw_providers, list):
            raw = raw_providers[loc[1]]
            name = raw.get("name") if isinstance(raw, dict) else None
            if loc[2:3] != ["name"] and isinstance(name, str):
                where = f"provider {name!r}:"
            loc = loc[2:]
        if e["type"] == "extra_forbidden":
            unknown.setdefault(where, []).append(str(loc[-1]))
            continue
        problems.setdefault(where, []).append(_message(e, loc))
    for where, keys in unknown.items():
        problems.setdefault(where, []).append(f"unknown keys {sorted(keys)}")
    return "; ".join(f"{where} {', '.join(msgs)}" for where, msgs in problems.items())


def _message(e: ErrorDetails, loc: list[int | str]) -> str:
    if e["type"] == "value_error":  # our validators' messages say what and where
        return str(e.get("ctx", {}).get("error", e["msg"]))
    field = ".".join(str(p) for p in loc)
    return f"{field}: {e['msg']}{_shown(e, loc)}" if field else f"{e['msg']}{_shown(e, loc)}"


def _shown(e: ErrorDetails, loc: list[int | str]) -> str:
    """What was given, as far as it cannot carry a secret: a number, a boolean or null is shown; a string only by
    its length and anything else by its type (a secret an operator wrote in the wrong place, in a mis-shaped
    provider entry or a field meant for something else, never reaches a log)."""
    value = e.get("input")
    if e["type"] == "missing":
        return ""
    if isinstance(value, str):
        return f" (got a string of {len(value)} characters)"
    if "secrets" in loc or not isinstance(value, bool | int | float | None):
        return f" (got a {type(value).__name__})"
    return f" (got {value!r})"


def _approvals(raw: Mapping[str, Thresholds], source: str) -> ApprovalBook:
    rules = {}
    for code, thresholds in raw.items():
        if code not in ASSETS:
            raise ProviderConfigError(f"{source}: approvals for unknown asset {code!r}")

        amounts: dict[str, int | None] = {}
        for key in ("auto_below", "dual_from"):
            value = getattr(thresholds, key)
            try:
                amounts[key] = None if value is None else parse_decimal(str(value), code)
            except ValueError as err:
                raise ProviderConfigError(f"{source}: approvals.{code}.{key}: {err}") from None
        try:
            rules[code] = ApprovalRule(code, amounts["auto_below"], amounts["dual_from"])
        except ValueError as err:
            raise ProviderConfigError(f"{source}: approvals.{code}: {err}") from None
    return ApprovalBook(rules)


__all__ = ["PayoutsConfig", "ProvidersFile", "load_config", "parse_config", "read_parts"]
