"""The runbooks are checked as code: their form, the alerts that point at them, and every project command they name
parsed by the real command-line parsers, so that a runbook cannot tell an operator to run something that does not
exist. The rest of the documentation (README.md, docs/, each service's and tool's README) is held to what it cites:
every repository path and test node it names exists, and every `prizeflow-ops`/`prizeflow-dev` subcommand it names
is one the real parser has. Pure reading and parsing: unit tier."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from runbook_docs import (
    ROOT,
    RUNBOOKS,
    SECTIONS,
    TESTED_PROCEDURES,
    Invocation,
    Runbook,
    parse,
    rule_runbook_urls,
    runbook_path_of,
    runbooks,
)

ALL = runbooks()
IDS = [rb.name for rb in ALL]


def test_there_is_a_runbook_for_each_procedure_the_background_asks_for() -> None:
    names = {rb.name for rb in ALL}
    assert {"reward-pool-recovery", "provider-retry", "accidental-over-allocation", "payout-dispute"} <= names


@pytest.mark.parametrize("runbook", ALL, ids=IDS)
def test_a_runbook_has_a_title_and_the_four_sections_in_order(runbook: Runbook) -> None:
    assert runbook.title, f"{runbook.path.name}: no `# title`"
    assert runbook.headings[: len(SECTIONS)] == SECTIONS, (
        f"{runbook.path.name}: sections {runbook.headings}, expected {SECTIONS} first and in this order"
    )
    for section in SECTIONS:
        assert runbook.sections[section].strip(), f"{runbook.path.name}: section {section} is empty"


@pytest.mark.parametrize("runbook", ALL, ids=IDS)
def test_every_relative_link_resolves(runbook: Runbook) -> None:
    broken = [t for t in runbook.links() if not (runbook.path.parent / t).resolve().exists()]
    assert not broken, f"{runbook.path.name}: links to missing files {broken}"


def test_the_index_lists_every_runbook_and_nothing_else() -> None:
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([a-z0-9-]+\.md)\)", index))
    assert linked == {rb.path.name for rb in ALL}


def _alerts() -> list[tuple[str, str, str]]:
    return [(str(path.relative_to(ROOT)), alert, url) for path, alert, url in rule_runbook_urls()]


def test_the_rules_have_alerts() -> None:
    assert _alerts(), "no alerting rule found under deploy/prometheus/rules"


@pytest.mark.parametrize(("rules", "alert", "url"), _alerts(), ids=[f"{a}@{r}" for r, a, _ in _alerts()])
def test_every_alert_links_a_runbook_that_exists_and_is_for_it(rules: str, alert: str, url: str) -> None:
    path = runbook_path_of(url)
    assert path is not None, f"{rules}: {alert} has no runbook_url under docs/runbooks/ ({url!r})"
    assert path.exists(), f"{rules}: {alert}'s runbook_url names {path.relative_to(ROOT)}, which does not exist"
    runbook = next(rb for rb in ALL if rb.path == path)
    assert alert in runbook.alerts(), f"{path.name} does not say it is for {alert} (its `Alert:` line)"


def test_every_runbook_that_names_an_alert_is_that_alerts_runbook() -> None:
    by_alert = {alert: runbook_path_of(url) for _, alert, url in rule_runbook_urls()}
    wrong = [f"{rb.path.name} claims {alert}" for rb in ALL for alert in rb.alerts() if by_alert.get(alert) != rb.path]
    assert not wrong, f"runbooks naming an alert that does not exist or points elsewhere: {wrong}"


def _invocations() -> list[Invocation]:
    return [inv for rb in ALL for inv in rb.invocations()]


def test_runbooks_name_project_commands() -> None:
    tools = {inv.tool for inv in _invocations()}
    assert tools == {"prizeflow-ops", "prizeflow-dev"}


def _ops_parser() -> Callable[[list[str]], argparse.Namespace]:
    from prizeflow_ops.cli import build_parser

    out, err = io.StringIO(), io.StringIO()
    parser = build_parser(out, err)

    def parse(argv: list[str]) -> argparse.Namespace:
        try:
            return parser.parse_args(argv)
        except SystemExit as exit_:
            raise AssertionError(err.getvalue().strip() or f"exit {exit_.code}") from None

    return parse


def _dev_parser() -> Callable[[list[str]], argparse.Namespace]:
    from prizeflow_devstack.cli import build_parser

    parser = build_parser()

    def parse(argv: list[str]) -> argparse.Namespace:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                return parser.parse_args(argv)
        except SystemExit as exit_:
            raise AssertionError(err.getvalue().strip() or f"exit {exit_.code}") from None

    return parse


@pytest.mark.parametrize(
    "invocation", _invocations(), ids=[f"{i.where}:{i.tool} {' '.join(i.argv[:2])}" for i in _invocations()]
)
def test_every_command_in_a_runbook_parses_with_the_real_cli(invocation: Invocation) -> None:
    parse = _ops_parser() if invocation.tool == "prizeflow-ops" else _dev_parser()
    argv = invocation.resolved()
    try:
        parse(argv)
    except AssertionError as refused:
        pytest.fail(f"{invocation.where}: `{invocation.tool} {' '.join(invocation.argv)}` does not parse: {refused}")


def test_a_command_that_does_not_exist_is_caught() -> None:
    """The check above can fail: a made-up command and a made-up option are refused by the same parsers."""
    parse = _ops_parser()
    for argv in (["pool", "refill", "c-1"], ["payout", "retry", "p-1"], ["dlq", "redrive", "rewards", "x"]):
        with pytest.raises(AssertionError):
            parse(argv)
    with pytest.raises(AssertionError):
        _dev_parser()(["restart", "rewards"])


def _known_metric_names() -> set[str]:
    """Every series name the services export: the runtime's per service, and each service's own; and the bundle's
    Kubernetes API probe's (`prizeflow-ops api-probe`)."""
    from prizeflow_compliance.metrics import ComplianceMetrics
    from prizeflow_ops.apiprobe import ApiProbeMetrics
    from prizeflow_payouts.application.metrics import PayoutMetrics
    from prizeflow_reconciliation.metrics import ReconMetrics
    from prizeflow_rewards.metrics import RewardsMetrics
    from prizeflow_runtime.metrics import RuntimeMetrics
    from prizeflow_settlement.metrics import SettlementMetrics
    from prizeflow_signer.metrics import SignerMetrics
    from prizeflow_webhooks.application.metrics import WebhooksMetrics

    registry = CollectorRegistry()
    for service in ("settlement", "rewards", "payouts", "signer", "webhooks"):
        RuntimeMetrics.create(service, registry)
    RewardsMetrics.create(registry)
    SettlementMetrics.create(registry)
    PayoutMetrics.create(registry)
    ReconMetrics.create(registry)
    ComplianceMetrics.create(registry)
    SignerMetrics.create(registry)
    WebhooksMetrics.create(registry)
    ApiProbeMetrics.create(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def _recorded_names() -> set[str]:
    import yaml

    names: set[str] = set()
    for path in sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.y*ml")):
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            names.update(r["record"] for r in group.get("rules", []) if "record" in r)
    return names


def _promql(runbook: Runbook) -> list[str]:
    return [b.text for b in runbook.blocks if b.language == "promql"]


@pytest.mark.parametrize("runbook", [rb for rb in ALL if _promql(rb)], ids=[rb.name for rb in ALL if _promql(rb)])
def test_every_metric_a_runbook_queries_exists(runbook: Runbook) -> None:
    known = _known_metric_names() | _recorded_names()
    unknown: list[str] = []
    for expr in _promql(runbook):
        unknown += [
            pattern
            for pattern in re.findall(r'__name__=~"([^"]+)"', expr)
            if not any(re.fullmatch(pattern, name) for name in known)
        ]
        without_strings = re.sub(r'"[^"]*"', '""', expr)
        unknown += [
            name
            for name in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", without_strings)
            if "prizeflow_" in name and name not in known
        ]
    assert not unknown, f"{runbook.path.name} queries metrics no service exports: {sorted(set(unknown))}"


def test_every_procedure_block_is_executed_by_a_test() -> None:
    tagged = {(rb.name, b.procedure) for rb in ALL for b in rb.blocks if b.procedure}
    assert tagged == set(TESTED_PROCEDURES), "runbook:<procedure> blocks and TESTED_PROCEDURES differ"
    for (runbook, procedure), module in TESTED_PROCEDURES.items():
        source = (ROOT / module).read_text(encoding="utf-8")
        runs = re.search(rf'"{re.escape(runbook)}"(,\s*|\)\.procedure\()"{re.escape(procedure)}"', source)
        assert runs, f"{module} does not run {runbook}:{procedure}"
        block = next(rb for rb in ALL if rb.name == runbook).procedure(procedure)
        assert block.command_lines(), f"{runbook}:{procedure} has no command"


@pytest.mark.integration  # runs promtool as a process (Debian's prometheus package: make system-deps)
def test_every_promql_expression_in_a_runbook_parses_with_promtool(tmp_path: Path) -> None:
    import yaml

    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: bash tools/devstack/scripts/ensure-prometheus.sh (make system-deps)"
    expressions = [
        (rb.path.name, line.strip())
        for rb in ALL
        for text in _promql(rb)
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert expressions
    rules = [{"record": f"runbook_expression_{i}", "expr": expr} for i, (_, expr) in enumerate(expressions)]
    file = tmp_path / "runbooks.rules.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "runbooks", "rules": rules}]}))
    checked = subprocess.run([promtool, "check", "rules", str(file)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, f"{checked.stdout}\n{checked.stderr}\nexpressions: {expressions}"


# -- the rest of the documentation ---------------------------------------------------------------------------------

DOCS = sorted(
    {
        ROOT / "README.md",
        *ROOT.glob("docs/**/*.md"),
        *ROOT.glob("services/*/README.md"),
        *ROOT.glob("tools/*/README.md"),
        *ROOT.glob("libs/*/README.md"),
        *ROOT.glob("deploy/**/README.md"),
    }
)
DOC_IDS = [str(d.relative_to(ROOT)) for d in DOCS]
# A repository path as docs cite it (`services/payouts/README.md`, `tests/e2e/test_ops_cli.py::test_x`), in prose,
# code or a link; a path relative to the document, or to any service (services.md's `tests/unit/`), counts too.
_REPO_PATH = re.compile(
    r"(?<![\w/.-])(?P<path>(?:docs|services|tools|libs|tests|deploy)/[A-Za-z0-9_./<>{}*…-]*)(?:::(?P<node>\w+))?"
)
_GENERATED = ("deploy/compose/secrets/",)  # written by `prizeflow-dev compose-secrets`, git-ignored


def _cited_paths(doc: Path) -> list[tuple[int, str, str | None]]:
    out = []
    for lineno, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
        if "kubectl" in line:
            continue  # `deploy/<name>` there is a Kubernetes Deployment, not a directory
        for m in _REPO_PATH.finditer(line):
            path = m.group("path").rstrip(".,:;")
            if re.search(r"[<>{}*…]|\.\.\.", path) or path.startswith(_GENERATED):
                continue  # a placeholder or a pattern, not one path
            out.append((lineno, path, m.group("node")))
    return out


def _missing(doc: Path, cited: list[tuple[int, str, str | None]]) -> list[str]:
    missing = []
    for lineno, path, node in cited:
        bases = (ROOT, doc.parent, *ROOT.glob("services/*"))
        found = next((b / path for b in bases if (b / path).exists()), None)
        if found is None:
            missing.append(f"{doc.name}:{lineno}: {path}")
        elif node and not re.search(rf"^\s*(async def|def|class) {node}\b", found.read_text(encoding="utf-8"), re.M):
            missing.append(f"{doc.name}:{lineno}: {path}::{node} (no such test)")
    return missing


@pytest.mark.parametrize("doc", DOCS, ids=DOC_IDS)
def test_every_path_a_doc_cites_exists(doc: Path) -> None:
    missing = _missing(doc, _cited_paths(doc))
    missing += [f"{doc.name}: link to {t}" for t in parse(doc).links() if not (doc.parent / t).resolve().exists()]
    assert not missing, f"{doc.relative_to(ROOT)} cites what does not exist: {missing}"


def test_a_missing_path_is_caught() -> None:
    """The check above can fail: a made-up path, and a made-up test of a real file, are found; a real one is not."""
    doc = ROOT / "services" / "payouts" / "README.md"
    assert {"docs/architecture.md", "tests/unit/test_returns.py"} <= {p for _, p, _ in _cited_paths(doc)}
    this = "tests/runbooks/test_runbook_docs.py"
    cited: list[tuple[int, str, str | None]] = [
        (1, "docs/no-such-page.md", None),
        (2, this, "test_no_such_test"),
        (3, this, "test_a_missing_path_is_caught"),
    ]
    assert [m.split(": ", 1)[1] for m in _missing(doc, cited)] == [
        "docs/no-such-page.md",
        f"{this}::test_no_such_test (no such test)",
    ]


def _subcommand_problem(parser: argparse.ArgumentParser, argv: tuple[str, ...]) -> str | None:
    """Whether the leading words of `argv` walk the parser's subcommands: `pool fund ...` names `pool`, then `fund`.
    Options and what follows the last subcommand are not judged (docs show synopses: `[--role R2]`)."""
    for word in argv:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or word.startswith("#") or word in {"...", "…"}:
            return None
        if word.startswith("-"):
            continue
        if word not in sub.choices:
            return f"{word!r} is not one of {sorted(sub.choices)}"
        parser = sub.choices[word]
    return None


def _doc_invocations() -> list[tuple[str, Invocation]]:
    runbook_paths = {rb.path for rb in ALL}
    return [
        (str(doc.parent.relative_to(ROOT)), inv)
        for doc in DOCS
        if doc not in runbook_paths
        for inv in parse(doc).invocations()
    ]


def test_every_subcommand_a_doc_names_exists() -> None:
    from prizeflow_devstack.cli import build_parser as dev_parser
    from prizeflow_ops.cli import build_parser as ops_parser

    parsers = {"prizeflow-ops": ops_parser(io.StringIO(), io.StringIO()), "prizeflow-dev": dev_parser()}
    invocations = _doc_invocations()
    assert {inv.tool for _, inv in invocations} == set(parsers)
    wrong = [
        f"{where}/{inv.where}: {inv.tool} {' '.join(inv.argv)}: {problem}"
        for where, inv in invocations
        if (problem := _subcommand_problem(parsers[inv.tool], inv.argv))
    ]
    assert not wrong, f"docs name subcommands that do not exist: {wrong}"
    assert _subcommand_problem(parsers["prizeflow-ops"], ("pool", "refill", "c-1"))
    assert _subcommand_problem(parsers["prizeflow-dev"], ("restart",))
