"""`python -m prizeflow_settlement`: consume game rounds, relay the outbox, serve the admin API."""

from __future__ import annotations

from prizeflow_runtime.logging import configure_logging
from prizeflow_runtime.service import serve
from prizeflow_runtime.settings import settings_or_exit
from prizeflow_settlement.bootstrap import build
from prizeflow_settlement.settings import SettlementSettings


def main() -> None:
    settings = settings_or_exit(SettlementSettings, "prizeflow-settlement")
    configure_logging(settings.service_name, level=settings.log_level, json_output=settings.log_json)
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
