"""The devstack's Prometheus, the pure parts: its generated config (one job per service, named as the service, the
project's rules by glob, short intervals), which services it scrapes, the alerts the live view shows, and the
chaos settings `make run` gives the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from prizeflow_devstack.devenv import (
    DEV_ENV_FILE,
    chaos_env,
    dev_env,
    generate_dev_env,
    stand_in_env,
    stand_ins_env,
)
from prizeflow_devstack.live import alerts_table
from prizeflow_devstack.paths import Paths, find_root
from prizeflow_devstack.prometheus import (
    RULES_DIR,
    PrometheusError,
    parse_alerts,
    planned_targets,
    render_config,
    scrape_targets,
)
from prizeflow_devstack.state import PrometheusState, State, load_state, save_state
from prizeflow_devstack.supervisor import (
    RunningService,
    ServiceSpec,
    ServiceSpecError,
    discover_services,
    parse_service_spec,
)

PLATFORM = {"settlement", "rewards", "payouts", "signer", "webhooks"}  # the jobs the rules select on


def _running(name: str, port: int | None, *, metrics: bool = True) -> RunningService:
    spec = ServiceSpec(name=name, directory=Path("/x"), command=("x",), metrics=metrics)
    return RunningService(spec=spec, pid=1, port=port, log=Path("/x.log"), database_url=None)


def test_the_config_has_one_job_per_service_named_as_the_service_and_loads_the_rules_by_glob() -> None:
    rules = Path("/repo/deploy/prometheus/rules")
    text = render_config({"settlement": "127.0.0.1:8001", "rewards": "127.0.0.1:8002"}, rules)
    assert text.startswith("# written by prizeflow-devstack")
    config = yaml.safe_load(text)
    assert config["global"] == {"scrape_interval": "5s", "scrape_timeout": "4s", "evaluation_interval": "5s"}
    assert config["rule_files"] == ["/repo/deploy/prometheus/rules/*.yml"]
    assert config["scrape_configs"] == [
        {"job_name": "rewards", "static_configs": [{"targets": ["127.0.0.1:8002"]}]},
        {"job_name": "settlement", "static_configs": [{"targets": ["127.0.0.1:8001"]}]},
    ]


def test_the_intervals_can_be_shortened_for_tests() -> None:
    config = yaml.safe_load(render_config({}, Path("/r"), interval_s=1))
    assert config["global"] == {"scrape_interval": "1s", "scrape_timeout": "800ms", "evaluation_interval": "1s"}
    assert config["scrape_configs"] == []


def test_only_services_that_serve_metrics_are_scraped() -> None:
    services = [
        _running("settlement", 8001),
        _running("soroban-rpc", 8002, metrics=False),
        _running("worker", None),
    ]
    assert scrape_targets(services) == {"settlement": "127.0.0.1:8001"}
    specs = [s.spec for s in services]
    ports = {"settlement": 8001, "soroban-rpc": 8002}  # reserved before they start
    assert planned_targets(specs, ports) == {"settlement": "127.0.0.1:8001"}


def test_every_platform_service_is_scraped_under_the_job_name_the_compose_stack_and_the_rules_use() -> None:
    root = find_root()
    specs = discover_services(root)
    scraped = {s.name for s in specs if s.metrics and s.http_port_env}
    assert PLATFORM | {"simulator"} <= scraped
    # The stand-ins serve no /metrics: every one payouts needs (`payouts_needs`), Stellar's, the identity provider's
    # and the rates provider's; and nothing else goes unscraped.
    stand_ins = {s.name for s in specs if s.payouts_needs}
    assert {"stripe-api", "kyc-api", "sanctions-lists", "upi-api"} <= stand_ins
    assert {s.name for s in specs if not s.metrics} == stand_ins | {"soroban-rpc", "dev-idp", "rates-api"}
    compose = yaml.safe_load((root / "deploy" / "compose" / "prometheus.yml").read_text())
    compose_jobs = {job["job_name"] for job in compose["scrape_configs"]}
    assert compose_jobs >= PLATFORM
    assert compose_jobs <= {s.name for s in specs}  # the same names on both stacks
    assert any((root / RULES_DIR).glob("*.yml"))


def test_prometheus_is_recorded_in_the_state_file(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    state = State(prometheus=PrometheusState(port=9090, pid=3, start_ticks=4))
    save_state(paths, state)
    assert load_state(paths).prometheus == PrometheusState(port=9090, pid=3, start_ticks=4)
    assert 9090 in load_state(paths).used_ports()
    assert json.loads(paths.state_file.read_text())["prometheus"]["port"] == 9090


ALERTS = {
    "status": "success",
    "data": {
        "alerts": [
            {
                "labels": {"alertname": "PrizeflowOutboxBacklog", "severity": "warning", "job": "rewards"},
                "annotations": {"summary": "rewards has had over 1000 unpublished outbox events"},
                "state": "pending",
                "activeAt": "2026-01-02T10:00:05.123Z",
                "value": "1.2e+03",
            },
            {
                "labels": {"alertname": "PrizeflowEventsDeadLettered", "severity": "warning", "job": "settlement"},
                "annotations": {"summary": "settlement-rounds sent events to its DLQ (malformed_json)"},
                "state": "firing",
                "activeAt": "2026-01-02T10:00:00Z",
                "value": "3e+00",
            },
            {
                "labels": {"alertname": "PrizeflowServiceDown", "severity": "critical", "job": "payouts"},
                "annotations": {"summary": "payouts is down"},
                "state": "firing",
                "activeAt": "2026-01-02T09:59:00Z",
            },
        ]
    },
}


def test_alerts_are_read_firing_first_then_by_severity() -> None:
    alerts = parse_alerts(ALERTS)
    assert [(a.state, a.name, a.severity) for a in alerts] == [
        ("firing", "PrizeflowServiceDown", "critical"),
        ("firing", "PrizeflowEventsDeadLettered", "warning"),
        ("pending", "PrizeflowOutboxBacklog", "warning"),
    ]
    assert alerts[1].summary == "settlement-rounds sent events to its DLQ (malformed_json)"
    assert alerts[1].labels["job"] == "settlement"
    assert parse_alerts({"status": "success", "data": {"alerts": []}}) == []
    with pytest.raises(PrometheusError, match="error"):
        parse_alerts({"status": "error"})


def _text(table: object) -> str:
    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


def test_the_live_view_shows_each_alert_with_its_severity_and_summary() -> None:
    text = _text(alerts_table(parse_alerts(ALERTS), "http://127.0.0.1:9090"))
    assert "http://127.0.0.1:9090/classic/alerts" in text
    for expected in ("firing", "PrizeflowEventsDeadLettered", "warning", "(malformed_json)", "10:00:00", "critical"):
        assert expected in text
    assert "no alert pending or firing" in _text(alerts_table([], "http://p"))
    assert "Prometheus does not answer" in _text(alerts_table(None, "http://p"))


def test_make_run_gets_chaos_bursts_and_no_steady_malformed_records(tmp_path: Path) -> None:
    env = generate_dev_env(tmp_path / "secrets", root=tmp_path)
    assert {k: env[k] for k in chaos_env()} == chaos_env()
    assert env["SIM_MALFORMED_RATE"] == "0"
    assert env["DEMO_MALFORMED_EVERY"] == "0"

    paths = Paths(tmp_path)  # a checkout from before the bursts: a steady malformed rate, replaced
    paths.base.mkdir(parents=True)
    older = {"PRIZEFLOW_PROFILE": "dev", "JWT_JWKS_URL": env["JWT_JWKS_URL"], "SIM_MALFORMED_RATE": "0.01"}
    (paths.base / DEV_ENV_FILE).write_text(json.dumps(older))
    migrated = dev_env(paths)
    assert migrated["SIM_MALFORMED_RATE"] == "0"
    assert migrated["SIM_CHAOS_BURST"] == "30s/15m@45s"
    assert dev_env(paths) == migrated  # stable from then on


def test_a_service_declares_whether_it_serves_metrics(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.prizeflow.service]\nname = "emu"\ncommand = ["x"]\nmetrics = false\n')
    spec = parse_service_spec(pyproject)
    assert spec is not None
    assert not spec.metrics
    pyproject.write_text('[tool.prizeflow.service]\nname = "emu"\ncommand = ["x"]\nmetrics = "no"\n')
    with pytest.raises(ServiceSpecError, match="`metrics` must be true or false"):
        parse_service_spec(pyproject)
    pyproject.write_text('[tool.prizeflow.service]\nname = "emu"\ncommand = ["x"]\npayouts_needs = 1\n')
    with pytest.raises(ServiceSpecError, match="`payouts_needs` must be true or false"):
        parse_service_spec(pyproject)
    pyproject.write_text('[tool.prizeflow.service]\nname = "emu"\ncommand = ["x"]\nlocal_env = "emu.local"\n')
    with pytest.raises(ServiceSpecError, match="`local_env` must be `module:function`"):
        parse_service_spec(pyproject)
    pyproject.write_text('[tool.prizeflow.service]\nname = "emu"\ncommand = ["x"]\nlocal_env = "emu.local:env"\n')
    with pytest.raises(ServiceSpecError, match="`local_env` and `local_env_marker` come together"):
        parse_service_spec(pyproject)


def test_a_stand_ins_settings_are_made_only_for_a_checkout_without_its_marker() -> None:
    """A stand-in's hook may be costly (one makes an RSA key and a certificate): a checkout whose settings hold
    its marker does not pay it."""
    root = find_root()
    markers = {spec.local_env_marker for spec in discover_services(root) if spec.local_env_marker is not None}
    assert markers
    assert markers <= stand_in_env(root).keys()
    assert stand_ins_env(root, present=markers) == []
