"""The matching rules of reconciliation (`prizeflow_reconciliation/domain/matching.py`), on hand-made statements:
each kind of difference is found once and classified right, a clean window finds none, and the totals add up to the
minor unit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from prizeflow_contracts.providers import StatementLine, StatementLineKind
from prizeflow_reconciliation.domain import (
    ACTIONS,
    MONEY_ACTIONS,
    SEVERITY,
    TRANSITIONS,
    UNMATCHED_DEBITS,
    Action,
    Chain,
    ExceptionKind,
    ExceptionState,
    OurPayout,
    Severity,
    reconcile,
    stray_subjects,
)

K = ExceptionKind
SINCE = datetime(2026, 11, 25, 10, tzinfo=UTC)
UNTIL = SINCE + timedelta(hours=1)
IN = SINCE + timedelta(minutes=30)


def payout(
    n: int, *, state: str = "paid", amount: int = 1_000, paid_at: datetime | None = IN, **kw: object
) -> OurPayout:
    fields: dict[str, object] = {
        "payout_id": f"po-{n}",
        "idempotency_key": f"key-{n}",
        "provider_ref": f"tr_{n}",
        "state": state,
        "asset": "USD",
        "amount": amount,
        "destination": f"acct_{n}",
        "paid_at": paid_at if state in ("paid", "returned") else None,
    }
    fields.update(kw)
    return OurPayout(**fields)  # type: ignore[arg-type]


def line(
    line_id: str,
    *,
    ref: str | None = None,
    kind: StatementLineKind = StatementLineKind.PAYOUT,
    amount: int = 1_000,
    at: datetime = IN,
    dest: str | None = None,
    asset: str = "USD",
    provider_ref: str | None = None,
) -> StatementLine:
    return StatementLine(
        line_id=line_id,
        kind=kind,
        occurred_at=at,
        asset=asset,
        amount=amount,
        reference=ref,
        provider_ref=provider_ref,
        destination=dest,
    )


def paid_line(n: int, **kw: object) -> StatementLine:
    fields: dict[str, object] = {"ref": f"key-{n}", "dest": f"acct_{n}"}
    fields.update(kw)
    return line(f"l-{n}", **fields)  # type: ignore[arg-type]


def kinds(lines: list[StatementLine], ours: list[OurPayout]) -> list[tuple[ExceptionKind, str]]:
    return sorted((f.kind, f.subject) for f in reconcile(lines, ours, since=SINCE, until=UNTIL).findings)


def test_a_clean_window_finds_nothing_and_matches_every_payout() -> None:
    ours = [payout(n) for n in range(5)]
    out = reconcile([paid_line(n) for n in range(5)], ours, since=SINCE, until=UNTIL)
    assert out.findings == []
    assert out.matched == 5
    assert out.totals["USD"].ours_paid == out.totals["USD"].theirs_paid == out.totals["USD"].provider_movement == 5_000


def test_lines_match_by_payout_id_or_provider_reference_too() -> None:
    ours = [payout(1), payout(2)]
    lines = [line("a", ref="po-1", dest="acct_1"), line("b", provider_ref="tr_2", dest="acct_2")]
    assert kinds(lines, ours) == []


def test_each_kind_of_difference_is_found_once_and_classified() -> None:
    ours = [
        payout(1),  # missing at the provider
        payout(2),  # paid twice
        payout(3),  # another amount
        payout(4),  # another destination
        payout(5),  # reversed at the provider
        payout(6, state="failed"),  # paid at the provider all the same
        payout(7, fee_asset="USD", fee_amount=0),  # paid with no fee, charged one since: nobody booked it
        payout(8, state="submitting", unknown_outcome=True, paid_at=None),  # the rail cannot tell
    ]
    lines = [
        line("stray", ref=None, dest="acct_x", amount=777),  # nobody asked for it
        paid_line(2),
        paid_line(2, at=IN + timedelta(seconds=1)).model_copy(update={"line_id": "l-2b"}),
        paid_line(3, amount=1_100),
        paid_line(4, dest="acct_elsewhere"),
        paid_line(5),
        line("rev-5", ref="key-5", kind=StatementLineKind.REVERSAL),
        paid_line(6),
        paid_line(7),
        line("fee-7", ref="key-7", kind=StatementLineKind.FEE, amount=30),
        paid_line(8),
    ]
    assert kinds(lines, ours) == sorted(
        [
            (K.UNREQUESTED, "line:stray"),
            (K.MISSING, "payout:po-1"),
            (K.DUPLICATE, "payout:po-2"),
            (K.OVERPAID, "payout:po-3"),
            (K.DESTINATION_MISMATCH, "payout:po-4"),
            (K.UNRECORDED_REVERSAL, "payout:po-5"),
            (K.PAID_NOT_RECORDED, "payout:po-6"),
            (K.UNBOOKED_FEE, "payout:po-7:USD"),
            (K.UNKNOWN_OUTCOME, "payout:po-8:unknown:"),
        ]
    )
    by_kind = {f.kind: f for f in reconcile(lines, ours, since=SINCE, until=UNTIL).findings}
    assert by_kind[K.DUPLICATE].amount == 1_000  # the extra payment
    assert by_kind[K.OVERPAID].amount == 100
    assert by_kind[K.UNBOOKED_FEE].amount == 30
    assert by_kind[K.UNREQUESTED].amount == 777
    assert [t.line_id for t in by_kind[K.UNKNOWN_OUTCOME].theirs] == ["l-8"]  # evidence for the person


def test_a_returned_payout_with_its_reversal_and_a_recorded_fee_are_matched() -> None:
    ours = [payout(1, state="returned"), payout(2, fee_asset="USD", fee_amount=30)]
    lines = [
        paid_line(1),
        line("rev-1", ref="key-1", kind=StatementLineKind.REVERSAL),
        paid_line(2),
        line("fee-2", ref="key-2", kind=StatementLineKind.FEE, amount=30),
    ]
    out = reconcile(lines, ours, since=SINCE, until=UNTIL)
    assert out.findings == []
    assert out.totals["USD"].provider_movement == 2_000 + 30 - 1_000


def test_a_fee_no_answer_carried_is_recorded_from_the_statement_and_raises_nothing() -> None:
    """Issue 56: a payout paid by an answer that named no fee (a webhook without one) records the fee its statement
    is the first to carry, once; a payout that recorded a fee is held to it; fees in two assets are not guessed."""
    ours = [payout(1), payout(2, fee_asset="USD", fee_amount=30), payout(3), payout(4)]
    lines = [
        paid_line(1),
        line("fee-1", ref="key-1", kind=StatementLineKind.FEE, amount=30),
        paid_line(2),
        line("fee-2", ref="key-2", kind=StatementLineKind.FEE, amount=45),  # 15 beyond what it recorded
        paid_line(3),  # no fee line: nothing to learn
        paid_line(4),
        line("fee-4a", ref="key-4", kind=StatementLineKind.FEE, amount=30),
        line("fee-4b", ref="key-4", kind=StatementLineKind.FEE, amount=2, asset="XLM"),
    ]
    out = reconcile(lines, ours, since=SINCE, until=UNTIL)
    assert out.fees_learned == [("po-1", "USD", 30)]
    assert sorted((f.kind, f.subject, f.amount) for f in out.findings) == [
        (K.UNBOOKED_FEE, "payout:po-2:USD", 15),
        (K.UNBOOKED_FEE, "payout:po-4:USD", 30),
        (K.UNBOOKED_FEE, "payout:po-4:XLM", 2),
    ]
    # A fee an exception was found about before (booked by two people, or still open) is never recorded as well:
    # the books would hold it twice. Its chain claims it, so nothing new is raised either.
    found_before = {(K.UNBOOKED_FEE, "payout:po-1:USD"): Chain(1, 30)}
    again = reconcile(lines[:2], ours[:1], since=SINCE, until=UNTIL, chains=found_before)
    assert (again.fees_learned, again.findings) == ([], [])


def test_the_window_edges() -> None:
    """A payout paid just before the window's end may be listed just after it (the run reads past both edges):
    matched, not missing. A stray line outside the window belongs to the next run; a payout paid outside the
    window whose line is outside too is the other run's."""
    late = paid_line(1, at=UNTIL + timedelta(seconds=5))
    outside_stray = line("stray", dest="x", at=UNTIL + timedelta(minutes=1))
    ours = [payout(1, paid_at=UNTIL - timedelta(seconds=1)), payout(2, paid_at=SINCE - timedelta(minutes=5))]
    out = reconcile([late, outside_stray], ours, since=SINCE, until=UNTIL)
    assert out.findings == []
    # The late line is the window's: its payout was paid in it (both sides count it here, none in the next window).
    assert out.lines == 1
    assert out.totals["USD"].ours_paid == out.totals["USD"].theirs_paid == 1_000


