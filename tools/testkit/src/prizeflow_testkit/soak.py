"""The soak's verdict (`make soak`, `tests/bench/soak.py`): which tables must stay bounded, and whether a run's
samples show a leak. Pure: samples in, verdict out (unit-tested on synthetic runs).

A sample (one every `--interval` seconds, `t` seconds after the load started) holds:

    t, window_s                        time since the load started; seconds this sample's window covers
    offered:   rounds, payouts         rounds handed to Kafka, claims sent to rewards so far (cumulative)
               rounds_due, payouts_due what its schedule wanted by then (cumulative)
    claims:    {outcome: n}            what rewards answered the claims: approved, held, refused:<code>
    completed: allocations, payouts    what completed within the window
    latency_ms: closed_to_allocated, requested_to_paid -> {n, p50, p99} of the window
    backlog:   rounds, payouts         sent and not yet complete
    services:  {service: {rss_kb, processes, fds, kafka_connections, postgres_connections}}
    postgres_connections: {service: {total, active, idle, ...}}   (pg_stat_activity)
    tables:    {service: {table: {total_bytes, index_bytes, live_rows, dead_rows, inserted, deleted}}}
    lag:       {consumer group: end offset - committed, summed over its partitions}

The verdict, after the warm-up:
- the offered load was sustained: the generator kept its schedule, what it sent was delivered, and neither the
  backlog nor any group's lag grows. If not, the run measured an overloaded platform: exit 2, lower the rates.
- no service's RSS and neither p99 rises (`prizeflow_testkit.trend`), and no table that should be bounded
  grows: exit 1 otherwise.
- tables that grow with traffic by design today are reported (bytes and rows an hour) as issue 20's bounded
  storage still to do, never failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from prizeflow_testkit.trend import HOUR, Trend, detect_trend

LATENCIES = ("closed_to_allocated", "requested_to_paid")
MB = 1 << 20


class Retention(StrEnum):
    BOUNDED = "bounded"  # drained, or sized by a population (players, campaigns, providers), not by traffic
    UNBOUNDED_BY_DESIGN = (
        "unbounded_by_design"  # grows with traffic in a soak: a retention of days (ADR 0008), or none yet
    )
    UNDECLARED = "undeclared"  # not in `TABLES`: judged as bounded until someone declares it


@dataclass(frozen=True, slots=True)
class TableRule:
    retention: Retention
    why: str


_B, _U = Retention.BOUNDED, Retention.UNBOUNDED_BY_DESIGN

# Every table of every service database, by name as sampled (`schema.table` outside `public`). A new table must be
# declared here: undeclared, it is judged as one that must stay bounded.
TABLES: dict[str, TableRule] = {
    # libs/runtime, in every service database
    "outbox": TableRule(_B, "drained by the relay (rows deleted once Kafka acknowledged them)"),
    "alembic_version": TableRule(_B, "one row"),
    "inbox": TableRule(
        _U, "one row per consumed event for the dedup horizon: fills for 10 days, then whole partitions drop (ADR 0008)"
    ),
    "dead_letters": TableRule(_U, "one row per refused event until an operator acts; no retention yet"),
    "admin_audit": TableRule(_U, "one row per admin action; no retention or archival yet"),
    # settlement
    "rounds": TableRule(_U, "one row per round"),
    "round_entries": TableRule(_U, "settlement child rows: one per entry"),
    "round_results": TableRule(_U, "settlement child rows: one per placement"),
    "round_allocations": TableRule(_U, "settlement child rows: one per allocation"),
    "round_transitions": TableRule(_U, "settlement child rows: one per state change"),
    "round_fees": TableRule(_U, "settlement child rows: one per fee"),
    "round_disputes": TableRule(_U, "one row per dispute"),
    # rewards
    "ledger_transfers": TableRule(_U, "the ledger is permanent: ADR 0008 says how it stays fast (partitions, BRIN)"),
    "ledger_corrections": TableRule(_U, "one row per correction (ledger history)"),
    "ledger_accounts": TableRule(_B, "one per player, campaign and asset: sized by the population"),
    "campaigns": TableRule(_B, "one per campaign"),
    "claims": TableRule(_U, "one row per claim"),
    "held_allocations": TableRule(_U, "one row per held allocation, kept after release"),
    "round_outcomes": TableRule(_U, "one row per settled or voided round"),
    "payout_destinations": TableRule(_B, "one per player and destination"),
    "payout_routes": TableRule(_B, "one per provider route"),
    "payout_routes_version": TableRule(_B, "one row"),
    "player_risk_flags": TableRule(_B, "one per flagged player"),
    "top_ups": TableRule(_U, "one row per top-up"),
    "top_up_adjustments": TableRule(_U, "one row per top-up adjustment"),
    "sandbox_checkout_sessions": TableRule(_U, "one row per sandbox checkout session"),
    "final_state_contradictions": TableRule(_U, "one row per late provider word against a final state (rare)"),
    # payouts
    "payouts": TableRule(_U, "one row per payout"),
    "payout_history": TableRule(_U, "one row per payout state change"),
    "payout_attempts": TableRule(_U, "one row per provider attempt"),
    "payout_approvals": TableRule(_U, "one row per approval decision"),
    "payout_request_refusals": TableRule(_U, "one row per refused request"),
    "provider_events": TableRule(_U, "one row per provider webhook event"),
    "payout_disagreements": TableRule(_U, "one row per provider report that disagreed with a payout's state"),
    "route_announcements": TableRule(_B, "one row"),
    "exchange_withdrawals": TableRule(_U, "one row per crypto_exchange payout asked of the exchange"),
    "stellar_engine_locks": TableRule(_B, "one per provider"),
    "stellar_lanes": TableRule(_B, "one per funding or channel account"),
    "stellar_payouts": TableRule(_U, "one row per Stellar payout"),
    "stellar_txs": TableRule(_U, "one row per Stellar transaction"),
    "sandbox.payouts": TableRule(_U, "the sandbox rail's own books: one row per payout"),
    "sandbox.transfers": TableRule(_U, "the sandbox rail's own books: one row per transfer"),
    "sandbox.calls": TableRule(_U, "the sandbox rail's own books: one row per payout"),
    "sandbox.windows": TableRule(_B, "one per scripted scenario"),
    # signer
    "signer_audit": TableRule(_U, "one row per signing decision"),
    "signer_payout_signatures": TableRule(_U, "one row per signed payout"),
    "signer_results": TableRule(_U, "one row per signing request"),
    "signer_spend": TableRule(_U, "one row per signed spend"),
    # webhooks
    "deliveries": TableRule(_U, "one row per received webhook delivery"),
    # console
    "console_sessions": TableRule(_U, "one row per sign-in; ended rows kept (no retention yet)"),
    "console_session_ends": TableRule(_U, "one row per admin's end-all of a person"),
}


def rule_for(table: str) -> TableRule:
    return TABLES.get(table) or TableRule(Retention.UNDECLARED, "not declared in prizeflow_testkit.soak.TABLES")


@dataclass(frozen=True, slots=True)
class Offered:
    """The configured load."""

    rounds_per_s: float
    payouts_per_s: float
    players_per_round: int

    @property
    def allocations_per_s(self) -> float:
        return self.rounds_per_s * self.players_per_round


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How much growth after the warm-up is a failure (each also needs a slope whose interval excludes zero)."""

    warmup_s: float
    rss_growth: float = 0.10  # of the fitted start level, over the judged span
    rss_floor_kb: float = 16 * 1024
    p99_growth: float = 0.5
    p99_floor_ms: float = 50.0
    p99_min_samples: int = 20  # a window's p99 of fewer completions is left out of the series
    table_growth: float = 0.25
    table_floor_bytes: float = 1 * MB
    backlog_floor_s: float = 5.0  # a backlog or lag growing by less than this many seconds of load is noise
    min_delivered: float = 0.9  # generated / offered and delivered / generated


