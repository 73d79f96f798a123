"""`build_stellar`: the `stellar` provider type from its providers-file entry plus the §8 environment."""

from __future__ import annotations

from typing import Final

from pydantic import ValidationError

from prizeflow_payouts.adapters.stellar.options import StellarOptions
from prizeflow_payouts.adapters.stellar.provider import StellarPayoutProvider
from prizeflow_payouts.adapters.stellar.settings import StellarEnv, StellarMode
from prizeflow_payouts.application.rail import Rail, RailTerms, StableErrors
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec
from prizeflow_stellar import is_account_id, supported_asset_codes

OPTIONS: Final = frozenset(
    {
        "mode",
        "channel_accounts",
        "max_ops_per_tx",
        "validity_s",
        "base_fee",
        "max_tx_attempts",
        "contract_asset",
        "resign_after_s",
        "rpc_timeout_s",
    }
)


TERMS: Final = RailTerms(cancels=False, quotes=True, webhooks=False, confirms_later=True)


def stellar_rail(provider: StellarPayoutProvider) -> Rail:
    """Signed by the signer (or an operator, out of band), many payouts a transaction, from its own source
    accounts: every part but fixed amounts."""
    return Rail(
        payouts=provider,
        terms=TERMS,
        errors=StableErrors(provider.o.name),  # its provider calls write its books; the driver reads the chain
        statement=provider,
        engine=provider,
        passes=provider,
        database=provider,
        signer_sink=provider,
        external=provider,
        validator=provider,
        batch=provider,
        progress=provider,
    )


def build_stellar(spec: ProviderSpec, context: ProviderContext) -> Rail:
    name = spec.name
    opts = dict(spec.options)
    if unknown := set(opts) - OPTIONS:
        raise ProviderConfigError(f"provider {name!r}: unknown stellar options {sorted(unknown)}")
    if spec.secrets:
        raise ProviderConfigError(f"provider {name!r}: the stellar provider holds no secrets (keys live in the signer)")
    try:
        env = StellarEnv()
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in err.errors())
        raise ProviderConfigError(f"provider {name!r}: {problems}") from None
    for code in spec.assets:
        if code not in supported_asset_codes():
            raise ProviderConfigError(f"provider {name!r}: asset {code!r} has no Stellar mapping")
    if [d.value for d in spec.destination_types] != ["stellar_account"]:
        raise ProviderConfigError(f"provider {name!r}: destination_types must be [stellar_account]")
    try:
        mode = StellarMode(str(opts.get("mode", "payments")))
    except ValueError:
        raise ProviderConfigError(f"provider {name!r}: mode must be payments or contract") from None
    channels = opts.get("channel_accounts", env.payout_channel_accounts)
    if not isinstance(channels, list) or not all(isinstance(c, str) and is_account_id(c) for c in channels):
        raise ProviderConfigError(f"provider {name!r}: channel_accounts must be a list of G... accounts")
    if len(set(channels)) != len(channels) or env.payout_source_account in channels:
        raise ProviderConfigError(
            f"provider {name!r}: channel accounts must be distinct from each other and the funding account"
        )
    contract_asset = str(opts.get("contract_asset", "XLM"))
    if mode is StellarMode.CONTRACT:
        if env.payout_contract_id is None:
            raise ProviderConfigError(f"provider {name!r}: mode contract needs PAYOUT_CONTRACT_ID")
        if contract_asset not in spec.assets:
            raise ProviderConfigError(f"provider {name!r}: contract_asset {contract_asset!r} is not in its assets")

    def number(key: str, default: float, low: float, high: float) -> float:
        value = opts.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
            raise ProviderConfigError(f"provider {name!r}: {key} must be a number in {low}..{high}")
        return float(value)

    options = StellarOptions(
        name=name,
        mode=mode,
        live_execution=context.live_execution,
        network_passphrase=env.stellar_network_passphrase,
        rpc_url=env.soroban_rpc_url,
        funding_account=env.payout_source_account,
        channel_accounts=tuple(channels),
        contract_id=env.payout_contract_id,
        method_name=env.payout_method_name,
        contract_asset=contract_asset,
        assets=spec.assets,
        max_fee_stroops=env.payouts_max_gas_stroops,
        base_fee=int(number("base_fee", 100, 100, 1_000_000)),
        max_ops_per_tx=int(number("max_ops_per_tx", 100, 1, 100)),
        validity_s=int(number("validity_s", 60, 5, 3600)),
        max_tx_attempts=int(number("max_tx_attempts", context.max_attempts, 1, 1000)),
        poll_ms=context.confirm_poll_ms,
        max_polls=context.confirm_max_polls,
        reconcile_ms=context.reconcile_interval_ms,
        resign_after_s=number("resign_after_s", 5.0, 0.1, 600),
        rpc_timeout_s=number("rpc_timeout_s", min(10.0, context.provider_timeout_s), 0.1, 120),
        source=context.source,
    )
    # No pool of its own: bootstrap hands it the service's (`database`).
    return stellar_rail(StellarPayoutProvider(options))


__all__ = ["TERMS", "build_stellar", "stellar_rail"]
