"""`python -m prizeflow_ton_emulator`: serve the emulated TON HTTP API on TON_EMULATOR_PORT."""

from __future__ import annotations

from prizeflow_emulator_kit.runner import Serving, run
from prizeflow_emulator_kit.settings import SettingsError
from prizeflow_ton_emulator.chain import ApiError
from prizeflow_ton_emulator.server import build_chain, create_app
from prizeflow_ton_emulator.settings import settings_from_env


def serve() -> Serving:
    settings = settings_from_env()
    try:
        chain = build_chain(settings)
    except (ApiError, KeyError, ValueError) as err:
        raise SettingsError(f"TON_EMULATOR_GENESIS: {err}") from None
    return Serving(create_app(chain, settings), settings.ton_emulator_host, settings.ton_emulator_port)


def main() -> None:
    run("prizeflow_ton_emulator", serve)


if __name__ == "__main__":
    main()
