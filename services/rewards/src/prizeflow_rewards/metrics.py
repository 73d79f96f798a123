"""Rewards metrics (`prizeflow_rewards_*`). Labels are bounded: campaign ids are created by admins, assets
and codes come from enums; never a player id. The claim outcomes exist from start-up at 0 and a campaign's
series from the first refresh after it exists (`RefreshRewardsGauges`, a job), so alert rules see a first event."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from prizeflow_rewards.domain.campaigns import CampaignStatus
from prizeflow_rewards.domain.claims import RefusalCode
from prizeflow_rewards.domain.contradictions import KNOWN
from prizeflow_runtime.metrics import metric_name

# The `outcome` label of `claims`: what a claim request became.
CLAIM_OUTCOMES = ("approved", "held", *(f"refused_{code.value}" for code in RefusalCode))


@dataclass(frozen=True)
class RewardsMetrics:
    pool_funded: Gauge
    pool_remaining: Gauge
    pool_reserved: Gauge
    pool_paid: Gauge
    held_allocations: Gauge
    held_claims: Gauge
    campaigns: Gauge
    rejection_rate: Gauge
    claims_decided: Gauge
    claims: Counter
    abuse_holds: Counter
    transfers: Counter
    pool_exhausted: Counter
    transaction_retries: Counter
    top_ups: Counter
    payment_events: Counter
    contradictions: Counter
    claim_batch: Histogram
    claim_batch_seconds: Histogram
    claim_intake_waiting: Gauge
    claim_intake_set_aside: Gauge
    fx_quotes: Counter
    fx_rate_failures: Counter
    fx_rate_timestamp: Gauge
    fx_position: Gauge
    fx_position_difference: Gauge
    fx_reconciled_at: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry, service: str = "rewards") -> RewardsMetrics:
        def n(name: str) -> str:
            return metric_name(service, name)

        pool = ["campaign_id", "asset"]
        m = cls(
            pool_funded=Gauge(
                n("pool_funded"), "Minor units ever funded into a campaign pool", pool, registry=registry
            ),
            pool_remaining=Gauge(n("pool_remaining"), "Minor units a pool can still pay", pool, registry=registry),
            pool_reserved=Gauge(n("pool_reserved"), "Pending debits against a pool", pool, registry=registry),
            pool_paid=Gauge(n("pool_paid"), "Minor units a pool has paid to wallets", pool, registry=registry),
            held_allocations=Gauge(
                n("held_allocations"),
                "Rounds whose allocations wait for a pool top-up",
                ["campaign_id"],
                registry=registry,
            ),
            held_claims=Gauge(n("held_claims"), "Claims waiting for review", registry=registry),
            campaigns=_by_status(n("campaigns"), "Campaigns by status (refreshed from the database)", registry),
            rejection_rate=Gauge(
                n("claim_rejection_rate"),
                "Share of claims decided in the last 24h that were rejected, voided or returned",
                registry=registry,
            ),
            claims_decided=Gauge(
                n("claims_decided"),
                "Claims decided (paid, rejected, voided or returned) in the last 24h: the rejection rate's denominator",
                registry=registry,
            ),
            claims=Counter(n("claims"), "Claim requests by outcome", ["outcome"], registry=registry),
            abuse_holds=Counter(n("abuse_holds"), "Claims held for review, by reason", ["reason"], registry=registry),
            transfers=Counter(n("ledger_transfers"), "Ledger transfers applied, by kind", ["kind"], registry=registry),
            pool_exhausted=Counter(
                n("pool_exhausted"),
                "Rounds held because their pool could not pay them",
                ["campaign_id"],
                registry=registry,
            ),
            transaction_retries=Counter(
                n("transaction_retries"),
                "HTTP transactions run again after a deadlock or serialization failure (retried), or given up (503)",
                ["outcome"],
                registry=registry,
            ),
            top_ups=Counter(
                n("top_ups"),
                "Top-up sessions created or refused, credits ended unpaid, adjustments applied",
                ["outcome"],
                registry=registry,
            ),
            payment_events=Counter(
                n("payment_events"),
                "Provider payment events consumed, by provider and outcome",
                ["provider", "outcome"],
                registry=registry,
            ),
            contradictions=Counter(
                n("final_state_contradictions"),
                "Later words against a final state (a payment after a top-up expired, a payout paid for a voided "
                "claim...): recorded, never applied; a person decides",
                ["subject", "state", "reported"],
                registry=registry,
            ),
            claim_batch=Histogram(
                n("claim_batch_size"),
                "Claim requests decided per intake transaction (group commit)",
                buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500),
                registry=registry,
            ),
            claim_batch_seconds=Histogram(
                n("claim_batch_seconds"),
                "Seconds per claim intake transaction, lock to commit (retries included)",
                buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
                registry=registry,
            ),
            claim_intake_waiting=Gauge(
                n("claim_intake_waiting"),
                "Claim requests waiting for the next intake transaction (queued behind the one committing)",
                registry=registry,
            ),
            claim_intake_set_aside=Gauge(
                n("claim_intake_set_aside"),
                "Claim requests set aside until their player's wallet, held by another transaction, is free",
                registry=registry,
            ),
            fx_quotes=Counter(n("fx_quotes"), "Conversion quotes issued, by pair", ["pair"], registry=registry),
            fx_rate_failures=Counter(
                n("fx_rate_failures"), "Rates provider calls that gave no usable rate", registry=registry
            ),
            fx_rate_timestamp=Gauge(
                n("fx_rate_timestamp_seconds"),
                "When the rates provider published the latest rate read, per enabled pair",
                ["pair"],
                registry=registry,
            ),
            fx_position=Gauge(
                n("fx_position"), "The FX desk's posted position per asset (minor units)", ["asset"], registry=registry
            ),
            fx_position_difference=Gauge(
                n("fx_position_difference"),
                "An FX account's ledger position less what its transfers add up to, at the last reconciliation",
                ["asset"],
                registry=registry,
            ),
            fx_reconciled_at=Gauge(
                n("fx_reconciled_timestamp_seconds"), "When the FX accounts were last reconciled", registry=registry
            ),
        )
        for outcome in CLAIM_OUTCOMES:
            m.claims.labels(outcome)
        for subject, state, reported in KNOWN:
            m.contradictions.labels(subject, state, reported)
        return m


def _by_status(name: str, documentation: str, registry: CollectorRegistry) -> Gauge:
    """Every campaign status exported at 0 from start-up: "active campaigns" reads 0, not nothing, before the
    first campaign exists."""
    gauge = Gauge(name, documentation, ["status"], registry=registry)
    for status in CampaignStatus:
        gauge.labels(status.value).set(0)
    return gauge
