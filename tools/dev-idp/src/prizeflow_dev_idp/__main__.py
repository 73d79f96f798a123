"""`python -m prizeflow_dev_idp`: serve the dev identity provider on DEV_IDP_PORT (dev profile only)."""

from __future__ import annotations

import logging
import sys

from prizeflow_dev_idp.settings import IdpSettings, SettingsError

log = logging.getLogger("prizeflow_dev_idp")


def main() -> None:
    try:
        settings = IdpSettings.from_env()
    except SettingsError as err:
        print(f"prizeflow-dev-idp: refusing to start: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    import uvicorn

    from prizeflow_dev_idp.app import create_app
    from prizeflow_runtime.logging import configure_logging

    configure_logging("dev-idp", json_output=settings.log_json)
    app = create_app(settings)
    log.info("dev identity provider listening on %s (issuer %s)", settings.public_url, settings.issuer)
    # No access log: the console's callback and the authorize requests carry codes, states and challenges.
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
