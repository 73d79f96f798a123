"""Signer metrics (bounded labels: outcome, refusal code, backend). Every decision series exists from start-up at
0, so a first refusal shows in `increase()` (the signer-refusals alert reads it)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from prizeflow_contracts.events.signer import SignatureRefusalCode

# (outcome, code) pairs a decision is counted under: a verdict without a refusal code is counted as `none`.
DECISIONS = (
    ("signed", "none"),
    ("replayed", "none"),
    ("external", SignatureRefusalCode.EXTERNAL_SIGNING_REQUIRED.value),
    *(("refused", c.value) for c in SignatureRefusalCode if c is not SignatureRefusalCode.EXTERNAL_SIGNING_REQUIRED),
)


@dataclass(frozen=True)
class SignerMetrics:
    decisions: Counter
    sign_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry, service: str = "signer") -> SignerMetrics:
        m = cls(
            decisions=Counter(
                f"prizeflow_{service}_decisions_total",
                "Signature requests decided, by outcome and refusal code",
                ["outcome", "code"],
                registry=registry,
            ),
            sign_seconds=Histogram(
                f"prizeflow_{service}_sign_seconds",
                "Time the key backend took to sign one transaction hash",
                ["backend"],
                registry=registry,
                buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5),
            ),
        )
        for outcome, code in DECISIONS:
            m.decisions.labels(outcome, code)
        return m
