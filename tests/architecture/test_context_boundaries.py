"""Payouts' bounded contexts meet only through their published interfaces (ADR 0013, docs/services.md).

One deployable (`services/payouts`) holds the payout lifecycle (`prizeflow_payouts`), compliance
(`prizeflow_compliance`) and reconciliation (`prizeflow_reconciliation`, once it is a package of its own). A module of
one context may import another context's published interface module (`prizeflow_compliance.facts`,
`prizeflow_reconciliation.statements`), its `domain/` and its `metrics`, but never its `application/`, `adapters/`
or `entrypoints/`, and never a private name (`_actor`): those are the context's own, and a context reaching into
them is one context again (an admin route's actor and body are the runtime's, `prizeflow_runtime.operators`). The
composition root of the deployable (`prizeflow_payouts/bootstrap.py`, `__main__.py`, the contexts' own
`bootstrap.py` parts) wires them all and is exempt.

Every module is parsed, not imported: an import at module level, in a function or under `TYPE_CHECKING` counts.
The checker is shown to fail on a planted violation first, so a checker that stopped seeing imports fails too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "services" / "payouts" / "src"
CONTEXTS = ("prizeflow_payouts", "prizeflow_compliance", "prizeflow_reconciliation")
PRIVATE_LAYERS = ("application", "adapters", "entrypoints")
# The composition root sees every context (it builds them); nothing else does.
COMPOSITION_ROOT = frozenset({"bootstrap", "__main__"})


@dataclass(frozen=True)
class Crossing:
    file: Path
    line: int
    imported: str

    def __str__(self) -> str:
        where = self.file.relative_to(ROOT) if self.file.is_relative_to(ROOT) else self.file
        return f"{where}:{self.line}: imports {self.imported}"


def _imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:  # `from prizeflow_compliance import adapters`
                yield node.lineno, f"{node.module}.{alias.name}"


def crossings(src: Path, contexts: tuple[str, ...] = CONTEXTS) -> list[Crossing]:
    """Every import by a module of one context of another context's `application` or `adapters`."""
    found: list[Crossing] = []
    for context in contexts:
        package = src / context
        if not package.is_dir():
            continue
        for path in sorted(package.rglob("*.py")):
            rel = path.relative_to(package).with_suffix("")
            if rel.parts[0] in COMPOSITION_ROOT:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            seen: set[int] = set()
            for line, module in _imports(tree):
                parts = module.split(".")
                crosses = parts[0] in contexts and parts[0] != context and len(parts) > 1
                private = crosses and (parts[1] in PRIVATE_LAYERS or any(p.startswith("_") for p in parts[1:]))
                if private and line not in seen:
                    seen.add(line)  # one crossing per import statement (`from m import a, b` names m once)
                    found.append(Crossing(path, line, module))
    return found


def test_no_context_imports_another_context_s_application_or_adapters() -> None:
    assert (SRC / "prizeflow_compliance" / "facts.py").is_file()  # the contexts this test holds apart exist
    assert [str(c) for c in crossings(SRC)] == []


def _context(root: Path, name: str, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_names_a_context_reaching_into_another_s_layers(tmp_path: Path) -> None:
    """Shown to fail: planted crossings are each found and named; the published interface, the domain and the
    composition root pass."""
    _context(
        tmp_path,
        "prizeflow_compliance",
        {
            "__init__.py": "",
            "facts.py": "class ComplianceFacts: ...\n",
            "domain/__init__.py": "",
            "application/__init__.py": "",
            "application/records.py": "from prizeflow_payouts.application.admin import Actor\n",  # crossing
            "adapters/__init__.py": "",
            "adapters/pg.py": "def f():\n    import prizeflow_payouts.adapters.payouts_pg\n",  # crossing, in a function
            "entrypoints/__init__.py": "",
            "entrypoints/http.py": "from prizeflow_payouts.entrypoints.http import READERS\n",  # crossing
            "entrypoints/views.py": "from prizeflow_payouts.metrics import _labels\n",  # a private name: crossing
        },
    )
    _context(
        tmp_path,
        "prizeflow_payouts",
        {
            "__init__.py": "",
            "application/__init__.py": "",
            "application/gate.py": "from prizeflow_compliance.facts import ComplianceFacts\n",  # published: fine
            "application/sweep.py": "from prizeflow_compliance import adapters\n",  # crossing
            "domain/__init__.py": "",
            "domain/gate.py": "from prizeflow_compliance.domain import verification\n",  # a domain: fine
            "bootstrap.py": "from prizeflow_compliance.adapters.pg import f\n",  # the composition root: fine
        },
    )
    found = sorted((c.file.relative_to(tmp_path).as_posix(), c.imported) for c in crossings(tmp_path))
    assert found == [
        ("prizeflow_compliance/adapters/pg.py", "prizeflow_payouts.adapters.payouts_pg"),
        ("prizeflow_compliance/application/records.py", "prizeflow_payouts.application.admin"),
        ("prizeflow_compliance/entrypoints/http.py", "prizeflow_payouts.entrypoints.http"),
        ("prizeflow_compliance/entrypoints/views.py", "prizeflow_payouts.metrics._labels"),
        ("prizeflow_payouts/application/sweep.py", "prizeflow_compliance.adapters"),
    ]
