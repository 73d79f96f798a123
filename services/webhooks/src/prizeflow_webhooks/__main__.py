"""`python -m prizeflow_webhooks`: the webhook ingress, its outbox relay and the operators' API."""

from __future__ import annotations

import logging
import sys

from prizeflow_runtime.logging import configure_logging
from prizeflow_runtime.service import serve
from prizeflow_runtime.settings import settings_or_exit
from prizeflow_webhooks.adapters.config import ProvidersConfigError
from prizeflow_webhooks.settings import WebhooksSettings

log = logging.getLogger("prizeflow_webhooks")


def main() -> None:
    settings = settings_or_exit(WebhooksSettings, "prizeflow-webhooks")
    configure_logging(settings.service_name, level=settings.log_level, json_output=settings.log_json)
    from prizeflow_webhooks.bootstrap import build

    try:
        app = build(settings)
    except ProvidersConfigError as err:
        log.critical("refusing to start: %s", err)
        print(f"prizeflow-webhooks: refusing to start: {err}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
    serve(app, settings)


if __name__ == "__main__":
    main()
