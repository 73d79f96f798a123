"""`python -m prizeflow_rewards`: HTTP API, Kafka consumers and the outbox relay in one process."""

from __future__ import annotations

from prizeflow_rewards.bootstrap import build
from prizeflow_rewards.settings import RewardsSettings
from prizeflow_runtime.logging import configure_logging
from prizeflow_runtime.service import serve
from prizeflow_runtime.settings import settings_or_exit


def main() -> None:
    settings = settings_or_exit(RewardsSettings, "prizeflow-rewards")
    configure_logging(settings.service_name, level=settings.log_level, json_output=settings.log_json)
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
