"""The ingress's rules, without I/O: providers, refusal reasons and outcomes. How each rail's callbacks are verified
and read lives with the rail (`prizeflow_contracts.rails`)."""

from prizeflow_webhooks.domain.deliveries import DeliveryOutcome, IngressProvider, RefusalReason

__all__ = ["DeliveryOutcome", "IngressProvider", "RefusalReason"]
