"""Which rails may vouch, in a restore's recovery window, that a payout was never sent: only those whose
`sync_status` reads the provider's own books. A rail answering from payouts' own tables (restored with the rest)
must not claim it (`RailTerms.finds_payouts_at_provider`; the worker then sends nothing and a person reads the
rail's books)."""

from __future__ import annotations

import pytest

from prizeflow_payouts.adapters.exchange.factory import exchange_terms
from prizeflow_payouts.adapters.giftcard.factory import giftcard_terms
from prizeflow_payouts.adapters.providers import manual
from prizeflow_payouts.adapters.providers import sandbox_factory as sandbox
from prizeflow_payouts.adapters.stellar import factory as stellar
from prizeflow_payouts.adapters.stripe.factory import stripe_terms
from prizeflow_payouts.adapters.stripe.options import StripeMode
from prizeflow_payouts.adapters.telegram import factory as telegram
from prizeflow_payouts.adapters.ton import factory as ton
from prizeflow_payouts.application.rail import RailTerms

# The provider's own books: Stripe's transfers and payouts (either mode), the gift-card vendor's orders.
AT_PROVIDER = {
    "stripe-transfer": stripe_terms(StripeMode.TRANSFER),
    "stripe-transfer_and_payout": stripe_terms(StripeMode.TRANSFER_AND_PAYOUT),
    "giftcard": giftcard_terms(webhooks=True),
    "giftcard-no-webhooks": giftcard_terms(webhooks=False),
}
# payouts' own tables: stellar_payouts, ton_payouts, exchange_withdrawals, telegram_gift_sends, the sandbox's.
OWN_RECORDS = {
    "stellar": stellar.TERMS,
    "exchange": exchange_terms(7200.0),
    "ton": ton.TERMS,
    "telegram": telegram.TERMS,
    "sandbox": sandbox.TERMS,
    "manual": manual.TERMS,
}


@pytest.mark.parametrize("terms", AT_PROVIDER.values(), ids=list(AT_PROVIDER))
def test_a_rail_reading_the_providers_books_vouches(terms: RailTerms) -> None:
    assert terms.finds_payouts_at_provider is True


@pytest.mark.parametrize("terms", OWN_RECORDS.values(), ids=list(OWN_RECORDS))
def test_a_rail_reading_our_own_records_does_not(terms: RailTerms) -> None:
    assert terms.finds_payouts_at_provider is False