def test_an_in_flight_payout_listed_at_the_provider_is_not_yet_a_difference() -> None:
    assert kinds([paid_line(1)], [payout(1, state="submitted", paid_at=None)]) == []


def test_stray_fees_and_credits_are_their_own_kinds() -> None:
    lines = [
        line("f", kind=StatementLineKind.FEE, amount=5),
        line("c", kind=StatementLineKind.REVERSAL, amount=9),
        line("o", kind=StatementLineKind.OTHER, amount=50),
        line("in", kind=StatementLineKind.CREDIT, amount=70),
        line("out", kind=StatementLineKind.DEBIT, amount=80),
        line("none", kind=StatementLineKind.DEBIT, amount=0),
    ]
    assert sorted(kinds(lines, [])) == sorted(
        [
            (K.UNBOOKED_FEE, "line:f"),
            (K.UNMATCHED_CREDIT, "line:c"),
            (K.UNEXPLAINED_DEBIT, "line:o"),
            (K.UNMATCHED_CREDIT, "line:in"),
            (K.UNEXPLAINED_DEBIT, "line:out"),
        ]
    )


def test_the_queue_s_rules() -> None:
    assert {
        K.UNREQUESTED, K.DUPLICATE, K.DESTINATION_MISMATCH, K.PAID_NOT_RECORDED, K.OVERPAID, K.UNEXPLAINED_DEBIT
    } == UNMATCHED_DEBITS  # fmt: skip
    assert all(SEVERITY[k] is Severity.CRITICAL for k in UNMATCHED_DEBITS)
    assert set(ACTIONS) == set(ExceptionKind) == set(SEVERITY)
    assert Action.ACKNOWLEDGE not in MONEY_ACTIONS
    assert TRANSITIONS.table[ExceptionState.RESOLVED] == frozenset()
    assert ExceptionState.OPEN not in TRANSITIONS.table[ExceptionState.INVESTIGATING]


