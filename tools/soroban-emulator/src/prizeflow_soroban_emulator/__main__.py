"""`python -m prizeflow_soroban_emulator`: serve the emulated Soroban RPC on SOROBAN_RPC_PORT."""

from __future__ import annotations

import logging

from aiohttp import web

from prizeflow_soroban_emulator.server import build_emulator, create_app
from prizeflow_soroban_emulator.settings import EmulatorSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = EmulatorSettings()
    emulator = build_emulator(settings)
    web.run_app(
        create_app(emulator),
        host=settings.soroban_rpc_host,
        port=settings.soroban_rpc_port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
