"""Signer metrics (bounded labels: outcome, refusal code, backend)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class SignerMetrics:
    decisions: Counter
    sign_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry, service: str = "signer") -> SignerMetrics:
        return cls(
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
