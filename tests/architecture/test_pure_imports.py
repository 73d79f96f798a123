"""Rules and use cases load no I/O stack: importing every `domain/` and `application/` module of every service, in a
fresh interpreter, leaves the database, Kafka, web and HTTP-client packages out of `sys.modules`.

The AST rule (`test_service_shape.py`) reads what a module names; this one runs the imports, so what a module pulls
in through another (a runtime helper that imports Litestar for one predicate, a package `__init__` that re-exports
the web stack) fails too. It starts a Python process: marked integration, like every test outside the unit tier.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IO_PACKAGES = ("sqlalchemy", "asyncpg", "litestar", "aiokafka", "faststream", "httpx")
LAYERS = ("domain", "application")

_PROBE = """
import importlib, json, sys
modules, io = json.loads(sys.argv[1]), json.loads(sys.argv[2])
loaded = {}
for name in modules:
    before = {m for m in sys.modules if m.split(".")[0] in io}
    importlib.import_module(name)
    after = {m.split(".")[0] for m in sys.modules if m.split(".")[0] in io} - {m.split(".")[0] for m in before}
    if after:
        loaded[name] = sorted(after)
print(json.dumps(loaded))
"""


def pure_modules(src: Path) -> list[str]:
    """Every module under a `domain/` or `application/` package of `src` (a service's `src/`), at any depth: a
    bounded context's own layers (`prizeflow_payouts/compliance/domain/...`) included."""
    names: list[str] = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).with_suffix("")
        if not any(part in LAYERS for part in rel.parts[:-1]) and rel.parts[-1] not in LAYERS:
            continue
        parts = rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts
        names.append(".".join(parts))
    return names


def io_loaded_by(modules: list[str], *, path: list[Path] | None = None) -> dict[str, list[str]]:
    """Module → the I/O packages its import loaded first (in import order, so each is blamed once)."""
    env_path = [str(p) for p in (path or [])]
    code = "import sys; sys.path[:0] = " + repr(env_path) + "\n" + _PROBE
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(modules), json.dumps(IO_PACKAGES)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    loaded: dict[str, list[str]] = json.loads(out.stdout)
    return loaded


# The published interface of each bounded context of a deployable (ADR 0013): another context's use cases import it,
# so it is as pure as they are.
PUBLISHED = ("facts.py", "statements.py")


def published_modules(src: Path) -> list[str]:
    return [
        ".".join(path.relative_to(src).with_suffix("").parts)
        for name in PUBLISHED
        for path in sorted(src.glob(f"*/{name}"))
    ]


def test_every_domain_and_application_module_loads_no_io_stack() -> None:
    modules = [m for src in sorted(ROOT.glob("services/*/src")) for m in [*pure_modules(src), *published_modules(src)]]
    assert len(modules) > 100, modules  # every service's rules and use cases were found
    # payouts' contexts, each a package of the one deployable, are probed like every service
    assert {"prizeflow_compliance.domain.verification", "prizeflow_compliance.application.rescreen"} <= set(modules)
    assert {"prizeflow_compliance.facts", "prizeflow_payouts.application.gate"} <= set(modules)
    assert io_loaded_by(modules) == {}


def test_the_probe_names_a_use_case_that_loads_the_database(tmp_path: Path) -> None:
    """Shown to fail: a use case importing an adapter that imports SQLAlchemy is caught, and named."""
    pkg = tmp_path / "prizeflow_probe"
    for place in ("domain", "application", "adapters"):
        (pkg / place).mkdir(parents=True)
        (pkg / place / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "domain" / "rules.py").write_text("RULE = 1\n")
    (pkg / "adapters" / "pg.py").write_text("import sqlalchemy\n")
    (pkg / "application" / "use_case.py").write_text("from prizeflow_probe.adapters import pg\n")
    modules = pure_modules(tmp_path)
    assert modules == [
        "prizeflow_probe.application",
        "prizeflow_probe.application.use_case",
        "prizeflow_probe.domain",
        "prizeflow_probe.domain.rules",
    ]
    assert io_loaded_by(modules, path=[tmp_path]) == {"prizeflow_probe.application.use_case": ["sqlalchemy"]}
