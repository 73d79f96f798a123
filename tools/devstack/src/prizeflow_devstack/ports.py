"""Free TCP ports on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from prizeflow_devstack import owners

HOST = "127.0.0.1"


def port_is_free(port: int, host: str = HOST) -> bool:
    """True if a server could bind `port` now (SO_REUSEADDR, as PostgreSQL and Kafka do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port(exclude: Iterable[int] = (), host: str = HOST) -> int:
    """A free port outside the kernel's ephemeral range, never one of `exclude` (ports already promised).

    Asking the kernel for port 0 hands out a port from the ephemeral range, which every outgoing connection on the
    machine also draws from: between the pick and the listener's bind (a compose tier starting a minute later) a
    client of another test lane can take it as its local port, and the listener fails with "address already in
    use". A port below (or above) that range is only ever taken by an explicit bind, so it stays free until a
    deliberate listener, which the free-check catches, claims it.

    A picked port is also promised, machine-wide, to the process that picked it for as long as that process lives
    (`promised_dir()`): no other process picks it, even while nothing listens on it (a listener not bound yet, or a
    service the process stopped and will start again on the same address: a restore drill stops its services for a
    minute, and a port another lane picked in that minute failed the restart with "address already in use")."""
    excluded = set(exclude)
    candidates = _outside_ephemeral()
    if candidates:
        rng = random.SystemRandom()
        for _ in range(200):
            port = rng.choice(candidates)
            if port not in excluded and port_is_free(port, host) and _promise(port):
                return port
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in excluded:
            return port
    raise RuntimeError("could not find a free TCP port after 100 attempts")


def promised_dir() -> Path:
    """Where picked ports are promised: one file per port holding its process's owner record (`owners.record_of`).
    Ports are the machine's, so this is too (not a checkout's): every checkout and lane on the machine reads the same
    promises. One directory per user: another user's directory is not ours to write, nor its dead promises to remove."""
    default = Path(tempfile.gettempdir()) / f"prizeflow-ports-{os.getuid()}"
    return Path(os.environ.get("PRIZEFLOW_PORTS_DIR") or default)


def _promise(port: int) -> bool:
    """Promise `port` to this process unless another promise stands: its process alive (a file being written is a
    promise too). A promise of a process that died is taken over. This process's own earlier promise stands as
    well: a port is handed out once."""
    directory = promised_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / str(port)
    pid = os.getpid()
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if _promise_stands(path):
                return False
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(owners.record_of(pid))
        return True
    return False


def _promise_stands(path: Path) -> bool:
    try:
        record = path.read_text(encoding="utf-8")
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    return owners.runs(record) or (not record and age < 10)  # empty and young: being written


_LOWEST = 15000  # below: registered services' well-known ports (PostgreSQL 5432, Kafka 9092, Prometheus 9090, ...)


def _outside_ephemeral() -> range:
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    below = range(_LOWEST, max(_LOWEST, low))
    above = range(high + 1, 65536)
    return below if len(below) >= len(above) else above


def remembered_or_free(remembered: int | None, exclude: Iterable[int] = ()) -> int:
    """Keep the remembered port when it can still be bound, so restarts keep their address."""
    excluded = set(exclude)
    if remembered is not None and remembered not in excluded and port_is_free(remembered):
        return remembered
    return pick_free_port(excluded)


def tcp_answers(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False
