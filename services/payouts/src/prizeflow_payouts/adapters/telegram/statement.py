"""The Telegram rail's statement rules, without I/O: the bot's Star transactions (`getStarTransactions`, listed in
chronological order, paged by offset/limit) read as statement lines.

Telegram carries nothing of ours on a gift: a gift purchase is identified by its transaction id alone, which the
rail keeps as the payout's provider reference (`telegram_gift_sends.transaction_id`, `payouts.provider_ref`). So
`provider_ref` is the transaction id, and `reference` our idempotency key only where the rail's books name the
payout (`attribute`): the transaction it matched to a payout (and Telegram's refund of it, which carries its id),
or a gift purchase no payout holds, to a player and price this rail sent a gift to within the day before it (a
second gift of that payout); else None. `destination` is the receiver's user id as the payout stores it.

| transaction | line |
|---|---|
| outgoing, receiver a user, `gift_purchase` | PAYOUT `<id>`: the gift's Stars to that user |
| incoming, source a user, `gift_purchase` | REVERSAL `<id>:refund`: Telegram refunded that purchase (same id) |
| outgoing, receiver `TransactionPartnerTelegramApi` | FEE `<id>`: Telegram's charge to the bot; it names no gift |
| anything else incoming (a player's Star payment...) | CREDIT `<id>:in` |
| anything else outgoing (a refund of a payment, a withdrawal to Fragment, ads...) | DEBIT `<id>:out` |
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import telegram
from prizeflow_contracts.providers import StatementLine, StatementLineKind

GIFT_PURCHASE: Final = "gift_purchase"
ATTRIBUTION_WINDOW_S: Final = 86_400.0  # a gift nobody claimed is a second one of a payout first asked this recently
CLOCK_SKEW_S: Final = 60.0  # Telegram's dates are its clock's, in whole seconds
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
        kind=K.CREDIT if source is not None else K.DEBIT,
        provider_ref=t.id,
        destination=str(user.id) if user is not None and receiver is not None else None,
        raw_type=f"{what} {kind_of}" if kind_of else str(what),
        **common,
    )


@dataclass(frozen=True, slots=True)
class Sent:
    """A gift this rail sent (its books): to whom, for how many Stars, for which payout, first asked when."""

    user_id: int
    stars: int
    idempotency_key: str
    first_started_at: float


def attribute(
    lines: Sequence[StatementLine],
    claimed: Mapping[str, str],
    sent: Sequence[Sent],
    *,
    within_s: float = ATTRIBUTION_WINDOW_S,
    skew_s: float = CLOCK_SKEW_S,
) -> list[StatementLine]:
    """Each line with `reference` set to the idempotency key of the payout the rail's books say it belongs to:
    `claimed` (transaction id -> key) first; then a gift purchase nobody claimed goes to the latest gift of that
    player and price the rail first asked for in [its date - within_s, its date + skew_s]."""
    out = []
    for line in lines:
        key = claimed.get(line.provider_ref or "")
        if key is None and line.kind is K.PAYOUT and line.destination and line.destination.isdigit():
            at = line.occurred_at.timestamp()
            mine = [
                s
                for s in sent
                if s.user_id == int(line.destination)
                and s.stars == line.amount
                and at - within_s <= s.first_started_at <= at + skew_s
            ]
            if mine:
                key = max(mine, key=lambda s: s.first_started_at).idempotency_key
        out.append(line.model_copy(update={"reference": key}) if key is not None else line)
    return out


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


__all__ = ["ATTRIBUTION_WINDOW_S", "CLOCK_SKEW_S", "GIFT_PURCHASE", "Sent", "attribute", "line_of", "lines_in"]
