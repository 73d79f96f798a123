"""The providers file (`WEBHOOKS_PROVIDERS_FILE`, YAML): which providers may call in, how each signs, with which
secrets, and how its events are confirmed. Secrets are NAMES of environment variables; their values are read
once at start-up and never logged, echoed or returned. Anything unusable stops start-up naming it.
`WEBHOOKS_PROVIDERS_FILE` may name a directory instead: its `*.yaml` parts are merged (`read_parts`), so a
Kubernetes overlay adds a provider as one more key of the mounted ConfigMap.

```yaml
providers:
  - name: stripe                    # the URL: POST /providers/stripe/events
    type: stripe                    # ProviderType: the events' `provider`, and how bodies are read
    scheme: stripe_signature        # or prizeflow_signature
    secrets: [STRIPE_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET_NEXT]   # several during a rotation
    tolerance_s: 300                # default 300, at most 900
    max_body_bytes: 65536           # default 64 KiB
    confirm:                        # Stripe: required outside the dev profile
      api_base: https://api.stripe.com     # or api_base_env: STRIPE_API_URL
      api_key: STRIPE_API_KEY
      timeout_s: 5
  - name: sumsub                    # a Sumsub-shaped identity-verification vendor (KYC)
    type: sumsub                    # VerificationVendor: published as VerificationEventReceived
    scheme: sumsub_digest           # X-Payload-Digest: HMAC of the body (X-Payload-Digest-Alg SHA256/512)
    secrets: [SUMSUB_WEBHOOK_SECRET]         # no confirm: payouts fetches the applicant's status itself
  - name: giftcard                  # a Tremendous-shaped gift-card API
    type: gift_card
    scheme: giftcard_signature      # Tremendous-Webhook-Signature: sha256=<HMAC of the body>, no timestamp
    secrets: [GIFTCARD_WEBHOOK_KEY]
    confirm:                        # always required: the order is fetched back and its status published
      api_base_env: GIFTCARD_API_URL       # https://api.tremendous.com in production (/api/v2 appended)
      api_key: GIFTCARD_API_KEY
  - name: razorpayx                 # the upi rail (RazorpayX Payouts): POST /providers/razorpayx/events
    type: upi
    scheme: razorpay_signature      # X-Razorpay-Signature: <HMAC of the body>, no timestamp; X-Razorpay-Event-Id
    secrets: [UPI_WEBHOOK_SECRET]
    confirm:                        # the payout fetched back (GET /v1/payouts/{id}) before an event is published
      api_base_env: UPI_API_URL            # https://api.razorpay.com in production
      api_key_id: UPI_KEY_ID               # basic auth: the key id ...
      api_key: UPI_KEY_SECRET              # ... and its secret
```
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prizeflow_contracts.kyc import VerificationVendor
from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.rails.reading import incoherence
from prizeflow_contracts.rails.registry import WEBHOOK_READERS
from prizeflow_webhooks.domain.deliveries import IngressProvider

NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
ENV_RE: Final = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_MAX_ENV_NAME: Final = 64
# A name that matches the variable-name pattern but is a credential (a Stellar seed) or too long to be a name.
_SEED_RE: Final = re.compile(r"S[A-Z2-7]{55}")
MIN_SECRET_CHARS: Final = 16
MAX_TOLERANCE_S: Final = 900
MAX_BODY_BYTES: Final = 1_048_576


class ProvidersConfigError(ValueError):
    """The providers file is unusable; the service refuses to start. Never carries a secret's value."""


def _env_name(value: Any, what: str) -> str:
    if (
        not isinstance(value, str)
        or not ENV_RE.fullmatch(value)
        or len(value) > _MAX_ENV_NAME
        or _SEED_RE.fullmatch(value)
    ):
        raise ValueError(f"{what} must name an environment variable (A-Z, 0-9, _), not hold a value")
    return value


