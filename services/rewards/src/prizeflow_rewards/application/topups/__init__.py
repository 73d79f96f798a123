"""Player top-ups: a checkout session at the provider, the wallet credited only on the provider's word.

`sessions.py` opens and verifies sessions (the provider called between two transactions), `money.py` is the one
path that moves a top-up's money, `payments.py` applies the provider's events the webhook ingress verified.
"""

from prizeflow_rewards.application.topups.money import TopUpMoney
from prizeflow_rewards.application.topups.payments import TRUSTED_SOURCES, ApplyPaymentEvents
from prizeflow_rewards.application.topups.sessions import (
    CompleteSandboxCheckout,
    CreateTopUpSession,
    VerifyTopUpSession,
)
from prizeflow_rewards.application.topups.shared import (
    CheckoutProviders,
    TopUpError,
    currency_of,
    may_see,
    not_found,
    provider_failure,
)

__all__ = [
    "TRUSTED_SOURCES",
    "ApplyPaymentEvents",
    "CheckoutProviders",
    "CompleteSandboxCheckout",
    "CreateTopUpSession",
    "TopUpError",
    "TopUpMoney",
    "VerifyTopUpSession",
    "currency_of",
    "may_see",
    "not_found",
    "provider_failure",
]
