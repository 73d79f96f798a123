"""Every service has the one shape (docs/services.md): rules in `domain/` (no I/O), use cases in `application/`
(ports only: no SQL, no HTTP, no Litestar, no Kafka client), ports in `application/ports.py`, adapters behind
them, wiring in `bootstrap.py`. Read from the source (AST), so a violation fails before anything runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").is_file())

# What a layer may not import (module prefixes).
IO = ("sqlalchemy", "asyncpg", "litestar", "httpx", "aiokafka", "faststream", "uvicorn", "pkcs11", "socket")
RUNTIME_IO = ("prizeflow_runtime.db", "prizeflow_runtime.outbox", "prizeflow_runtime.inbox", "prizeflow_runtime.http")
FORBIDDEN = {
    "domain": (*IO, *RUNTIME_IO, "{pkg}.application", "{pkg}.adapters", "{pkg}.entrypoints", "{pkg}.bootstrap"),
    "application": (*IO, *RUNTIME_IO, "{pkg}.adapters", "{pkg}.entrypoints", "{pkg}.bootstrap"),
    "adapters": ("{pkg}.entrypoints", "{pkg}.bootstrap"),
}


def imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
    return found


def violations(package_dir: Path, pkg: str, root: Path = ROOT) -> list[str]:
    out: list[str] = []
    for layer, banned in FORBIDDEN.items():
        prefixes = tuple(b.format(pkg=pkg) for b in banned)
        for path in sorted((package_dir / layer).rglob("*.py")):
            for line, name in imports(path):
                hit = next((p for p in prefixes if name == p or name.startswith(p + ".")), None)
                if hit is not None:
                    out.append(f"{path.relative_to(root)}:{line} {layer}/ imports {name}")
    return out


@pytest.mark.parametrize("service", SERVICES)
def test_each_layer_imports_only_what_its_place_allows(service: str) -> None:
    pkg = f"prizeflow_{service}"
    assert violations(ROOT / "services" / service / "src" / pkg, pkg) == []


@pytest.mark.parametrize("service", SERVICES)
def test_rules_use_cases_ports_and_wiring_are_where_a_newcomer_looks(service: str) -> None:
    package_dir = ROOT / "services" / service / "src" / f"prizeflow_{service}"
    for place in ("domain", "application", "adapters", "entrypoints"):
        assert (package_dir / place).is_dir(), f"{service}: no {place}/"
    assert (package_dir / "application" / "ports.py").is_file(), f"{service}: ports are not in application/ports.py"
    assert (package_dir / "bootstrap.py").is_file(), f"{service}: no bootstrap.py"


def test_the_rule_catches_sql_in_a_use_case(tmp_path: Path) -> None:
    (tmp_path / "application").mkdir()
    use_case = "from sqlalchemy import text\nimport prizeflow_x.adapters.pg\n"
    (tmp_path / "application" / "use_case.py").write_text(use_case)
    (tmp_path / "domain").mkdir()
    (tmp_path / "domain" / "rules.py").write_text("from litestar import get\n")
    assert violations(tmp_path, "prizeflow_x", root=tmp_path) == [
        "domain/rules.py:1 domain/ imports litestar.get",
        "application/use_case.py:1 application/ imports sqlalchemy.text",
        "application/use_case.py:2 application/ imports prizeflow_x.adapters.pg",
    ]
