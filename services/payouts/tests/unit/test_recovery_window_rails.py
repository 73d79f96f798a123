"""Which rails may vouch, in a restore's recovery window, that a payout was never sent: only those whose
`sync_status` reads the provider's own books. A rail answering from payouts' own tables (restored with the rest)
must not claim it (application/ports.py `FindsPayoutsAtProvider`; the worker then sends nothing and a person
reads the rail's books)."""

from __future__ import annotations

import pytest

from prizeflow_payouts.adapters.exchange.provider import ExchangeWithdrawalProvider
from prizeflow_payouts.adapters.giftcard.provider import GiftCardPayoutProvider
from prizeflow_payouts.adapters.providers.manual import ManualPayoutProvider
from prizeflow_payouts.adapters.providers.sandbox import SandboxPayoutProvider
from prizeflow_payouts.adapters.stellar.provider import StellarPayoutProvider
from prizeflow_payouts.adapters.stripe.provider import StripePayoutProvider
from prizeflow_payouts.adapters.telegram.provider import TelegramGiftProvider
from prizeflow_payouts.adapters.ton.provider import TonWalletProvider

# The provider's own books: Stripe's transfers and payouts, the gift-card vendor's orders.
AT_PROVIDER = (StripePayoutProvider, GiftCardPayoutProvider)
# payouts' own tables: stellar_payouts, ton_payouts, exchange_withdrawals, telegram_gift_sends, the sandbox's.
OWN_RECORDS = (
    StellarPayoutProvider,
    TonWalletProvider,
    ExchangeWithdrawalProvider,
    TelegramGiftProvider,
    SandboxPayoutProvider,
    ManualPayoutProvider,
)


@pytest.mark.parametrize("rail", AT_PROVIDER, ids=lambda c: c.__name__)
def test_a_rail_reading_the_providers_books_vouches(rail: type) -> None:
    assert getattr(rail, "finds_payouts_at_provider", False) is True


@pytest.mark.parametrize("rail", OWN_RECORDS, ids=lambda c: c.__name__)
def test_a_rail_reading_our_own_records_does_not(rail: type) -> None:
    assert not hasattr(rail, "finds_payouts_at_provider")
