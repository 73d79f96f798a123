"""What a rail's factory is given: its validated providers-file entry (`ProviderSpec`), the service's
`ProviderContext`, and the error that refuses start-up. A leaf: it imports neither the config loader nor any
provider, so both import it (no cycle) and factories are typed `ProviderFactory`s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, SkipValidation, ValidationInfo, field_validator

from prizeflow_contracts.money import ASSETS
from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_payouts.application.rail import Rail

NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
ENV_RE: Final = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# A value that matches the variable-name pattern but is a credential: a Stellar secret seed (S + 55 base32
# characters, all capitals) or anything longer than a sensible variable name. Refused without echoing it.
_SEED_RE = re.compile(r"S[A-Z2-7]{55}")
_MAX_ENV_NAME = 64


def _looks_like_a_value(name: str) -> bool:
    return len(name) > _MAX_ENV_NAME or _SEED_RE.fullmatch(name) is not None


class ProviderConfigError(ValueError):
    """The payouts configuration is unusable; the service refuses to start."""


class Secret(SecretStr):
    """A secret read from the environment variable `env`; never shows its value in logs, reprs or tracebacks."""

    def __init__(self, env: str, value: str) -> None:
        super().__init__(value)
        self.env = env

    def reveal(self) -> str:
        return self.get_secret_value()

    def __repr__(self) -> str:
        return f"Secret(env={self.env!r}, value='***')"

    __str__ = __repr__


class ProviderSpec(BaseModel):
    """One `providers` entry of the providers file, validated. `secrets` name environment variables in the
    file and hold their values here (validated with `context={"env": ...}`); a value in the file is refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: ProviderType
    assets: tuple[str, ...] = Field(min_length=1)
    destination_types: tuple[DestinationType, ...] = Field(min_length=1)
    secrets: Annotated[Mapping[str, Secret], SkipValidation] = Field(default_factory=dict)
    options: Mapping[str, Any] = Field(default_factory=dict)

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        if not isinstance(value, str) or not NAME_RE.fullmatch(value):
            raise ValueError(f"provider name {value!r} must match {NAME_RE.pattern}")
        return value

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> ProviderType:
        try:
            return ProviderType(str(value))
        except ValueError:
            known = ", ".join(t.value for t in ProviderType)
            raise ValueError(f"unknown provider type {value!r} (known: {known})") from None

    @field_validator("assets")
    @classmethod
    def _assets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for code in value:
            if code not in ASSETS:
                raise ValueError(f"unknown asset {code!r}")
            if not ASSETS[code].redeemable:
                raise ValueError(f"asset {code!r} is not redeemable and can never be paid")
        return value

    @field_validator("secrets", mode="before")
    @classmethod
    def _secrets(cls, value: Any, info: ValidationInfo) -> dict[str, Secret]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError("`secrets` must map secret names to environment variable names")
        env: Mapping[str, str] = (info.context or {}).get("env", {})
        out: dict[str, Secret] = {}
        for key, env_name in value.items():
            if isinstance(env_name, Secret):  # already resolved (a spec validated again)
                out[str(key)] = env_name
                continue
            if not isinstance(env_name, str) or not ENV_RE.fullmatch(env_name) or _looks_like_a_value(env_name):
                raise ValueError(f"secret {key!r} must name an environment variable, not hold a value")
            resolved = env.get(env_name)
            if not resolved:
                raise ValueError(f"secret {key!r} needs environment variable {env_name}, which is not set")
            out[str(key)] = Secret(env_name, resolved)
        return out

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, value: Any) -> Any:
        return {} if value is None else value


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
    # The environment the providers file was resolved against: a factory reads an option naming a variable
    # (e.g. Stripe's `api_base_env`) from here, never from the process directly.
    env: Mapping[str, str] = field(default_factory=dict)


# A rail built from its spec: its parts and terms (`application/rail.py`), registered once.
ProviderFactory = Callable[[ProviderSpec, ProviderContext], Rail]


__all__ = [
    "ENV_RE",
    "NAME_RE",
    "ProviderConfigError",
    "ProviderContext",
    "ProviderFactory",
    "ProviderSpec",
    "Secret",
]
