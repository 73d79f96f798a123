"""`python -m prizeflow_sanctions_emulator`: serve the lists on SANCTIONS_EMULATOR_PORT (default 12130)."""

from __future__ import annotations

import logging
import os
import sys

from aiohttp import web

from prizeflow_sanctions_emulator.server import create_app

log = logging.getLogger("prizeflow_sanctions_emulator")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    raw = os.environ.get("SANCTIONS_EMULATOR_PORT", "12130")
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        log.error("invalid configuration: SANCTIONS_EMULATOR_PORT=%r is not a port", raw)
        sys.exit(2)
    host = os.environ.get("SANCTIONS_EMULATOR_HOST", "127.0.0.1")
    log.info("sanctions lists emulator listening on %s:%s", host, raw)
    web.run_app(create_app(), host=host, port=int(raw), access_log=None, print=None)


if __name__ == "__main__":
    main()
