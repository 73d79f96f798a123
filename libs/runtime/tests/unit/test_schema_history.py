"""Migrations are frozen history: what an old revision does can never change after it shipped.

The messaging steps every service's revisions call are pinned byte for byte, and no revision may import
anything that can change under it (the live tables in `prizeflow_runtime.db`, a service's own code)."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

import prizeflow_runtime.schema_history as history

HISTORY = Path(history.__file__).parent
REPO = Path(__file__).resolve().parents[4]

# A step that has shipped is never edited. To change the messaging schema, add a module and a revision in
# every service; then add its digest here. A digest that no longer matches means history was rewritten.
PINNED = {
    "messaging_0001.py": "27cf305f64c8a6c7c75371223501e0d69a4806aa3ac10c2dbd00d32a73a7a99e",
    "messaging_0002_outbox_delete_on_publish.py": "bf4fddefe24d6b9657fe0404006f1cf2a659e693256c646b449f7bbd7c2112b4",
    "messaging_0003_refusals.py": "b7685c9f199be0eebe13871776c9a8c952ae560ef3115b47509ceb23efafc1d3",
    "messaging_0004_admin_audit.py": "3adf819dbd2dbf5de91ef2287147be5a5ba601cf12878216dea29dd40b4f0468",
    "messaging_0005_inbox_partitions.py": "5d7263f770d029637d02e3cc6acced96c5297475615970999ae78e0c0212321d",
    "online_0001.py": "3dcef108da6d63ce96f6a761c62a8c0c57a2cbba295042d1b8080028fc9685b5",
    "online_0002.py": "7187c8f0dc5cd7008b15c8c48970341d785fa3f3789ebe6a1ef742dfc0c9d444",
}

# What a revision or a frozen step may import: libraries whose behaviour is versioned by the lock file, and
# the frozen steps themselves.
ALLOWED_IMPORTS = ("__future__", "typing", "alembic", "sqlalchemy", "prizeflow_runtime.schema_history")


def imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


def allowed(module: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in ALLOWED_IMPORTS)


def revisions() -> list[Path]:
    found = sorted(REPO.glob("services/*/migrations/versions/*.py"))
    assert len(found) >= 4, "no service revisions found: the repository layout moved"
    return found


@pytest.mark.parametrize("name", sorted(PINNED))
def test_a_shipped_messaging_step_is_never_edited(name: str) -> None:
    digest = hashlib.sha256((HISTORY / name).read_bytes()).hexdigest()
    assert digest == PINNED[name], f"{name} changed after it shipped: add a new step instead of editing it"


def test_every_step_in_the_package_is_pinned() -> None:
    steps = {p.name for pattern in ("messaging_*.py", "online_*.py") for p in HISTORY.glob(pattern)}
    assert steps == set(PINNED), "a new step must be pinned here once it ships"


@pytest.mark.parametrize("name", sorted(PINNED))
def test_a_step_imports_nothing_that_can_change(name: str) -> None:
    assert [m for m in imports(HISTORY / name) if not allowed(m)] == []


def test_no_revision_imports_live_code() -> None:
    offenders = {
        str(path.relative_to(REPO)): bad
        for path in revisions()
        if (bad := [m for m in imports(path) if not allowed(m)])
    }
    assert offenders == {}


def test_the_import_rule_catches_live_helpers() -> None:
    """The rule itself can fail: the helpers revisions used to import are not allowed."""
    assert not allowed("prizeflow_runtime.migrations")
    assert not allowed("prizeflow_runtime.db")
    assert not allowed("prizeflow_rewards.adapters.tables")
    assert allowed("prizeflow_runtime.schema_history.messaging_0001")
