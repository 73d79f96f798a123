"""What the Stellar provider can never pay, decided before anything is built (at the API and at creation)."""

from __future__ import annotations

import prizeflow_stellar as ps
from prizeflow_contracts.errors import PayoutError, PayoutErrorCode
from prizeflow_contracts.money import ASSETS
from prizeflow_contracts.providers import DestinationType, PayoutInstruction
from prizeflow_payouts.adapters.stellar.options import STELLAR_SCALE, StellarOptions
from prizeflow_payouts.adapters.stellar.settings import StellarMode

C = PayoutErrorCode


def refusal(o: StellarOptions, instruction: PayoutInstruction) -> PayoutError | None:  # noqa: PLR0911 - one exit per rule
    """Why this payout can never be paid by this provider, or None. Checked at the API and again here."""
    name = o.name
    dest = instruction.destination
    if dest.type is not DestinationType.STELLAR_ACCOUNT:
        return PayoutError.of(C.INVALID_DESTINATION, "stellar pays stellar_account destinations only", provider=name)
    kind = ps.address_kind(dest.address)
    if kind is ps.AddressKind.MUXED:
        return PayoutError.of(
            C.INVALID_DESTINATION,
            "muxed (M...) destinations are not supported: the signer's PaymentIntent accepts G... accounts only",
            provider=name,
        )
    if kind is not ps.AddressKind.ACCOUNT:
        return PayoutError.of(
            C.INVALID_DESTINATION,
            f"{dest.address!r} is not a valid Stellar account (StrKey checksum)",
            provider=name,
        )
    if dest.memo is not None:
        return PayoutError.of(C.INVALID_DESTINATION, "memos are not supported by the Stellar provider", provider=name)
    money = instruction.amount
    if money.asset not in o.assets or money.asset not in ps.supported_asset_codes():
        return PayoutError.of(C.UNSUPPORTED_ASSET, f"{money.asset} is not payable on Stellar here", provider=name)
    if o.mode is StellarMode.CONTRACT and money.asset != o.contract_asset:
        return PayoutError.of(
            C.UNSUPPORTED_ASSET,
            f"the payout contract pays {o.contract_asset}, not {money.asset}",
            provider=name,
        )
    if ASSETS[money.asset].scale != STELLAR_SCALE:
        return PayoutError.of(C.UNSUPPORTED_ASSET, f"{money.asset} is not a 7-decimal asset", provider=name)
    try:
        ps.check_stroops(money.amount)
    except ps.AmountError as err:
        return PayoutError.of(C.AMOUNT_ABOVE_MAXIMUM, str(err), provider=name)
    if not ps.is_valid_idempotency_key(instruction.idempotency_key):
        return PayoutError.of(C.INVALID_REQUEST, "idempotency key must be [A-Za-z0-9:_-]{1,255}", provider=name)
    if dest.address in (o.funding_account, *o.channel_accounts):
        return PayoutError.of(C.INVALID_DESTINATION, "a payout cannot go to our own source account", provider=name)
    return None


__all__ = ["refusal"]