def _series(samples: Sequence[Mapping[str, Any]], *path: str) -> tuple[list[float], list[float]]:
    """(t, value) of the samples that have `path`."""
    ts, vs = [], []
    for s in samples:
        node: Any = s
        for key in path:
            if not isinstance(node, Mapping) or key not in node:
                node = None
                break
            node = node[key]
        if isinstance(node, int | float):
            ts.append(float(s["t"]))
            vs.append(float(node))
    return ts, vs


def _trend(
    samples: Sequence[Mapping[str, Any]],
    path: Sequence[str],
    th: Thresholds,
    *,
    min_relative: float,
    min_absolute: float = 0.0,
) -> Trend:
    """The trend of the value at `path`, judged from `th.warmup_s` seconds after the load started."""
    ts, vs = _series(samples, *path)
    warmup = max(0.0, th.warmup_s - (ts[0] if ts else 0.0))
    return detect_trend(ts, vs, warmup_s=warmup, min_relative=min_relative, min_absolute=min_absolute)


def _judged(samples: Sequence[Mapping[str, Any]], th: Thresholds) -> list[Mapping[str, Any]]:
    return [s for s in samples if float(s["t"]) >= th.warmup_s]


def _rate(samples: Sequence[Mapping[str, Any]], *path: str) -> float:
    """A cumulative counter's rate over the samples (first to last)."""
    ts, vs = _series(samples, *path)
    return (vs[-1] - vs[0]) / (ts[-1] - ts[0]) if len(ts) > 1 and ts[-1] > ts[0] else 0.0


