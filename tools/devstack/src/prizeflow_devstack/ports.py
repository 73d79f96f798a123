"""Free TCP ports on 127.0.0.1."""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Iterable
from pathlib import Path

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
    deliberate listener, which the free-check catches, claims it."""
    excluded = set(exclude)
    candidates = _outside_ephemeral()
    if candidates:
        rng = random.SystemRandom()
        for _ in range(200):
            port = rng.choice(candidates)
            if port not in excluded and port_is_free(port, host):
                return port
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in excluded:
            return port
    raise RuntimeError("could not find a free TCP port after 100 attempts")


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