EnvName = Annotated[str, Field(min_length=1, max_length=_MAX_ENV_NAME)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class ConfirmModel(_Model):
    """How to fetch an event back from the provider: its API base and the platform key (an env var name)."""

    api_base: str | None = None
    api_base_env: EnvName | None = None
    api_key: EnvName
    # the key id or client id that goes with `api_key` (RazorpayX's basic auth, an OAuth2 client's credentials)
    api_key_id: EnvName | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=30)

    @field_validator("api_key", "api_base_env", "api_key_id", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return (
            None if value is None else _env_name(value, "confirm.api_key / confirm.api_base_env / confirm.api_key_id")
        )

    @model_validator(mode="after")
    def _one_base(self) -> ConfirmModel:
        if (self.api_base is None) == (self.api_base_env is None):
            raise ValueError("confirm needs exactly one of api_base (a URL) or api_base_env (a variable's name)")
        return self


class ProviderModel(_Model):
    name: str
    type: ProviderType | VerificationVendor
    scheme: str  # the name a rail's reader is registered under (`prizeflow_contracts.rails.registry`)
    secrets: list[EnvName] = Field(min_length=1, max_length=4)
    tolerance_s: int = Field(default=300, ge=1, le=MAX_TOLERANCE_S)
    max_body_bytes: int = Field(default=65_536, ge=1024, le=MAX_BODY_BYTES)
    confirm: ConfirmModel | None = None

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> Any:
        if not isinstance(value, str) or not NAME_RE.fullmatch(value):
            raise ValueError(f"a provider name must match {NAME_RE.pattern}")
        return value

    @field_validator("secrets", mode="before")
    @classmethod
    def _secret_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_env_name(v, "each of `secrets`") for v in value]
        return value

    @model_validator(mode="after")
    def _coherent(self) -> ProviderModel:
        """The provider's scheme is a registered reader's, and what that reader says of the scheme holds: the types
        it serves, whether it is confirmed, and how its confirmation authenticates. No rail is named here."""
        reader = WEBHOOK_READERS.get(self.scheme)
        if reader is None:
            raise ValueError(f"scheme must be one of {sorted(WEBHOOK_READERS)}")
        if self.type not in reader.terms.serves:
            own = sorted(r.terms.scheme for r in WEBHOOK_READERS.values() if self.type in r.terms.serves)
            raise ValueError(f"a {self.type.value} provider signs with scheme {' or '.join(own)}, not {self.scheme}")
        confirms, key_id = self.confirm is not None, self.confirm is not None and self.confirm.api_key_id is not None
        if (why := incoherence(reader.terms, self.type, confirms=confirms, key_id=key_id)) is not None:
            raise ValueError(why)
        if len(set(self.secrets)) != len(self.secrets):
            raise ValueError("`secrets` names a variable twice")
        return self


class ProvidersFile(_Model):
    providers: list[ProviderModel] = Field(min_length=1)

    @field_validator("providers")
    @classmethod
    def _unique(cls, value: list[ProviderModel]) -> list[ProviderModel]:
        names = [p.name for p in value]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"provider names must be unique; repeated: {dupes}")
        return value


@dataclass(frozen=True)
class ConfirmConfig:
    api_base: str
    api_key: str = field(repr=False)
    timeout_s: float
    api_key_id: str | None = None


@dataclass(frozen=True)
class WebhooksConfig:
    providers: Mapping[str, IngressProvider]
    confirm: Mapping[str, ConfirmConfig]


def load_config(path: Path, *, dev: bool, env: Mapping[str, str] | None = None) -> WebhooksConfig:
    """The providers file at `path`, or the parts of the directory at `path` merged (`read_parts`)."""
    if path.is_dir():
        doc: Any = read_parts(path)
    elif path.is_file():
        doc = _read_yaml(path)
    else:
        raise ProvidersConfigError(f"providers file {path} does not exist (WEBHOOKS_PROVIDERS_FILE)")
    return parse_config(doc, dev=dev, env=os.environ if env is None else env, source=str(path))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ProvidersConfigError(f"{path}: not valid YAML ({type(err).__name__})") from None


