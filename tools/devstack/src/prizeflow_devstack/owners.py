"""Who owns a throwaway database or topic suffix, so that what a killed process left is cleaned by the next one.

A test session, a bench or a drill makes databases (`test_…`, `tmpl_…`, `<bench>_…`) and topic suffixes
(`.t…`, `.bench-…`) on the devstack's PostgreSQL and Kafka and drops them when it ends. Killed (SIGKILL, a CI
timeout, an OOM), it ends without dropping them: one killed bench day left 2.5 GB of databases and 2.5 GB of topics.
So each is claimed first: a file `.devstack/owners/<kind>-<name>.json` with the owner's pid, its start time and the
machine's boot id. `sweep` drops what an owner that no longer runs left, and is run by every test session and bench
as it starts (what a live owner holds is never touched, whichever checkout it runs from: the files are this
checkout's, the resources this devstack's).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from prizeflow_devstack.paths import Paths, resolve_root
from prizeflow_devstack.procs import pid_alive, start_ticks

Kind = Literal["database", "topics"]
_NAME: Final = re.compile(r"^[a-z0-9_.-]{1,80}$")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"


def _dir(root: Path | None) -> Path:
    return Paths(resolve_root(root)).base / "owners"


def _file(root: Path | None, kind: Kind, name: str) -> Path:
    if not _NAME.match(name):
        raise ValueError(f"invalid {kind} name {name!r}")
    return _dir(root) / f"{kind}-{name}.json"


def claim(kind: Kind, name: str, *, root: Path | None = None) -> None:
    """This process owns `name` until it releases it (or dies: then the next `sweep` drops it)."""
    path = _file(root, kind, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    # written whole or not at all: a sweep beside it must never read a live owner's half-written file
    staged = path.with_name(f".{path.name}.{pid}")
    staged.write_text(record_of(pid), encoding="utf-8")
    staged.replace(path)


def record_of(pid: int) -> str:
    """What names process `pid` as an owner: its pid, its start time and the machine's boot."""
    return json.dumps({"pid": pid, "ticks": start_ticks(pid), "boot": _boot_id()})


def runs(record: str) -> bool:
    """Whether the owner `record` names still runs (another boot's pid is nobody's; an unreadable record was written
    by a process killed mid-write)."""
    try:
        owner = json.loads(record)
        return bool(owner.get("boot") == _boot_id() and pid_alive(int(owner["pid"]), owner.get("ticks")))
    except (ValueError, KeyError, TypeError):
        return False


def release(kind: Kind, name: str, *, root: Path | None = None) -> None:
    _file(root, kind, name).unlink(missing_ok=True)


@dataclass(frozen=True)
class Orphan:
    kind: Kind
    name: str
    path: Path


def orphans(*, root: Path | None = None) -> list[Orphan]:
    """What owners that no longer run claimed (another boot's pid is nobody's)."""
    found: list[Orphan] = []
    directory = _dir(root)
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        kind, _, name = path.stem.partition("-")
        try:
            alive = runs(path.read_text(encoding="utf-8"))
        except OSError:
            alive = False
        if not alive and kind in ("database", "topics") and _NAME.match(name):
            found.append(Orphan(kind, name, path))  # type: ignore[arg-type]
    return found


async def sweep(
    *,
    drop_database: Callable[[str], Awaitable[None]],
    delete_topics: Callable[[str], Awaitable[object]],
    root: Path | None = None,
) -> list[str]:
    """Drop every database and delete every topic suffix an owner that no longer runs left; what was cleaned."""
    cleaned = []
    for orphan in orphans(root=root):
        if orphan.kind == "database":
            await drop_database(orphan.name)
        else:
            await delete_topics(orphan.name)
        orphan.path.unlink(missing_ok=True)
        cleaned.append(f"{orphan.kind} {orphan.name}")
    return cleaned


__all__ = ["Orphan", "claim", "orphans", "record_of", "release", "runs", "sweep"]
