"""The soak's verdict on synthetic runs (unit tier): a leak, a rising p99 and a growing bounded table fail it; a
table that grows by design is reported, not failed; a platform falling behind is "not sustained", whatever else."""

from __future__ import annotations

import random
from typing import Any

from prizeflow_testkit.soak import TABLES, Offered, Retention, Thresholds, headline, judge, rule_for, unbounded_report

MB = 1 << 20
STEP = 10.0
N = 180  # 30 minutes
OFFERED = Offered(rounds_per_s=50, payouts_per_s=20, players_per_round=8)
TH = Thresholds(warmup_s=300)


def run(
    *,
    rss_leak_kb_per_s: float = 0.0,
    p99_rise: float = 0.0,
    outbox_growth_per_s: float = 0.0,
    backlog_growth_per_s: float = 0.0,
    generator_share: float = 1.0,
    seed: int = 1,
) -> list[dict[str, Any]]:
    """A healthy 30-minute run, with what the arguments make wrong."""
    rng = random.Random(seed)
    samples = []
    for i in range(1, N + 1):
        t = i * STEP
        rounds = int(OFFERED.rounds_per_s * t * generator_share)
        payouts = int(OFFERED.payouts_per_s * t * generator_share)
        backlog = 20 + int(backlog_growth_per_s * t)
        samples.append(
            {
                "t": t,
                "window_s": STEP,
                "offered": {
                    "rounds": rounds,
                    "payouts": payouts,
                    "rounds_due": int(OFFERED.rounds_per_s * t),
                    "payouts_due": int(OFFERED.payouts_per_s * t),
                },
                "completed": {
                    "allocations": int(OFFERED.allocations_per_s * STEP * generator_share)
                    - (int(backlog_growth_per_s * STEP) * 8),
                    "payouts": int(OFFERED.payouts_per_s * STEP * generator_share),
                },
                "latency_ms": {
                    "closed_to_allocated": {"n": 500, "p50": 40.0, "p99": 120 + rng.gauss(0, 15) + p99_rise * t},
                    "requested_to_paid": {"n": 200, "p50": 60.0, "p99": 200 + rng.gauss(0, 20)},
                },
                "backlog": {"rounds": backlog + rng.randint(0, 10), "payouts": 10 + rng.randint(0, 10)},
                "services": {
                    "settlement": {"rss_kb": 120_000 + rng.gauss(0, 2000)},
                    "rewards": {"rss_kb": 150_000 + rng.gauss(0, 2000) + rss_leak_kb_per_s * t},
                },
                "tables": {
                    "rewards": {
                        "outbox": {"total_bytes": 2 * MB + rng.randint(0, 64 * 1024) + int(outbox_growth_per_s * t),
                                   "live_rows": rng.randint(0, 500), "inserted": int(900 * t)},
                        "inbox": {"total_bytes": int(10 * MB + 20_000 * t), "live_rows": int(60 * t),
                                  "inserted": int(60 * t)},
                        "brand_new_table": {"total_bytes": 8192, "live_rows": 0, "inserted": 0},
                    },
                },
                "lag": {"rewards-allocations": rng.randint(0, 800), "settlement-rounds": rng.randint(0, 800)},
            }
        )  # fmt: skip
    return samples


def test_a_healthy_run_passes() -> None:
    verdict = judge(run(), OFFERED, TH)
    assert verdict["sustained"], verdict["not_sustained"]
    assert verdict["pass"], verdict["failures"]
    assert verdict["exit_code"] == 0
    assert verdict["load"]["generated"]["allocations_per_s"] == OFFERED.allocations_per_s
    assert verdict["load"]["delivered"]["payouts_per_s"] == OFFERED.payouts_per_s
    assert headline(verdict)[0].startswith("PASS")


def test_a_leaking_service_fails_the_soak_and_is_named() -> None:
    verdict = judge(run(rss_leak_kb_per_s=20), OFFERED, TH)  # 72 MB/h on 150 MB
    assert verdict["exit_code"] == 1
    assert verdict["rss"]["rewards"]["rising"]
    assert not verdict["rss"]["settlement"]["rising"]
    assert any(f.startswith("RSS of rewards") for f in verdict["failures"])


