"""`python -m prizeflow_signer`: consume signature requests, sign or refuse, relay the outbox."""

from __future__ import annotations

from prizeflow_runtime.logging import configure_logging
from prizeflow_runtime.service import serve
from prizeflow_runtime.settings import settings_or_exit
from prizeflow_signer.bootstrap import build
from prizeflow_signer.settings import SignerSettings


def main() -> None:
    settings = settings_or_exit(SignerSettings, "prizeflow-signer")
    configure_logging(settings.service_name, level=settings.log_level, json_output=settings.log_json)
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
