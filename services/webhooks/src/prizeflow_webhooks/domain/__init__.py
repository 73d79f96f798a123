"""The ingress's rules, without I/O: providers and their schemes, refusal reasons, and how each provider's
callbacks become Prizeflow events (normalization)."""

from prizeflow_webhooks.domain.deliveries import (
    DeliveryOutcome,
    IgnoredReason,
    IngressProvider,
    NormalizationError,
    Normalized,
    RefusalReason,
    Scheme,
)

__all__ = [
    "DeliveryOutcome",
    "IgnoredReason",
    "IngressProvider",
    "NormalizationError",
    "Normalized",
    "RefusalReason",
    "Scheme",
]
