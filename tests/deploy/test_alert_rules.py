"""The alert rules (deploy/prometheus): promtool finds them valid and their unit tests pass (every alert has a case
that fires and one that must not); every alert says how bad it is, what happened, which runbook to read and which
dashboard to open; every metric a rule names is one a service exports.

The promtool checks run Debian's promtool (installed by `make system-deps`, tools/devstack/scripts/ensure-prometheus.sh)
as a process, so they sit outside the unit tier; a missing promtool fails them, it never skips them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from prizeflow_compliance.metrics import ComplianceMetrics
from prizeflow_contracts.holds import PAYOUT_HOLD_KINDS
from prizeflow_contracts.reconciliation import RECON_KINDS, Severity
from prizeflow_ops.apiprobe import ApiProbeMetrics
from prizeflow_payouts.application.metrics import PayoutMetrics
from prizeflow_reconciliation.metrics import ReconMetrics
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.metrics import RuntimeMetrics
from prizeflow_settlement.metrics import SettlementMetrics
from prizeflow_signer.metrics import SignerMetrics
from prizeflow_webhooks.application.metrics import WebhooksMetrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "prizeflow.rules.yml"
TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
SERVICES = ("settlement", "rewards", "payouts", "signer", "webhooks")
SEVERITIES = {"critical", "warning", "info"}
# Dashboards as code (deploy/grafana): the two product ones, one per service, and the Kafka cluster's.
DASHBOARD = re.compile(
    r"/d/(prizeflow-rewards-overview|prizeflow-payout-rails|prizeflow-kafka|prizeflow-databases"
    r"|prizeflow-service-(\{\{ \$labels\.job \}\}|[a-z]+))"
    r"/[a-z0-9-]*(\{\{ \$labels\.job \}\})?[a-z0-9-]*"
)
RECORDED = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")


def groups() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return loaded


def alerts() -> list[dict[str, Any]]:
    return [r for g in groups() for r in g["rules"] if "alert" in r]


def records() -> list[dict[str, Any]]:
    return [r for g in groups() for r in g["rules"] if "record" in r]


def runbook_for(alert: str) -> str:
    """PrizeflowStellarStuckSourceAccount → docs/runbooks/stellar-stuck-source-account.md"""
    words = re.findall(r"[A-Z][a-z0-9]*", alert.removeprefix("Prizeflow"))
    return f"docs/runbooks/{'-'.join(w.lower() for w in words)}.md"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found: run `make system-deps` (tools/devstack/scripts/ensure-prometheus.sh)")
    return subprocess.run([binary, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.integration  # runs promtool as a process
def test_promtool_finds_the_rules_valid() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration  # runs promtool as a process
def test_every_promtool_unit_test_of_the_rules_passes() -> None:
    assert TESTS, "no promtool tests in deploy/prometheus/tests"
    result = promtool("test", "rules", *(str(t.relative_to(PROMETHEUS)) for t in TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_every_alert_says_how_bad_what_happened_which_runbook_and_which_dashboard(rule: dict[str, Any]) -> None:
    assert rule["alert"].startswith("Prizeflow")
    assert rule["labels"]["severity"] in SEVERITIES
    notes = rule["annotations"]
    assert set(notes) == {"summary", "description", "runbook_url", "dashboard"}
    assert "{{" in notes["description"], "the description shows the values or labels that matter"
    assert notes["runbook_url"] == runbook_for(rule["alert"])
    assert DASHBOARD.fullmatch(notes["dashboard"]), notes["dashboard"]


def promtool_cases() -> Iterator[tuple[str, bool]]:
    """(alert, whether it is expected to fire) for every evaluation of every promtool test."""
    for path in TESTS:
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["../rules/prizeflow.rules.yml"], path
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                yield case["alertname"], bool(case.get("exp_alerts"))


def test_every_alert_has_a_promtool_case_that_fires_it_and_one_that_must_not() -> None:
    cases = set(promtool_cases())
    names = {r["alert"] for r in alerts()}
    assert {a for a, _ in cases} <= names, "a test names an alert that does not exist"
    assert sorted(n for n in names if (n, True) not in cases) == [], "alerts no test fires"
    assert sorted(n for n in names if (n, False) not in cases) == [], "alerts with no 'does not fire' case"


# Every series a rule reads that no Prizeflow service exports, and where it is defined: the exporter's own source at
# the release the bundle runs (deploy/k8s/README.md "Schemas" names the same releases). A name here that the
# exporter does not export is an alert that can never fire.
_STRIMZI = "Strimzi's JMX rules (deploy/k8s/base/platform/kafka-metrics.yaml) of the MBean"
_CNPG_QUERIES = "cloudnative-pg/cloudnative-pg v1.30.0 config/manager/default-monitoring.yaml, query"
_CNPG = "cloudnative-pg/cloudnative-pg v1.30.0 pkg/management/postgres/webserver/metricserver/pg_collector.go"
_PLUGIN = "cloudnative-pg/plugin-barman-cloud v0.14.0 internal/cnpgi/instance/metrics.go"
_KUBELET = "kubernetes/kubernetes pkg/kubelet/metrics/collectors/volume_stats.go"
PLATFORM_METRICS = {
    "up": "Prometheus itself: one per scraped target",
    "kafka_controller_kafkacontroller_offlinepartitionscount": f"{_STRIMZI} KafkaController OfflinePartitionsCount",
    "kafka_server_replicamanager_underminisrpartitioncount": f"{_STRIMZI} ReplicaManager UnderMinIsrPartitionCount",
    "kafka_server_replicamanager_underreplicatedpartitions": f"{_STRIMZI} ReplicaManager UnderReplicatedPartitions",
    "cnpg_pg_stat_archiver_last_archived_time": f"{_CNPG_QUERIES} pg_stat_archiver",
    "cnpg_pg_stat_archiver_last_failed_time": f"{_CNPG_QUERIES} pg_stat_archiver",
    "cnpg_pg_replication_in_recovery": f"{_CNPG_QUERIES} pg_replication",
    "cnpg_pg_replication_streaming_replicas": f"{_CNPG_QUERIES} pg_replication",
    "cnpg_collector_sync_replicas": f"{_CNPG} SyncReplicas (value observed: synchronous_standby_names' number)",
    "cnpg_collector_pg_wal_archive_status": f"{_CNPG} PgWALArchiveStatus (value ready: segments left to archive)",
    "barman_cloud_cloudnative_pg_io_last_available_backup_timestamp": _PLUGIN,
    "barman_cloud_cloudnative_pg_io_last_failed_backup_timestamp": _PLUGIN,
    "kubelet_volume_stats_available_bytes": _KUBELET,
    "kubelet_volume_stats_capacity_bytes": _KUBELET,
}


def test_every_series_a_rule_reads_beyond_the_services_is_one_its_exporter_defines() -> None:
    """CloudNativePG's stock backup series (cnpg_collector_last_available_backup_timestamp, ...) are never set with
    the barman-cloud plugin: the rules read the plugin's. Every name a rule reads is the services', a recorded one, or
    one of PLATFORM_METRICS (with where it is defined), and the e2e tier knows not to look for the platform's."""
    from prizeflow_devstack.dashboards.catalog import PLATFORM_METRICS as SKIPPED_BY_E2E
    from prizeflow_testkit.prometheus import selectors

    recorded = {r["record"] for r in records()}
    read = {
        sel.name
        for r in alerts() + records()
        for sel in selectors(r["expr"])
        if sel.name and not sel.name.startswith("prizeflow_") and sel.name not in recorded
    }
    assert read <= set(PLATFORM_METRICS), read - set(PLATFORM_METRICS)
    assert read - {"up"} <= set(SKIPPED_BY_E2E)
    assert not {n for n in read if n.startswith("cnpg_collector_") and "backup" in n}, "not set with the plugin"


