"""tests/deploy/test_k8s.py's rendering helpers for the other deploy tests: tests/ is not a package, so the module
is loaded by path, once, under one name (the overlays it renders are cached in it, and its dataclasses look their
module up)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

NAME = "_prizeflow_k8s_helpers"


def k8s_helpers() -> ModuleType:
    if NAME in sys.modules:
        return sys.modules[NAME]
    path = Path(__file__).resolve().parents[1] / "deploy" / "test_k8s.py"
    spec = importlib.util.spec_from_file_location(NAME, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module
    spec.loader.exec_module(module)
    return module
