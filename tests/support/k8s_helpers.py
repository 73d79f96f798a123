"""tests/deploy/test_k8s.py's rendering helpers for the other deploy tests: tests/ is not a package, so the module
is loaded by path, once, under one name (the overlays it renders are cached in it, and its dataclasses look their
module up). Any other tests/deploy module's helpers likewise (`deploy_module`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

NAME = "_prizeflow_k8s_helpers"


def deploy_module(stem: str, name: str | None = None) -> ModuleType:
    """tests/deploy/<stem>.py, loaded once under `name` (default `_prizeflow_<stem>`)."""
    name = name or f"_prizeflow_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "deploy" / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def k8s_helpers() -> ModuleType:
    return deploy_module("test_k8s", NAME)
