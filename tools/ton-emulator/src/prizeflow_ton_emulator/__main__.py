"""`python -m prizeflow_ton_emulator`: serve the emulated TON HTTP API on TON_EMULATOR_PORT."""

from __future__ import annotations

import logging

from aiohttp import web

from prizeflow_ton_emulator.server import build_chain, create_app
from prizeflow_ton_emulator.settings import EmulatorSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = EmulatorSettings()
    web.run_app(
        create_app(build_chain(settings), settings),
        host=settings.ton_emulator_host,
        port=settings.ton_emulator_port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
