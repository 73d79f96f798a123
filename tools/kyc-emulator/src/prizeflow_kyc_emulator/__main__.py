"""`python -m prizeflow_kyc_emulator`: serve the emulated identity-verification API on KYC_EMULATOR_PORT."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from prizeflow_kyc_emulator.server import Emulator, create_app
from prizeflow_kyc_emulator.settings import EmulatorSettings, SettingsError

log = logging.getLogger("prizeflow_kyc_emulator")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = EmulatorSettings.from_env()
    except SettingsError as err:
        log.error("invalid configuration: %s", err)
        sys.exit(2)
    emulator = Emulator(settings)
    log.info("kyc emulator listening on %s:%s", settings.host, settings.port)
    web.run_app(create_app(emulator), host=settings.host, port=settings.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
