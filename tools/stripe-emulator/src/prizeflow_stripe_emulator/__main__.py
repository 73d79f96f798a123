"""`python -m prizeflow_stripe_emulator`: serve the emulated Stripe API on STRIPE_EMULATOR_PORT."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from prizeflow_stripe_emulator.server import Emulator, create_app
from prizeflow_stripe_emulator.settings import EmulatorSettings, SettingsError

log = logging.getLogger("prizeflow_stripe_emulator")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = EmulatorSettings.from_env()
    except SettingsError as err:
        log.error("invalid configuration: %s", err)
        sys.exit(2)
    emulator = Emulator(settings)
    log.info("stripe emulator listening on %s:%s", settings.host, settings.port)
    web.run_app(create_app(emulator), host=settings.host, port=settings.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