amounts = st.integers(min_value=1, max_value=10**12)


@given(st.lists(st.tuples(amounts, st.booleans()), min_size=1, max_size=40))
def test_totals_add_up_to_the_minor_unit(cases: list[tuple[int, bool]]) -> None:
    """Whatever the statement, ours paid is the sum of our payouts in the window, theirs the sum of their lines,
    and a difference of amount names exactly the gap."""
    ours = [payout(n, amount=a) for n, (a, _) in enumerate(cases)]
    lines = [paid_line(n, amount=a + (1 if off else 0)) for n, (a, off) in enumerate(cases)]
    out = reconcile(lines, ours, since=SINCE, until=UNTIL)
    assert out.totals["USD"].ours_paid == sum(a for a, _ in cases)
    assert out.totals["USD"].theirs_paid == sum(a + off for a, off in cases)
    gaps = [f.amount for f in out.findings if f.kind is K.OVERPAID]
    assert sum(g or 0 for g in gaps) == out.totals["USD"].theirs_paid - out.totals["USD"].ours_paid
    assert out.matched + len(gaps) == len(cases)


def test_the_ledger_is_held_to_each_payout_of_the_window() -> None:
    """A paid payout the ledger booked in full matches; one it booked another amount for, or not at all, or a
    returned one it still holds, is a ledger mismatch; the window's ledger total adds the adjustments."""
    ours = [
        payout(1, ledger=1_000),
        payout(2, ledger=900),
        payout(3, ledger=0),
        payout(4, state="returned", ledger=1_000),
        payout(5, state="returned", ledger=0),
    ]
    lines = [paid_line(n) for n in (1, 2, 3, 4, 5)]
    lines += [line(f"rev-{n}", ref=f"key-{n}", kind=StatementLineKind.REVERSAL) for n in (4, 5)]
    out = reconcile(lines, ours, since=SINCE, until=UNTIL, adjustments={"USD": 70})
    assert sorted((f.kind, f.subject, f.amount) for f in out.findings) == [
        (K.LEDGER_MISMATCH, "payout:po-2", 100),
        (K.LEDGER_MISMATCH, "payout:po-3", 1_000),
        (K.LEDGER_MISMATCH, "payout:po-4", 1_000),
    ]
    assert out.totals["USD"].ledger == 1_000 + 900 + 0 + 1_000 + 0 + 70
    unchecked = reconcile(lines, [payout(2, ledger=None)], since=SINCE, until=UNTIL)
    assert unchecked.totals["USD"].ledger is None


def test_a_payout_that_left_and_came_back_in_full_is_no_difference() -> None:
    """A bounced card or a failed bank payout pulled back: a payout line and a reversal of it, for a payout we hold
    failed. Came back in part: the rest is paid but not recorded."""
    ours = [payout(1, state="failed"), payout(2, state="failed")]
    lines = [
        paid_line(1),
        line("rev-1", ref="key-1", kind=StatementLineKind.REVERSAL),
        paid_line(2),
        line("rev-2", ref="key-2", kind=StatementLineKind.REVERSAL, amount=400),
    ]
    out = reconcile(lines, ours, since=SINCE, until=UNTIL)
    assert [(f.kind, f.subject, f.amount) for f in out.findings] == [(K.PAID_NOT_RECORDED, "payout:po-2", 600)]


