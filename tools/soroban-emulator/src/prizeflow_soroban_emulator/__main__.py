"""`python -m prizeflow_soroban_emulator`: serve the emulated Soroban RPC on SOROBAN_RPC_PORT."""

from __future__ import annotations

from prizeflow_emulator_kit.runner import Serving, run
from prizeflow_emulator_kit.settings import SettingsError
from prizeflow_soroban_emulator.ledger import RpcError
from prizeflow_soroban_emulator.server import build_emulator, create_app
from prizeflow_soroban_emulator.settings import settings_from_env


def serve() -> Serving:
    settings = settings_from_env()
    try:
        emulator = build_emulator(settings)
    except RpcError as err:
        raise SettingsError(f"SOROBAN_EMULATOR_ACCOUNTS: {err.message}") from None
    return Serving(create_app(emulator), settings.soroban_rpc_host, settings.soroban_rpc_port)


def main() -> None:
    run("prizeflow_soroban_emulator", serve)


if __name__ == "__main__":
    main()
