"""Finding what a package's modules declare, so that no list of rails is kept: a rail's module says what it is
(`READER`, `CONFIRMS`, `RAILS`, a conformance harness) and the code that needs it finds it here, by that name.

One loop for all of them: the modules directly under a package, in name order, each imported once."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from types import ModuleType
from typing import Any


def modules(package: ModuleType, *, packages: bool = False, suffix: str = "") -> Iterator[ModuleType]:
    """Each module directly under `package` (only sub-packages when `packages`; only names ending in `suffix`
    when given), imported, in name order."""
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if (packages and not info.ispkg) or not info.name.endswith(suffix):
            continue
        yield importlib.import_module(f"{package.__name__}.{info.name}")


def declared(package: ModuleType, name: str, *, packages: bool = False, suffix: str = "") -> Iterator[Any]:
    """The value each module directly under `package` declares as `name`, in module order; a module that does not
    declare it is skipped."""
    for module in modules(package, packages=packages, suffix=suffix):
        if (value := getattr(module, name, None)) is not None:
            yield value


__all__ = ["declared", "modules"]
