"""Compliance's metrics (`prizeflow_payouts_*`, the deployable's prefix): identity verification, the sanctions
screen and lists, the re-screen, and the payout gate's decisions and holds (the gate reads the compliance facts)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from prizeflow_contracts.holds import PAYOUT_HOLD_KINDS
from prizeflow_runtime.metrics import metric_name

# `operation` of `kyc_requests`: a call to the identity-verification vendor; `outcome`: ok or error.
KYC_OPERATIONS = ("start", "status", "identity")
# `subject` of the screening series: what was screened.
SCREENING_SUBJECTS = ("destination", "player")
# `stage` and `action` of `gate_decisions`: where the risk policy and screening were applied, and what they said.
GATE_STAGES = ("request", "send")
GATE_ACTIONS = ("allow", "hold", "refuse")


@dataclass(frozen=True)
class ComplianceMetrics:
    """Identity verification, sanctions screening and the risk policy's gate (docs/adr/0012). Labels are bounded:
    never a player, a name, a destination or a list entry."""

    kyc_requests: Counter
    kyc_webhooks: Counter
    verifications: Counter
    screenings: Counter
    screening_hits: Counter
    list_entries: Gauge
    list_published_at: Gauge
    list_refreshed_at: Gauge
    list_refreshes: Counter
    gate_decisions: Counter
    policy_version: Gauge
    payouts_held: Gauge
    stale_players: Gauge
    rescreens: Counter

    @classmethod
    def create(
        cls, registry: CollectorRegistry, service: str = "payouts", *, sources: Iterable[str] = ()
    ) -> ComplianceMetrics:
        def n(name: str) -> str:
            return metric_name(service, name)

        m = cls(
            kyc_requests=Counter(
                n("kyc_requests"),
                "Calls to the identity-verification vendor, by operation and outcome (ok, error)",
                ["operation", "outcome"],
                registry=registry,
            ),
            kyc_webhooks=Counter(
                n("kyc_webhooks"),
                "Verification events from the vendor, by outcome (applied, duplicate, stale, error)",
                ["outcome"],
                registry=registry,
            ),
            verifications=Counter(
                n("verifications"), "Players' verification status changes, by new status", ["status"], registry=registry
            ),
            screenings=Counter(
                n("screenings"),
                "Sanctions screenings, by subject and outcome (clear, hit)",
                ["subject", "outcome"],
                registry=registry,
            ),
            screening_hits=Counter(
                n("screening_hits"),
                "Sanctions screening hits that held a payout or a player for a person, by subject",
                ["subject"],
                registry=registry,
            ),
            list_entries=Gauge(
                n("sanctions_list_entries"),
                "Entries in the loaded sanctions list, by source",
                ["source"],
                registry=registry,
            ),
            list_published_at=Gauge(
                n("sanctions_list_published_timestamp_seconds"),
                "When the publisher dated the loaded sanctions list, by source (Unix time)",
                ["source"],
                registry=registry,
            ),
            list_refreshed_at=Gauge(
                n("sanctions_list_refreshed_timestamp_seconds"),
                "When the sanctions list was last fetched and checked successfully, by source (Unix time)",
                ["source"],
                registry=registry,
            ),
            list_refreshes=Counter(
                n("sanctions_list_refreshes"),
                "Sanctions list fetches, by source and outcome (unchanged, loaded, error)",
                ["source", "outcome"],
                registry=registry,
            ),
            gate_decisions=Counter(
                n("gate_decisions"),
                "The risk gate's decisions on payouts, by stage and action",
                ["stage", "action"],
                registry=registry,
            ),
            policy_version=Gauge(
                n("risk_policy_version"), "The active risk policy version (0: the empty policy)", registry=registry
            ),
            payouts_held=Gauge(
                n("compliance_held_payouts"),
                "Payouts waiting on compliance, by reason (kyc_required, screening_hit, screening_pending, policy)",
                ["reason"],
                registry=registry,
            ),
            stale_players=Gauge(
                n("kyc_stale_screenings"),
                "Verified players whose identity screening predates the loaded sanctions lists (their payouts wait "
                "for the re-screen)",
                registry=registry,
            ),
            rescreens=Counter(
                n("kyc_rescreens"),
                "Verified players screened again after a sanctions list changed, by outcome (clear, hit, error)",
                ["outcome"],
                registry=registry,
            ),
        )
        for op in KYC_OPERATIONS:
            for outcome in ("ok", "error"):
                m.kyc_requests.labels(op, outcome)
        for subject in SCREENING_SUBJECTS:
            m.screening_hits.labels(subject)
            for outcome in ("clear", "hit"):
                m.screenings.labels(subject, outcome)
        for source in sources:
            for outcome in ("unchanged", "loaded", "error"):
                m.list_refreshes.labels(source, outcome)
        for stage in GATE_STAGES:
            for action in GATE_ACTIONS:
                m.gate_decisions.labels(stage, action)
        for code in PAYOUT_HOLD_KINDS:  # every hold kind's series, 0 while none is held
            m.payouts_held.labels(code.value).set(0)
        for outcome in ("clear", "hit", "error"):
            m.rescreens.labels(outcome)
        return m


__all__ = ["ComplianceMetrics"]
