"""The composition root: backend, policies, the signing schemes and their one pipeline, the consumer and its refusal
hook, built from SignerSettings."""

from __future__ import annotations

import logging

from litestar import Litestar

from prizeflow_contracts.topics import SIGNER_REQUESTS, SIGNER_RESULTS
from prizeflow_runtime.service import ServiceRuntime
from prizeflow_signer.adapters.backends import build_backend
from prizeflow_signer.adapters.books import bind
from prizeflow_signer.application.ports import SignatureBackend
from prizeflow_signer.application.refuse_unreadable import RefuseUnreadableRequest
from prizeflow_signer.application.schemes import HIGHLOAD, V4R2, StellarScheme, TonScheme
from prizeflow_signer.application.sign_pipeline import SignPipeline
from prizeflow_signer.domain.policy import OneLiveSignature, SpendingPolicy
from prizeflow_signer.domain.ton import TonJetton, TonPolicy
from prizeflow_signer.domain.ton_highload import TonHighloadPolicy
from prizeflow_signer.entrypoints.kafka import CONSUMER_NAME, refusal_hook
from prizeflow_signer.expected_schema import EXPECTED_SCHEMA
from prizeflow_signer.metrics import SignerMetrics
from prizeflow_signer.settings import SignerSettings
from prizeflow_stellar.checks import CheckPolicy
from prizeflow_stellar.strkeys import is_account_id, is_contract_id
from prizeflow_ton.addresses import InvalidTonAddressError, canonical

log = logging.getLogger(__name__)


def check_policy(settings: SignerSettings) -> CheckPolicy:
    for account in [settings.payout_source_account, *settings.signer_channel_accounts]:
        if not is_account_id(account):
            raise ValueError(
                f"{account!r} is not a valid G... account (PAYOUT_SOURCE_ACCOUNT / SIGNER_CHANNEL_ACCOUNTS)"
            )
    if settings.payout_contract_id is not None and not is_contract_id(settings.payout_contract_id):
        raise ValueError("PAYOUT_CONTRACT_ID is not a valid C... contract id")
    return CheckPolicy(
        network_passphrase=settings.stellar_network_passphrase,
        funding_account=settings.payout_source_account,
        allowed_sources=frozenset([settings.payout_source_account, *settings.signer_channel_accounts]),
        max_fee_stroops=settings.payouts_max_gas_stroops,
        contract_id=settings.payout_contract_id,
        method_name=settings.payout_method_name,
        allowed_assets=frozenset(settings.signer_allowed_assets),
        contract_asset=settings.signer_contract_asset,
        max_validity_seconds=settings.signer_max_validity_s,
    )


def ton_policy(settings: SignerSettings) -> TonPolicy | None:
    """The TON wallet policy, None when no TON wallet is configured; a malformed address stops start-up."""
    if settings.signer_ton_wallet is None:
        return None
    try:
        jettons = {
            asset: TonJetton(master=canonical(j["master"]), wallet=canonical(j["wallet"]))
            for asset, j in settings.signer_ton_jettons.items()
        }
        wallet = canonical(settings.signer_ton_wallet)
    except InvalidTonAddressError as err:
        raise ValueError(f"SIGNER_TON_WALLET / SIGNER_TON_JETTONS: {err}") from err
    return TonPolicy(
        wallet=wallet,
        subwallet_id=settings.signer_ton_subwallet_id,
        max_validity_s=settings.signer_ton_max_validity_s,
        native_asset=settings.signer_ton_native_asset,
        jettons=jettons,
        max_jetton_attach_nanotons=settings.signer_ton_max_jetton_attach_nanotons,
    )


def ton_highload_policy(settings: SignerSettings) -> TonHighloadPolicy | None:
    """The highload wallet v3 policy, None when no highload wallet is configured; a malformed address stops
    start-up."""
    if settings.signer_ton_highload_wallet is None:
        return None
    try:
        jettons = {
            asset: TonJetton(master=canonical(j["master"]), wallet=canonical(j["wallet"]))
            for asset, j in settings.signer_ton_highload_jettons.items()
        }
        wallet = canonical(settings.signer_ton_highload_wallet)
    except InvalidTonAddressError as err:
        raise ValueError(f"SIGNER_TON_HIGHLOAD_WALLET / SIGNER_TON_HIGHLOAD_JETTONS: {err}") from err
    return TonHighloadPolicy(
        wallet=wallet,
        subwallet_id=settings.signer_ton_highload_subwallet_id,
        max_timeout_s=settings.signer_ton_highload_max_timeout_s,
        clock_skew_s=settings.signer_ton_highload_clock_skew_s,
        max_internal_nanotons=settings.signer_ton_highload_max_internal_nanotons,
        max_batch=settings.signer_ton_highload_max_batch,
        native_asset=settings.signer_ton_native_asset,
        jettons=jettons,
        max_jetton_attach_nanotons=settings.signer_ton_max_jetton_attach_nanotons,
    )


def spending_policy(settings: SignerSettings) -> SpendingPolicy:
    return SpendingPolicy(
        tx_caps=dict(settings.signer_tx_caps),
        daily_caps=dict(settings.signer_daily_caps),
        deny_destinations=_deny_forms(settings.signer_deny_destinations),
    )


def _deny_forms(entries: list[str]) -> frozenset[str]:
    """The deny list as written, plus the raw form of each TON address in it: a TON message names its destination
    raw, and operators copy the user-friendly form (bounceable or not) of the address they deny."""
    forms = set(entries)
    for entry in entries:
        try:
            forms.add(canonical(entry))
        except InvalidTonAddressError:
            continue  # not a TON address (a Stellar account, a contract): compared as written
    return frozenset(forms)


def build(settings: SignerSettings, *, backend: SignatureBackend | None = None) -> Litestar:
    backend = backend or build_backend(settings)
    rt = ServiceRuntime(settings, schema=EXPECTED_SCHEMA, bind=bind)
    metrics = SignerMetrics.create(rt.registry, settings.service_name)
    sign = SignPipeline(
        schemes=[
            StellarScheme(check_policy(settings)),
            TonScheme(V4R2, ton_policy(settings)),
            TonScheme(HIGHLOAD, ton_highload_policy(settings)),
        ],
        backend=backend,
        spending=spending_policy(settings),
        source=settings.source,
        metrics=metrics,
        live=OneLiveSignature(settings.signer_live_margin_s),
    )
    refuse = RefuseUnreadableRequest(
        backend_kind=backend.kind.value, source=settings.source, replayed=sign.replayed, metrics=metrics
    )
    rt.add_consumer(CONSUMER_NAME, [SIGNER_REQUESTS.name], handler=sign, on_refusal=refusal_hook(refuse))
    rt.produces([SIGNER_RESULTS.name])
    app = rt.http_app([], dead_letter_routes=False)  # no inbound API but health and metrics

    async def close_backend() -> None:
        backend.close()

    app.on_shutdown.append(close_backend)
    log.info("signer configured", extra={"backend": backend.kind.value, "public_key": backend.public_key})
    return app


__all__ = ["build", "check_policy", "spending_policy", "ton_highload_policy", "ton_policy"]
