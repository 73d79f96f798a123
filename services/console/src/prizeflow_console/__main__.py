"""`python -m prizeflow_console`: the web console."""

from __future__ import annotations

from prizeflow_console.settings import ConsoleSettings
from prizeflow_runtime.logging import configure_logging
from prizeflow_runtime.settings import settings_or_exit


def main() -> None:
    settings = settings_or_exit(ConsoleSettings, "prizeflow-console")
    configure_logging(settings.service_name, level=settings.log_level, json_output=settings.log_json)
    from prizeflow_console.bootstrap import build
    from prizeflow_runtime.http_server import run

    run(build(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
