"""`python -m prizeflow_paypal_emulator`: serve the emulated PayPal Payouts API on PAYPAL_EMULATOR_PORT."""

from __future__ import annotations

from prizeflow_emulator_kit.runner import Serving, run
from prizeflow_paypal_emulator.server import Emulator, create_app
from prizeflow_paypal_emulator.settings import EmulatorSettings


def serve() -> Serving:
    settings = EmulatorSettings.from_env()
    return Serving(create_app(Emulator(settings)), settings.host, settings.port)


def main() -> None:
    run("prizeflow_paypal_emulator", serve)


if __name__ == "__main__":
    main()
