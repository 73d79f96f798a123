"""What tests/e2e/test_observability.py relies on, on made-up input (unit tier, no Prometheus): the PromQL lexer
that finds which metrics a dashboard panel or an alert rule reads (whether an expression parses is Prometheus's
own answer), /metrics snapshots, and the two cardinality checks (ids in label values, labels growing with
traffic) — each shown to catch what it is for."""

from __future__ import annotations

import pytest

from prizeflow_testkit.prometheus import (
    PromQLSyntaxError,
    Selector,
    Snapshot,
    check_names,
    growing_labels,
    id_labels,
    new_series,
    selectors,
)


def names(expr: str) -> list[str | None]:
    return [s.name for s in selectors(expr)]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("up", ["up"]),
        ('up{job=~"settlement|rewards"} == 0', ["up"]),
        ("sum by (job, consumer) (rate(prizeflow_x_total[5m]))", ["prizeflow_x_total"]),
        ("sum(rate(a_total[$__rate_interval])) without (instance)", ["a_total"]),
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[1m])))", ["h_bucket"]),
        ("a / on (job) group_left (version) b", ["a", "b"]),
        ("a and ignoring(x) b or c unless d", ["a", "b", "c", "d"]),
        ("count(up == 0) or vector(0)", ["up"]),
        ("rate(a[5m] offset 1h) > bool 0", ["a"]),
        ("max_over_time(deriv(g[10m])[1h:1m])", ["g"]),
        ('label_replace(a, "dst", "$1 up", "src", "(.*)")', ["a"]),
        ("record:rule:ratio5m", ["record:rule:ratio5m"]),
        ("a @ start()", ["a"]),
        ("1e3 * 0x1F + a", ["a"]),
        ("# a comment naming nothing_metric\nb", ["b"]),
        ('{__name__=~"prizeflow_.+_pending"} > 10', [None]),
        ("time() - timestamp(x)", ["x"]),
    ],
)
def test_finds_the_metric_names_an_expression_reads(expr: str, expected: list[str | None]) -> None:
    assert names(expr) == expected


def test_reads_label_matchers_with_escapes() -> None:
    (sel,) = selectors(r'a{b="x\"y", c!~"z.*",d=`raw\n`}')
    assert sel == Selector("a", (("b", "=", 'x"y'), ("c", "!~", "z.*"), ("d", "=", "raw\\n")))


def test_an_unterminated_string_is_an_error_not_a_guess() -> None:
    with pytest.raises(PromQLSyntaxError):
        selectors('a{b="x}')


def test_check_names_resolves_name_regexes_and_reports_what_is_missing() -> None:
    existing = {"up", "prizeflow_rewards_outbox_pending"}
    assert check_names('{__name__=~"prizeflow_.+_outbox_pending"} > 1 and up', existing)
    missing = check_names('sum(rate(nothing_total[1m])) + {__name__=~"prizeflow_.+_lag"} + up', existing)
    assert missing.missing == ("nothing_total", '{__name__=~"prizeflow_.+_lag"}')


def test_a_name_regex_is_anchored_as_prometheus_anchors_it() -> None:
    assert not check_names('{__name__=~"outbox"}', {"prizeflow_rewards_outbox_pending"})


def test_snapshot_reads_the_exposition_format() -> None:
    snap = Snapshot()
    snap.add(
        "rewards",
        "# HELP c_total C\n# TYPE c_total counter\n"
        'c_total{outcome="ok"} 1.0\nc_total{outcome="held"} 2.0\n'
        "# HELP g G\n# TYPE g gauge\ng 3.0\n",
    )
    assert snap.series["c_total"] == {(("outcome", "ok"),), (("outcome", "held"),)}
    assert snap.label_values("c_total") == {"outcome": {"ok", "held"}}
    assert snap.count() == 3
    assert snap.source["g"] == "rewards"


def snapshot(*lines: str) -> Snapshot:
    snap = Snapshot()
    snap.add("svc", "".join(f"{line}\n" for line in lines))
    return snap


def test_a_label_holding_an_id_is_found_whatever_the_id_looks_like() -> None:
    snap = snapshot(
        'a_total{player="p-1a2b3c4d5e"} 1',
        'b_total{event="5f0c7a8e-1b2c-4d3e-8f90-a1b2c3d4e5f6"} 1',
        'c_total{tx="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"} 1',
        'd_total{dest="GDQNY3PBOJOKYZSRMK2S7LHHGWZIUISD4QORETLMXEWXBI7KFZZMKTL3"} 1',
        'e_total{amount="150000000"} 1',
        'f_total{ledger="ledger-12345678"} 1',
    )
    found = id_labels(snap, {"p-1a2b3c4d5e"})
    assert len(found) == 6, found
    # An admin-made label is still searched for the traffic's own ids.
    assert id_labels(snapshot('p{campaign_id="p-1a2b3c4d5e"} 1'), {"p-1a2b3c4d5e"})
    assert "the id 'p-1a2b3c4d5e' of the traffic" in found[0]


def test_bounded_labels_are_not_ids() -> None:
    snap = snapshot(
        'h_bucket{consumer="rewards-rounds",le="0.005"} 1',
        'h_bucket{consumer="rewards-rounds",le="+Inf"} 1',
        'c_total{topic="prizeflow.game.rounds.v1.e2e1a2b3c4d",reason="malformed_json"} 1',
        'p{campaign_id="spring-cup",asset="USDC",state="paid",provider="stellar"} 1',
        'p{campaign_id="camp-09420559fa",asset="USDC"} 1',  # an admin-made id with a digit run inside its hex
        'p{campaign_id="camp-7186248044",asset="USDC"} 1',  # an admin-made id that is all digits after its prefix
    )
    assert id_labels(snap, {"p-1a2b3c4d5e"}) == []


def test_a_label_that_keeps_pace_with_traffic_grows_and_a_bounded_one_does_not() -> None:
    first = snapshot('claims_total{outcome="held"} 1', 'paid_total{player="p1"} 1')
    second = snapshot(
        'claims_total{outcome="held"} 5',
        'claims_total{outcome="retried"} 1',  # a bounded outcome seen for the first time
        *(f'paid_total{{player="p{i}"}} 1' for i in range(1, 6)),
    )
    growing = growing_labels(first, second, new_entities=4)
    assert growing == ["svc: paid_total label 'player' gained ['p2', 'p3', 'p4', 'p5']"]
    assert "claims_total{outcome='retried'}" in new_series(first, second)
