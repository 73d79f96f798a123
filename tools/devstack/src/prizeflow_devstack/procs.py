"""Process helpers: liveness that survives pid reuse, group termination, log tails, sync→async bridge."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

_T = TypeVar("_T")


def start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19])


def _state_char(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


# Processes started to outlive the call that started them (Kafka, services): tracked by pid (and start ticks)
# in the devstack state from then on and reaped by `pid_alive`. Their Popen objects are kept here so none is
# collected while its process runs (which would warn that the process was abandoned).
_DETACHED: list[subprocess.Popen[bytes]] = []


def spawn_detached(argv: list[str], **kwargs: object) -> int:
    """Start `argv` in its own session (Ctrl-C in the terminal is ours to handle) and return its pid."""
    proc = subprocess.Popen(argv, start_new_session=True, **kwargs)  # type: ignore[call-overload]
    _DETACHED[:] = [p for p in _DETACHED if p.poll() is None]
    _DETACHED.append(proc)
    return int(proc.pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int | None, ticks: int | None = None) -> bool:
    """Alive, not a zombie, and (when `ticks` is known) the very process we started."""
    if pid is None or pid <= 0:
        return False
    _reap(pid)
    state = _state_char(pid)
    if state is None or state in {"Z", "X"}:
        return False
    return ticks is None or start_ticks(pid) == ticks


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def pids_matching(fragment: str) -> list[int]:
    """Pids whose command line contains `fragment` (a path unique to this repo's devstack). An absolute path matches
    only where a path begins (the line's start, after a space, `=`, `:` or a quote): another checkout whose path ends
    with this one's (`/check/work/main` holds `/work/main`) is never taken for this one, nor stopped with it."""
    me = os.getpid()
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [pid for pid in pids if pid != me and occurs(fragment, cmdline(pid))]


def occurs(fragment: str, line: str) -> bool:
    """Whether `fragment` is in the command line `line`, an absolute path only where a path begins."""
    if not fragment.startswith("/"):
        return fragment in line
    return re.search(r"(?:^|[\s=:'\"])" + re.escape(fragment), line) is not None


def wait_dead(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return not any(pid_alive(p) for p in pids)


def terminate(pid: int, *, group: bool, grace: float) -> bool:
    """SIGTERM (to the process group when it leads one), then SIGKILL after `grace`. True if gone."""

    with contextlib.suppress(OSError):
        group = group and os.getpgid(pid) == pid  # only a group leader's pid names its group

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    if not pid_alive(pid):
        return True
    send(signal.SIGTERM)
    if wait_dead([pid], grace):
        return True
    send(signal.SIGKILL)
    return wait_dead([pid], 5.0)


def tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])


def run_sync(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine from sync code, also when the caller is itself inside an event loop."""

    async def runner() -> _T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(runner())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, runner()).result()
