"""The Telegram rail's statement rules, without I/O: the bot's Star transactions (`getStarTransactions`, listed in
chronological order, paged by offset/limit) read as statement lines.

Telegram carries nothing of ours on a gift: a gift purchase is identified by its transaction id alone, which the
rail keeps as the payout's provider reference (`telegram_gift_sends.transaction_id`, `payouts.provider_ref`). So
`reference` is always None here and `provider_ref` is the transaction id; `destination` is the receiver's user id
as the payout stores it (decimal digits).

| transaction | line |
|---|---|
| outgoing, receiver a user, `gift_purchase` | PAYOUT `<id>`: the gift's Stars to that user |
| incoming, source a user, `gift_purchase` | REVERSAL `<id>:refund`: Telegram refunded that purchase (same id) |
| outgoing, receiver `TransactionPartnerTelegramApi` | FEE `<id>`: Telegram's charge to the bot; it names no gift |
| anything else (a player's Star payment, its refund, a withdrawal to Fragment, ads...) | OTHER `<id>:in`/`<id>:out` |
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

import telegram
from prizeflow_contracts.providers import StatementLine, StatementLineKind

GIFT_PURCHASE: Final = "gift_purchase"
K = StatementLineKind


def line_of(t: telegram.StarTransaction, asset: str) -> StatementLine:
    """One transaction as a statement line (every transaction moved the bot's Stars: none is left out)."""
    source, receiver = t.source, t.receiver
    common = {"occurred_at": t.date, "asset": asset, "amount": int(t.amount)}
    if isinstance(receiver, telegram.TransactionPartnerUser) and receiver.transaction_type == GIFT_PURCHASE:
        return StatementLine(
            line_id=t.id,
            kind=K.PAYOUT,
            provider_ref=t.id,
            destination=str(receiver.user.id),
            raw_type="gift_purchase",
            **common,
        )
    if isinstance(source, telegram.TransactionPartnerUser) and source.transaction_type == GIFT_PURCHASE:
        return StatementLine(
            line_id=f"{t.id}:refund",
            kind=K.REVERSAL,
            provider_ref=t.id,
            destination=str(source.user.id),
            raw_type="gift_purchase refunded",
            **common,
        )
    if isinstance(receiver, telegram.TransactionPartnerTelegramApi):
        return StatementLine(line_id=t.id, kind=K.FEE, raw_type="telegram_api", **common)
    partner = source if source is not None else receiver
    what = getattr(partner, "type", "unknown")
    kind_of = getattr(partner, "transaction_type", None)
    user = getattr(partner, "user", None)
    return StatementLine(
        line_id=f"{t.id}:{'in' if source is not None else 'out'}",
        kind=K.OTHER,
        provider_ref=t.id,
        destination=str(user.id) if user is not None and receiver is not None else None,
        raw_type=f"{what} {kind_of}" if kind_of else str(what),
        **common,
    )


def lines_in(
    transactions: Iterable[telegram.StarTransaction], *, since: datetime, until: datetime, asset: str
) -> tuple[list[StatementLine], bool]:
    """The lines of a page dated in [since, until), and whether the page reached `until` (nothing after it counts:
    the list is chronological)."""
    out: list[StatementLine] = []
    for t in transactions:
        if t.date >= until:
            return out, True
        if t.date >= since:
            out.append(line_of(t, asset))
    return out, False


__all__ = ["GIFT_PURCHASE", "line_of", "lines_in"]