def test_every_durability_failure_of_the_databases_has_an_alert() -> None:
    """Issue 44: failed WAL archiving, a missed or failed backup, a recoverability point that stops advancing, a
    volume filling up (PostgreSQL or Kafka), a cluster without a synchronous standby, no primary."""
    by_name = {r["alert"]: r for r in alerts()}
    wanted = {
        "PrizeflowDatabaseWalArchivingFailing": "cnpg_pg_stat_archiver_last_failed_time",
        "PrizeflowDatabaseRecoverabilityStalled": "cnpg_pg_stat_archiver_last_archived_time",
        "PrizeflowDatabaseBackupMissing": "barman_cloud_cloudnative_pg_io_last_available_backup_timestamp",
        "PrizeflowDatabaseBackupFailed": "barman_cloud_cloudnative_pg_io_last_failed_backup_timestamp",
        "PrizeflowDatabaseNoSynchronousStandby": "cnpg_pg_replication_streaming_replicas",
        "PrizeflowDatabaseNoPrimary": "cnpg_pg_replication_in_recovery",
        "PrizeflowVolumeFillingUp": "kubelet_volume_stats_available_bytes",
    }
    for alert, metric in wanted.items():
        assert metric in by_name[alert]["expr"], alert
    assert by_name["PrizeflowVolumeFillingUp"]["expr"].count('namespace="prizeflow"') >= 2, "every volume of it"


