"""A providers-file entry's options for a rail spoken to over HTTP(S) (Stripe, gift cards, UPI and the like): the fields
they share and the one validation of them.

A rail's options model subclasses `HttpRailOptions` (`api_base`, its default the provider's production API;
`api_base_env`, the NAME of a variable holding it: a local stack or test gives its emulator's address there;
`timeout_s`) and adds its own; `validated_http_options` reads and checks it."""

from __future__ import annotations

from typing import Final, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec

LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


class HttpRailOptions(BaseModel):
    """The options every HTTP rail has; unknown keys are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_base: str
    api_base_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]{0,63}$")
    timeout_s: float = Field(default=8.0, gt=0, le=60)

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        return api_base(value)


def api_base(value: str) -> str:
    """An API's address, normalised (no trailing slash); ValueError for anything but an http(s) URL."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("api_base must be an http(s) URL without query or fragment")
    return value.rstrip("/")


OptionsT = TypeVar("OptionsT", bound=HttpRailOptions)


def validated_http_options(
    model: type[OptionsT], spec: ProviderSpec, context: ProviderContext, where: str, label: str
) -> OptionsT:
    """`spec.options` as `model`, refused at start-up naming the culprit: each invalid or unknown option; a timeout
    not below the worker's (a call the worker gave up on would still be running); both or an unset `api_base_env`;
    plain http to a host that is neither loopback nor a local service name."""
    try:
        opts = model.model_validate(dict(spec.options))
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: "
            + ("unknown option" if e["type"] == "extra_forbidden" else e["msg"])
            for e in err.errors()
        )
        raise ProviderConfigError(f"{where}: {label} options: {problems}") from None
    if opts.timeout_s >= context.provider_timeout_s:
        raise ProviderConfigError(
            f"{where}: timeout_s ({opts.timeout_s}) must be below PAYOUTS_PROVIDER_TIMEOUT_MS "
            f"({context.provider_timeout_s}s): a call the worker gave up on would still be running"
        )
    if opts.api_base_env is not None:
        if "api_base" in spec.options:
            raise ProviderConfigError(f"{where}: give api_base or api_base_env, not both")
        value = context.env.get(opts.api_base_env)
        if not value:
            raise ProviderConfigError(f"{where}: api_base_env names {opts.api_base_env}, which is not set")
        try:
            opts = opts.model_copy(update={"api_base": api_base(value)})
        except ValueError as err:
            raise ProviderConfigError(f"{where}: {opts.api_base_env}: {err}") from None
    parts = urlsplit(opts.api_base)
    if parts.scheme == "http" and parts.hostname not in LOOPBACK and "." in (parts.hostname or ""):
        raise ProviderConfigError(f"{where}: api_base must use https outside loopback or a local service name")
    return opts


__all__ = ["LOOPBACK", "HttpRailOptions", "api_base", "validated_http_options"]
