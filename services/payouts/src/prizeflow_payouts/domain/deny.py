"""Destinations no rail may pay (`PAYOUTS_DENY_DESTINATIONS`): a sanctioned wallet, an exchange deposit address
tied to fraud, a stolen account's email.

The signer keeps its own deny list for what it signs (Stellar, TON); exchanges, gift cards, Stripe, Telegram and
manual payouts never reach it, so the payouts service checks every request against this one, whatever the rail:
at request time (refused for good, `destination_blocked`, so the claim's reservation is released) and again just
before a payout is first sent (an entry added after the request still stops it; a payout that may already be at
the provider is asked first, never abandoned on this list's word).

An entry is `<destination type>:<address>` (the type checks the entry: a `ton_wallet` one must be a TON address).
Addresses are compared in the one spelling every destination is keyed, counted and screened in
(`prizeflow_contracts.providers.destination_spelling`): a TON address in its raw form (an operator copies the
user-friendly one, bounceable or not), everything else without whitespace and case-folded: emails are
case-insensitive in practice, hex and bech32 addresses by definition, and for case-sensitive encodings (base58)
folding can only deny more, never less. The type is not compared, as it is not in the destination key: a denied
TON wallet is denied paid as a `crypto_address` too (an exchange's USDT on TON).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prizeflow_contracts.providers import DestinationType, PayoutDestination, destination_spelling
from prizeflow_ton.addresses import InvalidTonAddressError, canonical

DENIED_DETAIL = "the destination is on the deny list (PAYOUTS_DENY_DESTINATIONS)"


@dataclass(frozen=True, slots=True)
class DenyList:
    entries: frozenset[tuple[DestinationType, str]] = frozenset()  # (type, destination_spelling)

    @classmethod
    def parse(cls, lines: Iterable[str]) -> DenyList:
        """`<type>:<address>` entries; a malformed one raises ValueError naming it (start-up stops)."""
        entries: set[tuple[DestinationType, str]] = set()
        for line in lines:
            kind, sep, address = line.strip().partition(":")
            if not sep or not address.strip():
                raise ValueError(f"deny list entry {line!r} is not <destination type>:<address>")
            try:
                dtype = DestinationType(kind.strip())
            except ValueError:
                known = ", ".join(t.value for t in DestinationType)
                raise ValueError(f"deny list entry {line!r}: unknown destination type (one of {known})") from None
            if dtype is DestinationType.TON_WALLET:
                try:
                    canonical(address.strip())
                except InvalidTonAddressError as err:
                    raise ValueError(f"deny list entry {line!r}: {err}") from None
            entries.add((dtype, destination_spelling(dtype, address)))
        return cls(frozenset(entries))

    def denies(self, destination: PayoutDestination) -> bool:
        if not self.entries:
            return False
        spelling = destination_spelling(destination.type, destination.address)
        return any((kind, spelling) in self.entries for kind in DestinationType)

    def __len__(self) -> int:
        return len(self.entries)


NOTHING_DENIED = DenyList()


__all__ = ["DENIED_DETAIL", "NOTHING_DENIED", "DenyList"]
