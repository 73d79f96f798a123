"""Free TCP ports on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable

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
    """A port the kernel hands out as free, never one of `exclude` (ports already promised)."""
    excluded = set(exclude)
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in excluded:
            return port
    raise RuntimeError("could not find a free TCP port after 100 attempts")


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
