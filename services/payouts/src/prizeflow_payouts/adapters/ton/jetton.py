"""The last hop of a jetton payout: did the destination's jetton wallet take the jettons?

Our jetton wallet's transaction sends an `internal_transfer` onward to the destination owner's jetton wallet D.
D may still refuse it (a frozen wallet, too little TON forwarded): D's transaction is then aborted and bounces the
internal_transfer back to its sender, OUR jetton wallet, which takes the jettons back. On success D sends the
excess to the response destination (our main wallet) and a `transfer_notification` to its owner: never anything
to our jetton wallet. So the payout is paid only once D's transaction is seen with no out-message to our jetton
wallet; a bounce to it fails the payout `destination_blocked` (terminal: sending again to a refusing wallet bounces
again; the jettons are back with us, so the reservation is released as it should be).

D's transaction is found with toncenter v2's `tryLocateResultTx` (the message's source, destination and
`created_lt`): O(1), where paging back through D's history (an exchange's deposit wallet: thousands of
transactions) would stall the wallet's queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_payouts.adapters.ton.toncenter import ChainMessage, TonApiError, ToncenterClient
from prizeflow_ton.addresses import InvalidTonAddressError, canonical

C = PayoutErrorCode
REFUSED_DETAIL = "the destination's jetton wallet refused the transfer and bounced it back: nothing was paid"


class Hop(StrEnum):
    PAID = "paid"  # D processed the internal_transfer and sent nothing back to our jetton wallet
    REFUSED = "refused"  # D bounced it back to our jetton wallet: the jettons are ours again
    PENDING = "pending"  # D's transaction is not found yet: wait, conclude nothing


def _raw(address: str) -> str:
    try:
        return canonical(address)
    except InvalidTonAddressError as err:
        raise TonApiError(C.PROVIDER_UNAVAILABLE, f"unreadable address in a transaction: {err}") from None


async def destination_hop(client: ToncenterClient, jetton_wallet: str, onward: Sequence[ChainMessage]) -> Hop:
    """What became of the internal_transfer(s) our jetton wallet (`jetton_wallet`, raw) sent onward (`onward`:
    its transaction's out-messages other than a bounce to our main wallet). Refused if any bounced back, paid if
    every one was processed without, pending while any is not found. A message without `created_lt`, or a
    located transaction that is not the one processing it: a TonApiError (nothing concluded)."""
    ours = _raw(jetton_wallet)
    if not onward:
        raise TonApiError(C.PROVIDER_UNAVAILABLE, "no internal_transfer onward to look for")
    outcome = Hop.PAID
    for message in onward:
        if message.created_lt <= 0:
            raise TonApiError(C.PROVIDER_UNAVAILABLE, "the internal_transfer's created_lt is not shown")
        located = await client.locate_result(ours, message.destination, message.created_lt)
        if located is None:
            outcome = Hop.PENDING
            continue
        if located.in_msg is None or located.in_msg.hash != message.hash:
            raise TonApiError(C.PROVIDER_UNAVAILABLE, "tryLocateResultTx answered another message's transaction")
        if any(_raw(m.destination) == ours for m in located.out_msgs if m.destination):
            return Hop.REFUSED
    return outcome


__all__ = ["REFUSED_DETAIL", "Hop", "destination_hop"]
