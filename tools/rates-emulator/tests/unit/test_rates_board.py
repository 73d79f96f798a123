"""The board without I/O: publications on the clock, exact cross rates, staleness, the schedule, the random walk,
end-of-day rates, and rates as decimals only."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prizeflow_rates_emulator.board import Board, parse_rate, parse_rates, text
from prizeflow_rates_emulator.settings import EmulatorSettings, SettingsError

T0 = 1_700_000_000  # 20 s into a minute
RATES = {"INR": Decimal("83.4125"), "EUR": Decimal("0.921834")}


def board(**kw: int) -> Board:
    return Board(
        RATES, interval_s=kw.get("interval_s", 60), now=T0, drift_bps=kw.get("drift_bps", 0), rng=random.Random(7)
    )


def test_publications_are_stamped_with_their_slot_and_come_every_interval() -> None:
    b = board()
    assert b.latest.timestamp == T0 - T0 % 60
    b.set({"INR": Decimal("84")}, now=T0 + 10, publish=False)
    b.tick(T0 + 20)
    assert b.latest.quote("USD", ("INR",)) == {"INR": Decimal("83.4125")}  # not published before the next slot
    b.tick(T0 + 60)
    assert b.latest.timestamp == T0 + 60 - (T0 + 60) % 60
    assert b.latest.quote("USD", ("INR",)) == {"INR": Decimal("84")}


def test_cross_rates_are_exact_decimals_rounded_half_even_to_six_places() -> None:
    quote = board().latest.quote("EUR", ("INR", "USD", "EUR"))
    assert quote == {
        "INR": (Decimal("83.4125") / Decimal("0.921834")).quantize(Decimal("0.000001")),
        "USD": Decimal("1.084794"),
        "EUR": Decimal("1.000000"),
    }
    assert text(quote["EUR"]) == "1"
    assert text(Decimal("83.412500")) == "83.4125"
    assert text(Decimal("100")) == "100"


def test_a_frozen_board_goes_stale_and_publishes_again_when_unfrozen() -> None:
    b = board()
    stamp = b.latest.timestamp
    b.freeze(frozen=True, now=T0)
    b.set({"INR": Decimal("90")}, now=T0 + 1)
    b.tick(T0 + 7200)
    assert (b.latest.timestamp, b.latest.quote("USD", ("INR",))["INR"]) == (stamp, Decimal("83.4125"))
    b.freeze(frozen=False, now=T0 + 7200)
    assert (b.latest.timestamp, b.latest.quote("USD", ("INR",))["INR"]) == (T0 + 7200, Decimal("90"))


def test_the_schedule_moves_the_market_when_due() -> None:
    b = board()
    b.plan(3600, {"INR": Decimal("85.5")}, now=T0)
    b.tick(T0 + 3599)
    assert b.market["INR"] == Decimal("83.4125")
    b.tick(T0 + 3600)
    assert b.market["INR"] == Decimal("85.5")
    assert b.schedule == []
    b.tick(T0 + 3660)  # published with the next publication
    assert b.latest.rates["INR"] == Decimal("85.5")


def test_move_by_basis_points_and_refusals() -> None:
    b = board()
    assert b.move("INR", now=T0, by_bps=150) == Decimal("84.663688")  # 83.4125 x 1.015, half-even
    assert b.move("INR", now=T0, to=Decimal("80")) == Decimal("80")
    for kwargs, words in [({"to": Decimal(1), "by_bps": 1}, "give `to` or `by_bps`"), ({"by_bps": -10_000}, "above")]:
        with pytest.raises(ValueError, match=words):
            b.move("INR", now=T0, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="symbol"):
        b.move("USD", now=T0, to=Decimal(1))


def test_the_random_walk_is_seeded_and_stays_exact() -> None:
    one, two = board(drift_bps=50), board(drift_bps=50)
    for step in range(1, 20):
        one.tick(T0 + 60 * step)
        two.tick(T0 + 60 * step)
    assert one.latest.rates == two.latest.rates
    assert one.latest.rates["INR"] != Decimal("83.4125")
    assert all(-rate.as_tuple().exponent <= 6 for rate in one.latest.rates.values())  # type: ignore[operator]


def test_end_of_day_rates_are_the_last_publication_of_the_day() -> None:
    b = board()
    day = datetime.fromtimestamp(T0, UTC).date()
    b.set({"INR": Decimal("84")}, now=T0 + 600)
    next_midnight = datetime.combine(day, datetime.min.time(), tzinfo=UTC).timestamp() + 86_400
    b.set({"INR": Decimal("99")}, now=next_midnight + 1)
    snapshot = b.on(day)
    assert snapshot is not None
    assert snapshot.rates["INR"] == Decimal("84")
    assert b.on(day.replace(year=day.year - 1)) is None


@given(st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1000000"), places=6))
def test_a_decimal_string_round_trips_exactly(rate: Decimal) -> None:
    assert parse_rate(str(rate)) == rate
    assert Decimal(text(rate)) == rate


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (83.41, "not a float"),
        ("abc", "not a decimal"),
        ("0", "positive"),
        ("1.1234567", "more than 6 decimal places"),
        (True, "float"),
    ],
)
def test_rates_are_decimal_strings_only(value: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_rate(value)


def test_rates_name_known_currencies_and_never_usd() -> None:
    assert parse_rates({"INR": "84", "GBP": 1}) == {"INR": Decimal(84), "GBP": Decimal(1)}
    for doc, words in [
        ({"XXX": "1"}, "not a known currency"),
        ({"USD": "1"}, "USD is the market's base"),
        ({}, "object"),
    ]:
        with pytest.raises(ValueError, match=words):
            parse_rates(doc)


def test_settings_name_what_is_wrong() -> None:
    settings = EmulatorSettings.from_env({"RATES_EMULATOR_APP_IDS": "a", "RATES_EMULATOR_RATES": "INR:84.5"})
    assert settings.rates["INR"] == Decimal("84.5")
    assert settings.rates["EUR"] == Decimal("0.921834")
    for env, words in [
        ({}, "RATES_EMULATOR_APP_IDS is required"),
        ({"RATES_EMULATOR_APP_IDS": "a", "RATES_EMULATOR_RATES": "INR"}, "RATES_EMULATOR_RATES"),
        ({"RATES_EMULATOR_APP_IDS": "a", "RATES_EMULATOR_RATES": "INR:1.1234567"}, "more than 6"),
        ({"RATES_EMULATOR_APP_IDS": "a", "RATES_EMULATOR_PLAN": "gold"}, "RATES_EMULATOR_PLAN"),
        ({"RATES_EMULATOR_APP_IDS": "a", "RATES_EMULATOR_PUBLISH_S": "0"}, "RATES_EMULATOR_PUBLISH_S"),
    ]:
        with pytest.raises(SettingsError, match=words):
            EmulatorSettings.from_env(env)
