"""`prizeflow_contracts.discovery`: what the rails' registries find, on a package written for the test."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from prizeflow_contracts.discovery import declared, modules


@pytest.fixture
def package(tmp_path: Path) -> Iterator[ModuleType]:
    root = tmp_path / "found_here"
    (root / "pkg_rail").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "b_rail.py").write_text("READER = 'b'\n")
    (root / "a_rail.py").write_text("READER = 'a'\n")
    (root / "c_api.py").write_text("CONFIRMS = 'c'\n")
    (root / "helpers.py").write_text("")
    (root / "pkg_rail" / "__init__.py").write_text("READER = 'pkg'\nRAILS = {'t': 1}\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("found_here")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == "found_here" or n.startswith("found_here.")]:
            del sys.modules[name]


def test_each_module_declaring_the_name_is_found_in_name_order_and_the_others_skipped(package: ModuleType) -> None:
    assert list(declared(package, "READER")) == ["a", "b", "pkg"]


def test_only_packages_or_only_a_suffix_when_asked(package: ModuleType) -> None:
    assert list(declared(package, "RAILS", packages=True)) == [{"t": 1}]
    assert list(declared(package, "READER", packages=True)) == ["pkg"]
    assert [m.__name__ for m in modules(package, suffix="_api")] == ["found_here.c_api"]
    assert list(declared(package, "CONFIRMS", suffix="_rail")) == []