def test_recording_rules_are_named_level_metric_operations_and_alerts_use_only_recorded_ones() -> None:
    recorded = {r["record"] for r in records()}
    assert all(RECORDED.fullmatch(name) for name in recorded), recorded
    for rule in alerts():
        assert set(RECORDED.findall(rule["expr"])) <= recorded, rule["alert"]


@cache
def exported() -> frozenset[str]:
    """Every sample name the services' metrics expose (a counter as `<name>_total`, a histogram's series...)."""
    registries = {service: CollectorRegistry() for service in SERVICES}
    for service, registry in registries.items():
        RuntimeMetrics.create(service, registry)
    SettlementMetrics.create(registries["settlement"])
    RewardsMetrics.create(registries["rewards"])
    PayoutMetrics.create(registries["payouts"])
    ReconMetrics.create(registries["payouts"])
    ComplianceMetrics.create(registries["payouts"])
    SignerMetrics.create(registries["signer"])
    WebhooksMetrics.create(registries["webhooks"])
    # The Kubernetes API probe (`prizeflow-ops api-probe`, the bundle's kubernetes-api-probe): not a service, its
    # own series.
    probe = CollectorRegistry()
    ApiProbeMetrics.create(probe)
    registries["kubernetes-api-probe"] = probe
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return frozenset(
        family.name + suffix
        for registry in registries.values()
        for family in registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    )


@pytest.mark.parametrize(
    "rule", [r for g in groups() for r in g["rules"]], ids=lambda r: r.get("alert", r.get("record"))
)
def test_every_metric_a_rule_names_is_one_the_services_export(rule: dict[str, Any]) -> None:
    expr = rule["expr"]
    for pattern in re.findall(r'__name__=~"([^"]+)"', expr):
        for service in SERVICES:  # a name pattern stands for a runtime metric every service exports
            assert any(re.fullmatch(pattern, name) for name in exported() if f"prizeflow_{service}_" in name), (
                f"{pattern} matches nothing {service} exports"
            )
    bare = RECORDED.sub("", re.sub(r'"[^"]*"', '""', expr))
    for name in re.findall(r"\bprizeflow_\w+", bare):
        assert name in exported(), f"{name} is exported by no service"


def alert(name: str) -> dict[str, Any]:
    (rule,) = (r for r in alerts() if r["alert"] == name)
    return rule


def test_the_holds_backlog_leaves_out_exactly_the_hold_kinds_that_do_not_wait_for_people() -> None:
    """The rules are written by hand, so the hold codes in the alert's `reason!~` are held to the kinds' rows: a new
    kind that moves on by itself fails here until it is left out too (one that waits for people is counted as is)."""
    (left_out,) = re.findall(r'reason!~"([^"]*)"', alert("PrizeflowComplianceHoldsBacklog")["expr"])
    assert set(left_out.split("|")) == {k.code.value for k in PAYOUT_HOLD_KINDS.values() if not k.in_backlog}


def test_the_unmatched_debit_alert_names_every_kind_it_counts() -> None:
    """`recon_unmatched_debits_open` counts the critical reconciliation kinds; the page names each, in brackets."""
    description = alert("PrizeflowReconUnmatchedProviderDebit")["annotations"]["description"]
    named = set(re.findall(r"\(([a-z_]+)\)", description))
    assert named == {k.code.value for k in RECON_KINDS.values() if k.severity is Severity.CRITICAL}
