"""`python -m <emulator>`: one way to start every emulator."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from prizeflow_emulator_kit.settings import SettingsError


@dataclass(frozen=True)
class Serving:
    """What to serve, and where."""

    app: web.Application
    host: str
    port: int


def run(name: str, build: Callable[[], Serving]) -> None:
    """Log to stderr as `name`, build the app from the environment — a bad setting is logged, naming it, and the
    process exits 2 — then serve until stopped (no access log: the emulators keep their own request logs)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log = logging.getLogger(name)
    try:
        serving = build()
    except SettingsError as err:
        log.error("invalid configuration: %s", err)
        sys.exit(2)
    log.info("listening on %s:%s", serving.host, serving.port)
    web.run_app(serving.app, host=serving.host, port=serving.port, access_log=None, print=None)


__all__ = ["Serving", "run"]