def test_a_rising_p99_fails_the_soak() -> None:
    verdict = judge(run(p99_rise=0.2), OFFERED, TH)  # +300 ms over the run on 120 ms
    assert verdict["exit_code"] == 1
    assert verdict["latency_p99"]["closed_to_allocated"]["rising"]
    assert not verdict["latency_p99"]["requested_to_paid"]["rising"]


def test_a_bounded_table_that_grows_fails_and_one_unbounded_by_design_is_reported() -> None:
    verdict = judge(run(outbox_growth_per_s=5_000), OFFERED, TH)  # +9 MB over the run on 2 MB
    outbox, inbox = verdict["tables"]["rewards.outbox"], verdict["tables"]["rewards.inbox"]
    assert outbox["retention"] == "bounded"
    assert outbox["verdict"].startswith("FAIL")
    assert inbox["retention"] == "unbounded_by_design"
    assert inbox["verdict"].startswith("grows with traffic by design")
    assert inbox["bytes_per_h"] == 20_000 * 3600
    assert inbox["inserted_rows_per_h"] == 60 * 3600
    assert verdict["exit_code"] == 1
    assert [f for f in verdict["failures"] if "table" in f] == [f for f in verdict["failures"] if "outbox" in f]
    assert any("rewards.inbox" in line for line in unbounded_report(verdict))


def test_a_healthy_outbox_and_an_idle_undeclared_table_pass() -> None:
    verdict = judge(run(), OFFERED, TH)
    assert verdict["tables"]["rewards.outbox"]["verdict"] == "bounded"
    assert verdict["tables"]["rewards.brand_new_table"]["retention"] == "undeclared"
    assert verdict["tables"]["rewards.brand_new_table"]["verdict"] == "bounded"


def test_a_platform_falling_behind_is_not_sustained() -> None:
    verdict = judge(run(backlog_growth_per_s=5), OFFERED, TH)
    assert not verdict["sustained"]
    assert verdict["exit_code"] == 2
    assert any("backlog grows" in p for p in verdict["not_sustained"])
    assert headline(verdict)[0].startswith("LOAD NOT SUSTAINED")


def test_a_generator_short_of_cpu_is_not_sustained() -> None:
    verdict = judge(run(generator_share=0.5), OFFERED, TH)
    assert verdict["exit_code"] == 2
    assert any("load generator offered" in p for p in verdict["not_sustained"])


def test_claims_rewards_did_not_approve_make_the_load_not_sustained() -> None:
    samples = run()
    samples[-1]["claims"] = {"approved": 900, "held": 40, "refused:insufficient_balance": 60}
    verdict = judge(samples, OFFERED, TH)
    assert verdict["exit_code"] == 2
    assert any("did not approve" in p and "held" in p for p in verdict["not_sustained"])
    samples[-1]["claims"] = {"approved": 1000}
    assert judge(samples, OFFERED, TH)["sustained"]


def test_an_undeclared_table_that_grows_fails_until_declared() -> None:
    samples = run()
    for s in samples:
        s["tables"]["rewards"]["brand_new_table"]["total_bytes"] = int(1 * MB + 5_000 * s["t"])
    verdict = judge(samples, OFFERED, TH)
    assert verdict["exit_code"] == 1
    assert verdict["tables"]["rewards.brand_new_table"]["verdict"].startswith("FAIL")
    assert any("undeclared" in f for f in verdict["failures"])


def test_a_short_run_gives_no_trend_verdict() -> None:
    verdict = judge(run()[:32], OFFERED, TH)  # 5 min 20 s: 3 samples after the warm-up
    assert verdict["not_judged"]
    assert verdict["failures"] == []


def test_every_declared_table_says_why_and_undeclared_ones_are_judged_as_bounded() -> None:
    assert all(rule.why for rule in TABLES.values())
    assert TABLES["outbox"].retention is Retention.BOUNDED
    assert TABLES["inbox"].retention is Retention.UNBOUNDED_BY_DESIGN
    assert rule_for("not_a_table").retention is Retention.UNDECLARED
