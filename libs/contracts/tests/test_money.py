"""Money: exact decimal parsing and formatting at the edges, and the largest-remainder split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from prizeflow_contracts.money import (
    INT64_MAX,
    Money,
    UnknownAssetError,
    apply_bps,
    asset,
    format_minor,
    largest_remainder,
    parse_decimal,
)


@pytest.mark.parametrize(
    ("text", "code", "minor"),
    [
        ("0", "XLM", 0),
        ("0.0000000", "XLM", 0),
        ("0.0000001", "XLM", 1),
        ("1", "XLM", 10_000_000),
        ("100.5", "USDC", 1_005_000_000),
        ("922337203685.4775807", "XLM", INT64_MAX),
        ("92233720368547758.07", "USD", INT64_MAX),
        ("9223372036854775807", "SP", INT64_MAX),
        ("0.01", "INR", 1),
    ],
)
def test_parse_decimal_exact(text: str, code: str, minor: int) -> None:
    assert parse_decimal(text, code) == minor


@pytest.mark.parametrize(
    ("minor", "code", "text"),
    [
        (0, "XLM", "0.0000000"),
        (1, "XLM", "0.0000001"),
        (INT64_MAX, "XLM", "922337203685.4775807"),
        (INT64_MAX, "USD", "92233720368547758.07"),
        (5, "SP", "5"),
        (-150, "USD", "-1.50"),
    ],
)
def test_format_minor_exact(minor: int, code: str, text: str) -> None:
    assert format_minor(minor, code) == text


@pytest.mark.parametrize(
    ("text", "code", "match"),
    [
        ("0.00000001", "XLM", "more than 7 decimal places"),
        ("1.001", "USD", "more than 2 decimal places"),
        ("1.5", "SP", "more than 0 decimal places"),
        ("922337203685.4775808", "XLM", "int64"),
        ("99999999999999999999999999999999", "XLM", "int64"),
        ("-1", "USD", "non-negative"),
        ("1e3", "USD", "plain"),
        (" 1", "USD", "plain"),
        ("12\n", "USD", "plain"),
        ("01", "USD", "plain"),
        ("1.", "USD", "plain"),
        (".5", "USD", "plain"),
        ("NaN", "USD", "plain"),
        ("", "USD", "plain"),
    ],
)
def test_parse_decimal_refuses(text: str, code: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_decimal(text, code)


def test_unknown_asset() -> None:
    with pytest.raises(UnknownAssetError, match="known assets"):
        asset("DOGE")
    with pytest.raises(UnknownAssetError):
        parse_decimal("1", "DOGE")


@given(st.sampled_from(["XLM", "USDC", "USD", "INR", "SP"]), st.integers(0, INT64_MAX))
def test_format_then_parse_is_identity(code: str, minor: int) -> None:
    assert parse_decimal(format_minor(minor, code), code) == minor


def test_money_arithmetic_and_validation() -> None:
    a = Money(asset="USD", amount=150)
    assert (a + Money(asset="USD", amount=50)).amount == 200
    assert (a - Money(asset="USD", amount=50)).amount == 100
    assert a.to_decimal_string() == "1.50"
    with pytest.raises(ValueError, match="cannot combine"):
        _ = a + Money(asset="XLM", amount=1)
    with pytest.raises(ValidationError):
        _ = a - Money(asset="USD", amount=151)
    with pytest.raises(ValidationError):
        Money.model_validate({"asset": "USD", "amount": 1.5})
    with pytest.raises(ValidationError):
        Money.model_validate_json('{"asset": "USD", "amount": 1.0}')
    with pytest.raises(ValidationError):
        Money.model_validate({"asset": "USD", "amount": 1, "extra": 1})


def test_apply_bps() -> None:
    assert apply_bps(999, 5000) == 499
    assert apply_bps(INT64_MAX, 10_000) == INT64_MAX
    with pytest.raises(ValueError, match="basis points"):
        apply_bps(1, 10_001)


weights_strategy = st.lists(st.integers(0, 10_000), min_size=1, max_size=50).filter(lambda w: sum(w) > 0)


@given(st.integers(0, INT64_MAX), weights_strategy)
def test_largest_remainder_properties(total: int, weights: list[int]) -> None:
    parts = largest_remainder(total, weights)
    assert sum(parts) == total
    assert len(parts) == len(weights)
    assert all(p >= 0 for p in parts)
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        # |part - quota| < 1, in exact integer arithmetic: quota = total * weight / weight_sum
        assert abs(part * weight_sum - total * weight) < weight_sum
        if weight == 0:
            assert part == 0
    assert largest_remainder(total, weights) == parts


@given(st.integers(0, 10**12), st.integers(1, 20))
def test_largest_remainder_equal_weights_differ_by_at_most_one(total: int, n: int) -> None:
    parts = largest_remainder(total, [1] * n)
    assert max(parts) - min(parts) <= 1
    assert parts == sorted(parts, reverse=True)  # leftovers go to the earliest positions


def test_largest_remainder_refuses() -> None:
    with pytest.raises(ValueError, match="negative total"):
        largest_remainder(-1, [1])
    with pytest.raises(ValueError, match="non-negative"):
        largest_remainder(1, [1, -1])
    with pytest.raises(ValueError, match="positive weight"):
        largest_remainder(1, [])
    with pytest.raises(ValueError, match="positive weight"):
        largest_remainder(1, [0, 0])
