"""Scripted faults (matching, counts, clearing) and random knobs (checked, all or nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from prizeflow_emulator_kit.faults import FaultKind, Faults, Knobs

KINDS = (FaultKind.RATE_LIMIT, FaultKind.API_ERROR, FaultKind.TIMEOUT_AFTER_SUCCESS, FaultKind.OUTAGE)


def test_a_rule_strikes_the_next_n_calls_matching_its_method_and_path_prefix() -> None:
    faults = Faults(KINDS, path_prefixes=("/v1",))
    faults.add("rate_limit", method="post", path_prefix="/v1/transfers", count=2)
    assert faults.take("GET", "/v1/transfers/tr_1") is None
    first = faults.take("POST", "/v1/transfers")
    assert first is not None
    assert first.kind is FaultKind.RATE_LIMIT
    assert faults.take("post", "/v1/transfers/tr_1/reversals") is not None
    assert faults.take("POST", "/v1/transfers") is None
    assert [t["kind"] for t in faults.triggered] == ["rate_limit", "rate_limit"]
    assert faults.armed() == []
    assert [r["remaining"] for r in faults.to_json()["rules"]] == [0]


def test_the_first_armed_rule_wins_and_any_method_matches_a_star() -> None:
    faults = Faults(KINDS)
    first = faults.add("api_error", path_prefix="/a")
    second = faults.add("rate_limit", method="GET")
    assert faults.take("DELETE", "/a/b") is first
    assert faults.take("GET", "/a/b") is second
    assert faults.take("GET", "/a/b") is None


def test_facts_narrow_a_rule_and_a_rule_without_a_count_stays_until_cleared() -> None:
    faults = Faults(KINDS)
    faults.add("outage", count=None, match={"bot_method": "sendgift", "user_id": 7})
    assert faults.take("POST", "/bot/sendGift", {"bot_method": "sendgift", "user_id": 8}) is None
    assert faults.take("POST", "/bot/sendGift", {"bot_method": "getme", "user_id": 7}) is None
    for _ in range(5):
        rule = faults.take("POST", "/bot/sendGift", {"bot_method": "sendgift", "user_id": 7})
        assert rule is not None
        assert rule.remaining is None
    faults.clear()
    assert faults.take("POST", "/bot/sendGift", {"bot_method": "sendgift", "user_id": 7}) is None
    assert len(faults.triggered) == 5  # clearing disarms; what struck stays on record
    faults.reset()
    assert faults.triggered == []


def test_defaults_and_refusals_name_what_is_wrong() -> None:
    faults = Faults(KINDS, path_prefixes=("/api/v2", "/sapi"), delay_ms=1234)
    rule = faults.add("timeout_after_success", params={"retry_after": 3})
    assert (rule.path_prefix, rule.delay_ms, rule.remaining, rule.method) == ("/api/v2", 1234, 1, "*")
    assert rule.id.startswith("flt_")
    assert rule.to_json()["params"] == {"retry_after": 3}
    assert faults.add("rate_limit", path_prefix="/sapi/v1").path_prefix == "/sapi/v1"
    with pytest.raises(ValueError, match="kind must be one of"):
        faults.add("nonsense")
    with pytest.raises(ValueError, match="kind must be one of"):
        faults.add("drop_after_success")  # a kind of the kit this emulator does not offer
    with pytest.raises(ValueError, match="path_prefix must start with /api/v2 or /sapi"):
        faults.add("rate_limit", path_prefix="/v1")
    with pytest.raises(ValueError, match="count must be >= 1"):
        faults.add("rate_limit", count=0)
    with pytest.raises(ValueError, match="delay_ms >= 0"):
        faults.add("rate_limit", delay_ms=-1)


def test_which_kinds_strike_after_the_call_was_carried_out() -> None:
    after = {k for k in FaultKind if k.after_processing}
    assert after == {
        FaultKind.TIMEOUT_AFTER_SUCCESS,
        FaultKind.DROP_AFTER_SUCCESS,
        FaultKind.SERVER_ERROR_AFTER_SUCCESS,
        FaultKind.LEDGER_DELAY,
    }


@dataclass
class ChainKnobs(Knobs):
    outage: bool = False
    lost_response_rate: float = 0.0
    delay_ms: int = 0
    frozen: list[str] = field(default_factory=list)


def test_knobs_are_checked_before_any_is_applied() -> None:
    knobs = ChainKnobs.parse({"lost_response_rate": 1, "delay_ms": 1500})
    assert knobs.to_json() == {"outage": False, "lost_response_rate": 1.0, "delay_ms": 1500, "frozen": []}
    assert isinstance(knobs.lost_response_rate, float)
    bad_changes: list[tuple[dict[str, Any], str]] = [
        ({"nonsense": 1}, "unknown fault 'nonsense'"),
        ({"lost_response_rate": 1.5}, "probability in"),
        ({"delay_ms": -1}, "whole number >= 0"),
        ({"delay_ms": 1.5}, "whole number >= 0"),
        ({"delay_ms": "5"}, "is a number"),
        ({"outage": 1}, "true or false"),
        ({"frozen": "EQ..."}, "list of strings"),
    ]
    for bad, message in bad_changes:
        with pytest.raises(ValueError, match=message):
            knobs.update({"outage": True, **bad})
        assert knobs.outage is False  # nothing applied
    knobs.update({"frozen": ["a", "b"], "outage": True})
    assert (knobs.frozen, knobs.outage) == (["a", "b"], True)