def test_a_failed_payout_whose_provider_reference_we_never_kept_is_found_by_its_reversal_too() -> None:
    """A UPI payout debited, then failed at RazorpayX before we kept its payout id: its payout line carries our
    reference and the provider's, its reversal only the provider's. The reversal is the payout's (the money came
    back): nothing is out, no difference (it was `paid_not_recorded`, found by the conformance kit's reconciliation
    when the failure scenario's lines fell in its window). Only a line carrying our reference teaches the index:
    another payout's provider reference is never taken over."""
    ours = [payout(1, state="failed", provider_ref=None), payout(2, state="failed", provider_ref="pout_2")]
    lines = [
        line("l-1", ref="po-1", provider_ref="pout_1", dest="acct_1"),
        line("rev-1", provider_ref="pout_1", kind=StatementLineKind.REVERSAL, at=IN + timedelta(seconds=5)),
        line("l-2", ref="po-2", provider_ref="pout_2", dest="acct_2"),
        line("rev-2", provider_ref="pout_2", kind=StatementLineKind.REVERSAL, amount=400),
    ]
    out = reconcile(lines, ours, since=SINCE, until=UNTIL)
    assert [(f.kind, f.subject, f.amount) for f in out.findings] == [(K.PAID_NOT_RECORDED, "payout:po-2", 600)]
    assert stray_subjects(lines, ours, since=SINCE, until=UNTIL) == []
    without = reconcile([lines[0]], ours, since=SINCE, until=UNTIL)  # the reversal not listed (yet): money is out
    assert [(f.kind, f.subject) for f in without.findings] == [(K.PAID_NOT_RECORDED, "payout:po-1")]


def test_a_duplicate_carries_the_fees_of_its_extra_payments() -> None:
    ours = [payout(1, fee_asset="USD", fee_amount=10)]
    lines = [
        paid_line(1),
        paid_line(1, at=IN + timedelta(seconds=1)).model_copy(update={"line_id": "l-1b"}),
        line("f1", ref="key-1", kind=StatementLineKind.FEE, amount=10),
        line("f2", ref="key-1", kind=StatementLineKind.FEE, amount=10),
    ]
    out = reconcile(lines, ours, since=SINCE, until=UNTIL)
    assert [(f.kind, f.amount) for f in out.findings] == [(K.DUPLICATE, 1_010)]


def test_fees_inside_the_payout_lines_are_not_money_out_twice() -> None:
    """The exchange's withdrawal is gross: its fee line says what part of it the exchange kept."""
    ours = [payout(1, fee_asset="USD", fee_amount=10)]
    lines = [paid_line(1), line("f1", ref="key-1", kind=StatementLineKind.FEE, amount=10)]
    inside = reconcile(lines, ours, since=SINCE, until=UNTIL, fees_inside=True)
    outside = reconcile(lines, ours, since=SINCE, until=UNTIL)
    assert (inside.findings, outside.findings) == ([], [])
    assert (inside.totals["USD"].provider_movement, outside.totals["USD"].provider_movement) == (1_000, 1_010)


def test_a_payout_paid_in_another_window_is_that_window_s_except_what_happens_later() -> None:
    """Its own line near the edge is no difference here and does not count as matched here; paid again or given
    back in this window, it is found here (over its whole remembered history); its only payment listed late, far
    from the window it was paid in, is its payment, not a second one."""
    earlier = SINCE - timedelta(minutes=5)
    long_ago = SINCE - timedelta(days=3)
    ours = [
        payout(1, paid_at=earlier),  # listed a moment into this window
        payout(2, paid_at=long_ago),  # paid again now (its first payment remembered from its own window's run)
        payout(3, paid_at=long_ago),  # given back now
        payout(4, state="failed", paid_at=None),  # charged a fee for a failed attempt before the window
        payout(5, paid_at=long_ago),  # listed only now, days late: its only payment
    ]
    lines = [
        paid_line(1, at=SINCE + timedelta(seconds=3)),
        paid_line(2, at=long_ago),
        paid_line(2, at=IN).model_copy(update={"line_id": "l-2b"}),
        paid_line(3, at=long_ago),
        line("rev-3", ref="key-3", kind=StatementLineKind.REVERSAL),
        line("fee-4", ref="key-4", kind=StatementLineKind.FEE, amount=5, at=SINCE - timedelta(minutes=1)),
        paid_line(5, at=IN),
    ]
    out = reconcile(lines, ours, since=SINCE, until=UNTIL)
    assert sorted((f.kind, f.subject, f.amount) for f in out.findings) == [
        (K.DUPLICATE, "payout:po-2", 1_000),
        (K.UNRECORDED_REVERSAL, "payout:po-3", 1_000),
    ]
    assert out.matched == 0
