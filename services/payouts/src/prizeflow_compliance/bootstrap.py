"""The compliance records' part of the composition root (called by `bootstrap.compose` and `bootstrap.build`):
the KYC vendor chosen by settings, the verification and policy use cases over the SQL store, their HTTP
dependencies and the verification events' consumer. Nothing is built at import time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prizeflow_compliance.adapters.records_pg import SqlComplianceQueries
from prizeflow_compliance.application.policy import (
    ApprovePolicy,
    ProposePolicy,
    PublishActivePolicy,
    RejectPolicy,
)
from prizeflow_compliance.application.ports import KycProvider, SanctionsScreen, VerificationChanged
from prizeflow_compliance.application.rescreen import RescreenVerifiedPlayers
from prizeflow_compliance.application.verification import (
    ApplyVerificationEvent,
    ReadVerification,
    StartVerification,
)
from prizeflow_compliance.metrics import ComplianceMetrics
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_runtime.service import ServiceRuntime
from prizeflow_runtime.uow import UnitOfWork

VERIFICATIONS_CONSUMER = "payouts-verifications"


def build_kyc(settings: PayoutsSettings) -> KycProvider | None:
    """The vendor PAYOUTS_KYC_PROVIDER names; None for `none` (verification unavailable, nobody marked verified)."""
    if settings.payouts_kyc_provider == "none":
        return None
    from prizeflow_compliance.adapters.kyc.sumsub import build_sumsub

    return build_sumsub(settings)


@dataclass
class ComplianceRecords:
    """Players' verification records and the risk policy's versions, wired."""

    kyc: KycProvider | None
    uow: UnitOfWork[Books]
    queries: SqlComplianceQueries
    start: StartVerification
    read: ReadVerification
    apply: ApplyVerificationEvent[Books]
    propose: ProposePolicy
    approve: ApprovePolicy
    reject: RejectPolicy
    publish: PublishActivePolicy
    rescreen: RescreenVerifiedPlayers[Books] | None = None  # verified players screened again when a list changed

    def dependencies(self) -> dict[str, object]:
        """The HTTP dependencies of `entrypoints.compliance_http`, by name (bootstrap provides each)."""
        return {
            "compliance_queries": self.queries,
            "start_kyc": self.start,
            "read_kyc": self.read,
            "propose_policy": self.propose,
            "approve_policy": self.approve,
            "reject_policy": self.reject,
        }

    async def close(self) -> None:
        """Shutdown: the vendor's connections (after the consumers stopped)."""
        close = getattr(self.kyc, "close", None)
        if close is not None:
            await close()

    async def publish_policy(self) -> None:
        """Start-up: the active policy announced to rewards unless it was already (idempotent by version)."""
        await self.publish.execute()


def compose_compliance_records(
    settings: PayoutsSettings,
    rt: ServiceRuntime,
    metrics: ComplianceMetrics,
    uow: UnitOfWork[Books],
    *,
    screen: SanctionsScreen | None = None,
    kyc: KycProvider | None = None,
    on_verification_changed: VerificationChanged[Books] | None = None,
    sources: Sequence[str] = (),
) -> ComplianceRecords:
    """`screen`: the sanctions lists (`sources`: the configured ones); without one a verified identity waits
    (retried, never recorded unscreened) and nobody is re-screened.
    `kyc`: a vendor instead of the one settings name (tests). `on_verification_changed`: the payout gate's hook,
    called in the transaction of each change, with its books (`ResumeVerifiedPayouts.on_verification_changed`)."""
    vendor = kyc if kyc is not None else build_kyc(settings)
    common: dict[str, Any] = {
        "uow": uow,
        "service": settings.service_name,
        "source": settings.source,
        "metrics": metrics,
    }
    return ComplianceRecords(
        kyc=vendor,
        uow=uow,
        queries=SqlComplianceQueries(rt.sessions),
        start=StartVerification(uow=uow, kyc=vendor, source=settings.source, metrics=metrics),
        read=ReadVerification(uow),
        apply=ApplyVerificationEvent(
            kyc=vendor,
            screen=screen,
            source=settings.source,
            metrics=metrics,
            trusted_sources=frozenset(settings.payouts_webhook_sources),
            on_changed=on_verification_changed,
        ),
        propose=ProposePolicy(**common),
        approve=ApprovePolicy(**common),
        reject=RejectPolicy(**common),
        publish=PublishActivePolicy(**common),
        rescreen=None
        if screen is None
        else RescreenVerifiedPlayers(
            uow=uow,
            kyc=vendor,
            screen=screen,
            sources=sources,
            batch=settings.payouts_kyc_rescreen_batch,
            # A claimed player stays this run's while the run's vendor calls may last (each within its deadline).
            lease_s=60.0 + settings.payouts_kyc_rescreen_batch * settings.payouts_kyc_timeout_s,
            on_changed=on_verification_changed,
            metrics=metrics,
        ),
    )


__all__ = ["VERIFICATIONS_CONSUMER", "ComplianceRecords", "build_kyc", "compose_compliance_records"]
