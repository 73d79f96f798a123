"""Chaos bursts: windows that open and close on schedule (so the alerts they trigger fire, then resolve),
malformed records inside them only, and forged webhooks no configured secret verifies."""

from __future__ import annotations

import random

import pytest

from prizeflow_contracts.webhook_signatures import (
    PRIZEFLOW_SIGNATURE_HEADER,
    SignatureFailure,
    SignatureRefused,
    verify,
)
from prizeflow_simulator.__main__ import _parser
from prizeflow_simulator.chaos import Burst, ChaosConfig, apply_chaos, forged_webhook, parse_duration
from prizeflow_simulator.runner import Simulator
from prizeflow_simulator.scenarios import ScenarioConfig, plan_round


@pytest.mark.parametrize(("text", "seconds"), [("30", 30.0), ("30s", 30.0), ("15m", 900.0), ("1h", 3600.0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "-5s", "5d", "5 m", "1e3"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_a_burst_is_parsed_from_duration_period_and_delay() -> None:
    assert Burst.parse("30s/15m@45s") == Burst(duration_s=30, period_s=900, delay_s=45)
    assert Burst.parse("5/60") == Burst(duration_s=5, period_s=60)


@pytest.mark.parametrize("text", ["30s", "15m/30s", "30s/30s", "0s/1m", "30s/1m@x"])
def test_bursts_that_never_close_or_make_no_sense_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"burst|duration"):
        Burst.parse(text)


def test_a_burst_opens_after_its_delay_closes_after_its_duration_and_comes_back_every_period() -> None:
    burst = Burst.parse("30s/15m@45s")
    assert [burst.active(t) for t in (0, 44.9, 45, 74.9, 75, 944.9, 945, 974.9, 975)] == [
        False, False, True, True, False, False, True, True, False,
    ]  # fmt: skip


def test_inside_a_burst_every_round_carries_a_malformed_record_and_outside_none() -> None:
    config = ChaosConfig(burst=Burst(duration_s=10, period_s=100), burst_malformed_rate=1.0)
    assert config.at(50) is config
    assert config.at(5).malformed_rate == 1.0
    rng = random.Random(7)
    counts: dict[str, int] = {}
    for seq in range(1, 21):
        events = plan_round(rng, seq, ScenarioConfig(), run_id="t").events
        inside = apply_chaos(rng, events, config.at(5), counts)
        outside = apply_chaos(rng, events, config.at(50), counts)
        assert [r.event_type for r in inside].count("malformed") == 1
        assert "malformed" not in [r.event_type for r in outside]
    assert counts == {"malformed": 20}


def test_the_simulator_times_bursts_from_its_start_and_counts_injected_cases() -> None:
    now = [100.0]
    sim = Simulator(bootstrap="unused:1", chaos=ChaosConfig(burst=Burst(5, 60)), clock=lambda: now[0])
    assert sim.elapsed() == 0
    assert sim.chaos.in_burst(sim.elapsed())
    now[0] = 106.0
    assert not sim.chaos.in_burst(sim.elapsed())
    sim.count_chaos("forged_webhook", 2)
    assert sim.stats.chaos == {"forged_webhook": 2}


def test_a_forged_webhook_is_refused_by_the_configured_secret() -> None:
    body, headers = forged_webhook(random.Random(1), 1_700_000_000)
    assert headers[PRIZEFLOW_SIGNATURE_HEADER].startswith("t=1700000000,v1=")
    with pytest.raises(SignatureRefused) as refused:
        verify(
            headers,
            body,
            header_name=PRIZEFLOW_SIGNATURE_HEADER,
            secrets=["the-sandbox-secret"],
            now=1_700_000_000,
        )
    assert refused.value.reason is SignatureFailure.MISMATCH
    assert forged_webhook(random.Random(2), 1_700_000_000)[0] != body  # a new event id each time


def test_the_command_line_takes_bursts_from_options_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("SIM_CHAOS_BURST", "SIM_CHAOS_BURST_MALFORMED", "SIM_CHAOS_BURST_FORGED_WEBHOOKS"):
        monkeypatch.delenv(key, raising=False)
    assert _parser().parse_args(["serve"]).burst is None  # no bursts unless asked for
    args = _parser().parse_args(["serve", "--burst", "20s/10m", "--burst-forged-webhooks", "2"])
    assert args.burst == Burst(20, 600)
    assert args.burst_forged_webhooks == 2.0
    assert args.burst_malformed == 1.0
    monkeypatch.setenv("SIM_CHAOS_BURST", "30s/15m@45s")
    monkeypatch.setenv("SIM_CHAOS_BURST_MALFORMED", "0.5")
    args = _parser().parse_args(["run"])
    assert args.burst == Burst(30, 900, 45)
    assert args.burst_malformed == 0.5