def _windowed_rate(samples: Sequence[Mapping[str, Any]], key: str) -> float:
    done = sum(float(s["completed"][key]) for s in samples)
    span = sum(float(s["window_s"]) for s in samples)
    return done / span if span else 0.0


def _load(samples: Sequence[Mapping[str, Any]], offered: Offered, th: Thresholds) -> tuple[dict[str, Any], list[str]]:
    """Was the offered load sustained? The figures, and what says it was not."""
    judged = _judged(samples, th)
    players = offered.players_per_round
    figures: dict[str, Any] = {
        "offered": {"allocations_per_s": offered.allocations_per_s, "payouts_per_s": offered.payouts_per_s},
        "generated": {
            "allocations_per_s": round(_rate(judged, "offered", "rounds") * players, 1),
            "payouts_per_s": round(_rate(judged, "offered", "payouts"), 1),
        },
        "delivered": {
            "allocations_per_s": round(_windowed_rate(judged, "allocations"), 1),
            "payouts_per_s": round(_windowed_rate(judged, "payouts"), 1),
        },
    }
    problems: list[str] = []
    if len(judged) < 2:
        return figures, ["too few samples after the warm-up to tell whether the load was sustained"]
    for kind, per_s in (("allocations", offered.allocations_per_s), ("payouts", offered.payouts_per_s)):
        if per_s <= 0:
            continue
        generated = figures["generated"][f"{kind}_per_s"]
        delivered = figures["delivered"][f"{kind}_per_s"]
        if generated < th.min_delivered * per_s:
            problems.append(
                f"the load generator offered {generated:,.0f} {kind}/s of the {per_s:,.0f} asked: short of CPU, or "
                "(claims) of players a completed round credited, or of rewards' answers to the claims in flight"
            )
        if delivered < th.min_delivered * generated:
            problems.append(f"{kind}: {delivered:,.0f}/s delivered of {generated:,.0f}/s offered")
    outcomes = samples[-1].get("claims", {})
    unapproved = {k: v for k, v in outcomes.items() if k != "approved"}
    if sum(unapproved.values()) > 0.01 * sum(outcomes.values()):
        problems.append(f"claims rewards did not approve (never paid): {unapproved}")
    backlog: dict[str, Any] = {}
    for kind, per_s in (("rounds", offered.rounds_per_s), ("payouts", offered.payouts_per_s)):
        if per_s <= 0:
            continue
        trend = _trend(samples, ("backlog", kind), th, min_relative=0.0, min_absolute=per_s * th.backlog_floor_s)
        backlog[kind] = trend.as_dict()
        if trend.rising:
            problems.append(f"the {kind} backlog grows ({trend.slope_per_h / HOUR:+,.1f}/s): the platform falls behind")
    figures["backlog"] = backlog
    events_per_s = offered.rounds_per_s * (players + 3) + offered.payouts_per_s * 3
    lag: dict[str, Any] = {}
    for group in sorted({g for s in samples for g in s.get("lag", {})}):
        trend = _trend(samples, ("lag", group), th, min_relative=0.0, min_absolute=events_per_s * th.backlog_floor_s)
        lag[group] = trend.as_dict()
        if trend.rising:
            problems.append(f"consumer group {group}: lag grows ({trend.slope_per_h / HOUR:+,.1f} records/s)")
    figures["lag"] = lag
    return figures, problems


def _tables(samples: Sequence[Mapping[str, Any]], th: Thresholds) -> tuple[dict[str, Any], list[str]]:
    out: dict[str, Any] = {}
    failures: list[str] = []
    names = sorted({(svc, t) for s in samples for svc, tables in s.get("tables", {}).items() for t in tables})
    for service, table in names:
        rule = rule_for(table)
        size = _trend(samples, ("tables", service, table, "total_bytes"), th,
                      min_relative=th.table_growth, min_absolute=th.table_floor_bytes)  # fmt: skip
        rows = _trend(samples, ("tables", service, table, "live_rows"), th, min_relative=0.0)
        inserted = _rate(_judged(samples, th), "tables", service, table, "inserted")
        _, sizes = _series(samples, "tables", service, table, "total_bytes")
        entry: dict[str, Any] = {
            "retention": rule.retention.value,
            "why": rule.why,
            "total_bytes_end": int(sizes[-1]) if sizes else 0,
            "bytes_per_h": round(size.slope_per_h),
            "rows_per_h": round(rows.slope_per_h),
            "inserted_rows_per_h": round(inserted * HOUR),
            "size_trend": size.as_dict(),
        }
        if rule.retention is Retention.UNBOUNDED_BY_DESIGN:
            entry["verdict"] = "grows with traffic by design (retention: `why`)" if size.slope_per_h > 0 else (
                "unbounded by design, did not grow in this run"
            )  # fmt: skip
        elif size.rising:
            entry["verdict"] = "FAIL: should be bounded and grows"
            failures.append(
                f"table {service}.{table} ({rule.retention.value}: {rule.why}) grows "
                f"{size.slope_per_h / MB:+,.1f} MB/h ({size.growth:+.0%} over the run)"
            )
        else:
            entry["verdict"] = "bounded"
        out[f"{service}.{table}"] = entry
    return out, failures


