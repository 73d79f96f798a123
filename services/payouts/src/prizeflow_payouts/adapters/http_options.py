"""A providers-file entry's options for a rail spoken to over HTTP(S) (gift cards, UPI): the one validation they share.

The options model names `api_base` (or `api_base_env`, the NAME of a variable holding it: a local stack or test gives
its emulator's address there), `timeout_s`, and a classmethod `_api_base(value)` normalising an address."""

from __future__ import annotations

from typing import Any, Final, Protocol, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec

LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


class HttpOptions(Protocol):
    api_base: str
    api_base_env: str | None
    timeout_s: float

    @classmethod
    def _api_base(cls, value: str) -> str: ...

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Any: ...


OptionsT = TypeVar("OptionsT", bound=BaseModel)


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
    http: HttpOptions = opts  # type: ignore[assignment]  # the fields the module's docstring names
    if http.timeout_s >= context.provider_timeout_s:
        raise ProviderConfigError(
            f"{where}: timeout_s ({http.timeout_s}) must be below PAYOUTS_PROVIDER_TIMEOUT_MS "
            f"({context.provider_timeout_s}s): a call the worker gave up on would still be running"
        )
    if http.api_base_env is not None:
        if "api_base" in spec.options:
            raise ProviderConfigError(f"{where}: give api_base or api_base_env, not both")
        value = context.env.get(http.api_base_env)
        if not value:
            raise ProviderConfigError(f"{where}: api_base_env names {http.api_base_env}, which is not set")
        try:
            opts = opts.model_copy(update={"api_base": http._api_base(value)})
        except ValueError as err:
            raise ProviderConfigError(f"{where}: {http.api_base_env}: {err}") from None
        http = opts  # type: ignore[assignment]
    parts = urlsplit(http.api_base)
    if parts.scheme == "http" and parts.hostname not in LOOPBACK and "." in (parts.hostname or ""):
        raise ProviderConfigError(f"{where}: api_base must use https outside loopback or a local service name")
    return opts


__all__ = ["LOOPBACK", "HttpOptions", "validated_http_options"]