def read_parts(directory: Path) -> dict[str, Any]:
    """The `*.yaml` parts of a providers directory as one document, in file name order, their `providers`
    concatenated. Refused, naming the files: a directory without parts, an entry that is not a `*.yaml` file (a
    `.yml` typo would drop a provider silently), a part that is not a mapping with a `providers` list and nothing
    else, a part listing no provider, and a provider name declared by two parts. Names starting with a dot are
    skipped (a mounted ConfigMap's `..data`)."""
    providers: list[Any] = []
    declared: dict[str, Path] = {}
    paths = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if not (path.name.endswith(".yaml") and path.is_file()):
            raise ProvidersConfigError(
                f"{path}: not a *.yaml file, and the providers directory {directory} (WEBHOOKS_PROVIDERS_FILE) holds "
                "parts only"
            )
        paths.append(path)
    if not paths:
        raise ProvidersConfigError(f"providers directory {directory} holds no *.yaml part (WEBHOOKS_PROVIDERS_FILE)")
    for path in paths:
        part = _read_yaml(path)
        if not isinstance(part, dict) or set(part) != {"providers"} or not isinstance(part["providers"], list):
            raise ProvidersConfigError(f"{path}: a part is a mapping with one key, `providers` (a list)")
        if not part["providers"]:
            raise ProvidersConfigError(f"{path}: the part lists no provider (a lost one?)")
        for entry in part["providers"]:
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and (first := declared.setdefault(name, path)) != path:
                raise ProvidersConfigError(f"provider {name!r} is declared by two parts: {first} and {path}")
            providers.append(entry)
    return {"providers": providers}


def parse_config(doc: Any, *, dev: bool, env: Mapping[str, str], source: str = "<config>") -> WebhooksConfig:
    """The providers of a parsed providers file with their secrets resolved from `env`; ProvidersConfigError
    naming the culprit (a missing variable by its name, never a value)."""
    if not isinstance(doc, dict):
        raise ProvidersConfigError(f"{source}: the top level must be a mapping with `providers`")
    try:
        parsed = ProvidersFile.model_validate(doc)
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProvidersConfigError(f"{source}: {where}: {first['msg'].removeprefix('Value error, ')}") from None
    providers: dict[str, IngressProvider] = {}
    confirm: dict[str, ConfirmConfig] = {}
    for p in parsed.providers:
        secrets = tuple(_secret(env, name, f"provider {p.name!r}: secret") for name in p.secrets)
        if WEBHOOK_READERS[p.scheme].terms.confirm_outside_dev and p.confirm is None and not dev:
            raise ProvidersConfigError(
                f"provider {p.name!r}: {p.type.value} events must be confirmed with the provider outside the dev "
                "profile (add `confirm`)"
            )
        if p.confirm is not None:
            confirm[p.name] = _confirm(p.name, p.confirm, env, dev=dev)
        providers[p.name] = IngressProvider(
            name=p.name,
            type=p.type,
            scheme=p.scheme,
            secrets=secrets,
            tolerance_s=p.tolerance_s,
            max_body_bytes=p.max_body_bytes,
            confirms=p.confirm is not None,
        )
    return WebhooksConfig(providers=providers, confirm=confirm)


def _secret(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name)
    if not value:
        raise ProvidersConfigError(f"{what} needs environment variable {name}, which is not set")
    if len(value) < MIN_SECRET_CHARS:
        raise ProvidersConfigError(f"{what}: environment variable {name} is shorter than {MIN_SECRET_CHARS} characters")
    return value


def _confirm(provider: str, model: ConfirmModel, env: Mapping[str, str], *, dev: bool) -> ConfirmConfig:
    if model.api_base_env is not None:
        base = env.get(model.api_base_env)
        if not base:
            raise ProvidersConfigError(
                f"provider {provider!r}: confirm.api_base_env needs environment variable {model.api_base_env}, "
                "which is not set"
            )
    else:
        assert model.api_base is not None
        base = model.api_base
    schemes = ("https://", "http://") if dev else ("https://",)
    if not base.startswith(schemes):
        raise ProvidersConfigError(
            f"provider {provider!r}: the confirmation API base must start with {' or '.join(schemes)}"
        )
    key = _secret(env, model.api_key, f"provider {provider!r}: confirm.api_key")
    key_id = None
    if model.api_key_id is not None:
        key_id = env.get(model.api_key_id)
        if not key_id:
            raise ProvidersConfigError(
                f"provider {provider!r}: confirm.api_key_id needs environment variable {model.api_key_id}, "
                "which is not set"
            )
    return ConfirmConfig(api_base=base.rstrip("/"), api_key=key, timeout_s=model.timeout_s, api_key_id=key_id)


__all__ = [
    "ConfirmConfig",
    "ProvidersConfigError",
    "ProvidersFile",
    "WebhooksConfig",
    "load_config",
    "parse_config",
    "read_parts",
]