def judge(samples: Sequence[Mapping[str, Any]], offered: Offered, th: Thresholds) -> dict[str, Any]:
    """The soak's verdict on its samples: `sustained`, `pass`, `exit_code` (0, 1: a trend, 2: load not
    sustained), `failures` and the trends behind them."""
    load, not_sustained = _load(samples, offered, th)
    failures: list[str] = []
    rss: dict[str, Any] = {}
    for service in sorted({svc for s in samples for svc in s.get("services", {})}):
        trend = _trend(samples, ("services", service, "rss_kb"), th,
                       min_relative=th.rss_growth, min_absolute=th.rss_floor_kb)  # fmt: skip
        rss[service] = trend.as_dict()
        if trend.rising:
            failures.append(
                f"RSS of {service} rises {trend.slope_per_h / 1024:+,.1f} MB/h "
                f"({trend.growth:+.0%} over the run, from {trend.start / 1024:,.0f} MB)"
            )
    p99: dict[str, Any] = {}
    for name in LATENCIES:
        kept = [s for s in samples if s.get("latency_ms", {}).get(name, {}).get("n", 0) >= th.p99_min_samples]
        trend = _trend(kept, ("latency_ms", name, "p99"), th, min_relative=th.p99_growth, min_absolute=th.p99_floor_ms)
        p99[name] = trend.as_dict()
        if trend.rising:
            failures.append(
                f"p99 {name.replace('_', ' ')} rises {trend.slope_per_h / 60:+,.1f} ms/min "
                f"({trend.start:,.0f} → {trend.end:,.0f} ms)"
            )
    tables, table_failures = _tables(samples, th)
    failures += table_failures
    unjudged = [f"RSS of {k}" for k, v in rss.items() if not v["judged"]]
    unjudged += [f"p99 {k}" for k, v in p99.items() if not v["judged"]]
    sustained = not not_sustained
    exit_code = 2 if not sustained else (1 if failures else 0)
    return {
        "sustained": sustained,
        "not_sustained": not_sustained,
        "pass": exit_code == 0,
        "exit_code": exit_code,
        "failures": failures,
        "not_judged": unjudged,
        "load": load,
        "rss": rss,
        "latency_p99": p99,
        "tables": tables,
    }


def headline(verdict: Mapping[str, Any]) -> list[str]:
    """The verdict in a few lines for the terminal."""
    lines = []
    if not verdict["sustained"]:
        lines.append("LOAD NOT SUSTAINED: the platform fell behind the offered load, so this run measured an")
        lines.append("overloaded platform, not a soak (exit 2). Lower SOAK_ROUNDS_PER_S / SOAK_PAYOUTS_PER_S:")
        lines += [f"  - {p}" for p in verdict["not_sustained"]]
    if verdict["failures"]:
        lines.append("FAIL:" if verdict["sustained"] else "and, on that overloaded platform:")
        lines += [f"  - {f}" for f in verdict["failures"]]
    elif verdict["sustained"]:
        lines.append("PASS: no leak, no rising p99, bounded tables stayed bounded")
    if verdict["not_judged"]:
        lines.append(f"  (no verdict, too few samples after the warm-up: {', '.join(verdict['not_judged'])})")
    return lines


def unbounded_report(verdict: Mapping[str, Any]) -> Iterable[str]:
    """Tables that grow with traffic by design, their growth: what their retention (ADR 0008) has to keep up with."""
    for name, t in sorted(verdict["tables"].items(), key=lambda kv: -kv[1]["bytes_per_h"]):
        if t["retention"] == Retention.UNBOUNDED_BY_DESIGN and t["bytes_per_h"] > 0:
            yield (
                f"  {name:<40} {t['bytes_per_h'] / MB:>10,.1f} MB/h {t['inserted_rows_per_h']:>14,} rows/h  "
                f"({t['why']})"
            )


__all__ = [
    "LATENCIES",
    "TABLES",
    "Offered",
    "Retention",
    "TableRule",
    "Thresholds",
    "headline",
    "judge",
    "rule_for",
    "unbounded_report",
]
