"""Product code never imports test or dev tooling.

Every module under `services/*/src` and `libs/*/src` is parsed (not imported) and each import it makes, at
module level, in a function, under `TYPE_CHECKING`, or as an `importlib.import_module("...")` literal, is
checked against what only tests and developers may use: the packages under `tools/*/src` (the devstack, the
emulators, the simulator, the testkit), test frameworks, and test-support modules (`*.testing`, `*_testing`,
`conftest`). A src tree holding such a module is refused as well. The scanner is checked against planted
violations first, so a scanner that silently stopped seeing imports fails here too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_SRC = sorted([*ROOT.glob("libs/*/src"), *ROOT.glob("services/*/src")])
TEST_FRAMEWORKS = frozenset({"pytest", "_pytest", "hypothesis", "testcontainers", "pytest_asyncio", "pytest_timeout"})
TEST_SUPPORT_NAMES = frozenset({"testing", "conftest", "tests", "support", "harness"})


def tool_packages(root: Path = ROOT) -> frozenset[str]:
    """Top-level packages the workspace's tools ship: dev-side by definition."""
    return frozenset(p.parent.name for p in root.glob("tools/*/src/*/__init__.py"))


@dataclass(frozen=True)
class Violation:
    file: Path
    line: int
    module: str
    why: str

    def __str__(self) -> str:
        where = self.file.relative_to(ROOT) if self.file.is_relative_to(ROOT) else self.file
        return f"{where}:{self.line}: {self.module} ({self.why})"


def _resolve(node: ast.ImportFrom, package: str) -> str:
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1] if node.level > 1 else parts
    return ".".join([*base, *([node.module] if node.module else [])])


def imported_modules(tree: ast.AST, package: str) -> Iterator[tuple[int, str]]:
    """(line, dotted module) of every import in `tree`; `package` resolves relative imports."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node, package)
            yield node.lineno, module
            for alias in node.names:  # `from pkg import testing` imports the submodule
                yield node.lineno, f"{module}.{alias.name}"
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in {"import_module", "__import__"} and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield node.lineno, arg.value


def why_forbidden(module: str, tools: frozenset[str]) -> str | None:
    parts = module.split(".")
    if parts[0] in tools:
        return "a dev tool (tools/*/src)"
    if parts[0] in TEST_FRAMEWORKS:
        return "a test framework"
    if any(p in TEST_SUPPORT_NAMES or p.endswith("_testing") for p in parts[1:]):
        return "a test-support module"
    return None


def scan(src_roots: list[Path], tools: frozenset[str]) -> list[Violation]:
    found: list[Violation] = []
    for src in src_roots:
        for path in sorted(src.rglob("*.py")):
            rel = path.relative_to(src).with_suffix("")
            parts = list(rel.parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            module_name = ".".join(parts)
            if any(p in TEST_SUPPORT_NAMES or p.endswith("_testing") for p in parts[1:]):
                found.append(Violation(path, 1, module_name, "a test-support module inside a product src tree"))
            package = module_name if is_package else ".".join(parts[:-1])
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            reported: set[int] = set()
            for line, module in imported_modules(tree, package):
                if line not in reported and (why := why_forbidden(module, tools)):
                    reported.add(line)
                    found.append(Violation(path, line, module, why))
    return found


def test_the_scanner_sees_every_way_of_importing_tooling(tmp_path: Path) -> None:
    """Planted violations (the mutation check): each one must be reported, and clean code must not be."""
    pkg = tmp_path / "src" / "prizeflow_fake"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "clean.py").write_text(
        "import asyncio\nfrom prizeflow_runtime.retry import backoff_delay\nfrom . import clean\n"
        "from prizeflow_contracts.events import payouts\n"
    )
    planted = {
        "top.py": "import prizeflow_devstack.infra\n",
        "from_.py": "from prizeflow_testkit import eventually\n",
        "lazy.py": "def f():\n    from prizeflow_soroban_emulator.client import Rpc\n    return Rpc\n",
        "typing_only.py": "import typing\nif typing.TYPE_CHECKING:\n    from prizeflow_simulator import x\n",
        "dynamic.py": "import importlib\nm = importlib.import_module('prizeflow_testkit.stellar')\n",
        "framework.py": "import pytest\n",
        "helper.py": "from prizeflow_runtime import testing\n",
        "relative.py": "from .stellar_testing import Stack\n",
        "testing.py": "X = 1\n",
    }
    for name, text in planted.items():
        (pkg / name).write_text(text)
    tools = frozenset({"prizeflow_devstack", "prizeflow_soroban_emulator", "prizeflow_simulator", "prizeflow_testkit"})

    flagged = {v.file.name for v in scan([tmp_path / "src"], tools)}

    assert flagged == set(planted), f"missed: {set(planted) - flagged}; wrongly flagged: {flagged - set(planted)}"


def test_the_tool_packages_are_found() -> None:
    assert {"prizeflow_devstack", "prizeflow_soroban_emulator", "prizeflow_testkit"} <= tool_packages()
    assert len(PRODUCT_SRC) >= 7  # libs/{contracts,runtime,stellar}, services/{settlement,rewards,payouts,signer}


@pytest.mark.parametrize("src", PRODUCT_SRC, ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_product_code_imports_no_test_or_dev_tooling(src: Path) -> None:
    violations = scan([src], tool_packages())
    assert not violations, "product code imports test or dev tooling:\n" + "\n".join(map(str, violations))
