"""`python -m prizeflow_payouts` runs API + consumers + worker; `python -m prizeflow_payouts worker` the worker only."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from prizeflow_payouts.provider_spec import ProviderConfigError
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_runtime.logging import configure_logging
from prizeflow_runtime.settings import settings_or_exit

log = logging.getLogger("prizeflow_payouts")


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    settings = settings_or_exit(PayoutsSettings, "prizeflow-payouts")
    configure_logging(settings.service_name, level=settings.log_level, json_output=settings.log_json)
    try:
        if args[:1] == ["worker"]:
            worker_id = args[1] if len(args) > 1 else None
            asyncio.run(_worker(settings, worker_id))
        elif not args:
            from prizeflow_payouts.bootstrap import build
            from prizeflow_runtime.service import serve

            serve(build(settings), settings)
        else:
            print("usage: python -m prizeflow_payouts [worker [WORKER_ID]]", file=sys.stderr)  # noqa: T201
            raise SystemExit(2)
    except ProviderConfigError as err:
        log.critical("refusing to start: %s", err)
        print(f"prizeflow-payouts: refusing to start: {err}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None


async def _worker(settings: PayoutsSettings, worker_id: str | None) -> None:
    from prizeflow_payouts.bootstrap import run_worker
    from prizeflow_runtime.service import tune_gc

    tune_gc()  # as ServiceRuntime.start() does for the API process: keep the collector off the batch path
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(settings, stop, worker_id=worker_id)


if __name__ == "__main__":
    main()
