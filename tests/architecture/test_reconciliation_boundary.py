"""Reconciliation is a context of the payouts deployable that the others meet only through its published interface
(docs/services.md, issue 45): outside `prizeflow_reconciliation`, product code imports `prizeflow_reconciliation.
statements` and nothing else of it (the deployable's composition root, `prizeflow_payouts/bootstrap.py`, also calls
its bootstrap part); and reconciliation imports no other payouts context at all (what it needs of the lifecycle is a
port in `statements.py` that the lifecycle implements). Read from the source (AST), including imports inside
functions; the rule is checked against planted violations first."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "services" / "payouts" / "src"
CONTEXT = "prizeflow_reconciliation"
PUBLISHED = f"{CONTEXT}.statements"
# The composition root builds every context: it calls reconciliation's bootstrap part, nothing deeper.
ROOT_MAY_IMPORT = {"prizeflow_payouts/bootstrap.py": (f"{CONTEXT}.bootstrap",)}
OTHER_CONTEXTS = ("prizeflow_payouts", "prizeflow_compliance")
OTHERS_PUBLISHED = ("prizeflow_compliance.facts",)


def _imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(src: Path) -> list[str]:
    out: list[str] = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        inside = rel.startswith(CONTEXT + "/")
        for line, name in _imports(path):
            if inside:
                if any(_under(name, c) for c in OTHER_CONTEXTS) and not any(_under(name, p) for p in OTHERS_PUBLISHED):
                    out.append(f"{rel}:{line} reconciliation imports {name}")
            elif _under(name, CONTEXT) and name not in (CONTEXT, PUBLISHED, *ROOT_MAY_IMPORT.get(rel, ())):
                out.append(f"{rel}:{line} imports {name}, not reconciliation's published interface")
    return out


def test_the_contexts_meet_reconciliation_only_through_statements() -> None:
    assert violations(SRC) == []


def test_the_rule_catches_a_context_reaching_into_another(tmp_path: Path) -> None:
    for pkg, body in {
        "prizeflow_payouts/entrypoints/kafka.py": (
            "from prizeflow_reconciliation.statements import LedgerPostings\n"
            "def handler():\n    from prizeflow_reconciliation.adapters.postings_pg import SqlLedgerPostings\n"
        ),
        "prizeflow_payouts/bootstrap.py": "from prizeflow_reconciliation.bootstrap import compose_reconciliation\n",
        "prizeflow_compliance/application/x.py": "import prizeflow_reconciliation.application.queue\n",
        "prizeflow_reconciliation/application/queue.py": (
            "from prizeflow_payouts.application.admin import Actor\nfrom prizeflow_compliance.facts import Facts\n"
        ),
    }.items():
        (tmp_path / pkg).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg).write_text(body)
    assert violations(tmp_path) == [
        "prizeflow_compliance/application/x.py:1 imports prizeflow_reconciliation.application.queue, not "
        "reconciliation's published interface",
        "prizeflow_payouts/entrypoints/kafka.py:3 imports prizeflow_reconciliation.adapters.postings_pg, not "
        "reconciliation's published interface",
        "prizeflow_reconciliation/application/queue.py:1 reconciliation imports prizeflow_payouts.application.admin",
    ]


def test_reconciliation_has_the_one_shape_of_a_service() -> None:
    """Its layers obey the rules every service's do (`test_service_shape.py`), read by the same function."""
    spec = importlib.util.spec_from_file_location("service_shape", Path(__file__).with_name("test_service_shape.py"))
    assert spec is not None
    assert spec.loader is not None
    shape = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shape)
    package = SRC / CONTEXT
    for place in ("domain", "application", "adapters", "entrypoints"):
        assert (package / place).is_dir(), f"reconciliation: no {place}/"
    for module in ("application/ports.py", "application/books.py", "adapters/books.py", "bootstrap.py", "metrics.py"):
        assert (package / module).is_file(), f"reconciliation: no {module}"
    assert shape.violations(package, CONTEXT) == []
