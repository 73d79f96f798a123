"""`python -m prizeflow_sanctions_emulator`: serve the lists on SANCTIONS_EMULATOR_PORT (default 12130)."""

from __future__ import annotations

import os

from prizeflow_emulator_kit.runner import Serving, run
from prizeflow_emulator_kit.settings import env_port
from prizeflow_sanctions_emulator.server import create_app


def serve() -> Serving:
    port = env_port(os.environ, "SANCTIONS_EMULATOR_PORT", 12130)
    return Serving(create_app(), os.environ.get("SANCTIONS_EMULATOR_HOST", "127.0.0.1"), port)


def main() -> None:
    run("prizeflow_sanctions_emulator", serve)


if __name__ == "__main__":
    main()
