"""`build_sandbox`: the sandbox rail from its providers-file entry (scenarios, fee, schema, page size)."""

from __future__ import annotations

from typing import Final

from prizeflow_payouts.adapters.providers.sandbox import SandboxPayoutProvider
from prizeflow_payouts.adapters.providers.sandbox_scenarios import parse_scenarios
from prizeflow_payouts.adapters.providers.sandbox_statement import SandboxStatement
from prizeflow_payouts.application.rail import Rail, RailTerms, StableErrors
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec

TERMS: Final = RailTerms(cancels=True, quotes=True, webhooks=True, confirms_later=True)


def sandbox_rail(provider: SandboxPayoutProvider) -> Rail:
    return Rail(
        payouts=provider,
        terms=TERMS,
        errors=StableErrors("sandbox"),
        statement=SandboxStatement(provider),
        engine=provider,
        validator=provider,
        batch=provider,
    )


def build_sandbox(spec: ProviderSpec, context: ProviderContext) -> Rail:
    from prizeflow_runtime.db import asyncpg_dsn

    opts = dict(spec.options)
    allowed = {"default_scenario", "scenarios", "fee_bps", "schema", "pool_size", "statement_page_size"}
    if set(opts) - allowed:
        raise ProviderConfigError(f"provider {spec.name!r}: unknown sandbox options {sorted(set(opts) - allowed)}")
    if set(spec.secrets) - {"webhook_secret"}:
        raise ProviderConfigError(f"provider {spec.name!r}: the sandbox only knows the secret `webhook_secret`")
    scenarios = parse_scenarios(opts.get("scenarios") or {}, spec.name)
    default = str(opts.get("default_scenario", "success"))
    if default not in scenarios:
        raise ProviderConfigError(f"provider {spec.name!r}: default_scenario {default!r} is not a scenario")
    schema = str(opts.get("schema", "sandbox"))
    if not schema.isidentifier():
        raise ProviderConfigError(f"provider {spec.name!r}: schema {schema!r} is not an identifier")
    page_size = opts.get("statement_page_size", 500)
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 10_000:
        raise ProviderConfigError(f"provider {spec.name!r}: statement_page_size is an integer in [1, 10000]")
    secret = spec.secrets.get("webhook_secret")
    provider = SandboxPayoutProvider(
        dsn=asyncpg_dsn(context.database_url),
        scenarios=scenarios,
        default_scenario=default,
        fee_bps=int(opts.get("fee_bps", 0)),
        webhook_secret=secret.reveal() if secret is not None else None,
        schema=schema,
        pool_size=int(opts.get("pool_size", 10)),
        statement_page_size=page_size,
    )
    return sandbox_rail(provider)


__all__ = ["TERMS", "build_sandbox", "sandbox_rail"]
