"""A small service on `ServiceRuntime`, run as its own process by the availability tests.

It consumes `sample` events into `effects` (the runtime's consumer, inbox and outbox relay) and serves
`GET /effects/count` (admin), which reads the database. Configured like any service, from the environment.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from litestar import get
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parent))

from sample import SAMPLE_TOPIC, apply_thing

from prizeflow_runtime.auth import Role, require_roles
from prizeflow_runtime.logging import configure_logging
from prizeflow_runtime.service import ServiceRuntime, serve
from prizeflow_runtime.settings import ServiceSettings


def main() -> None:
    settings = ServiceSettings(service_name="availability")
    configure_logging("availability", level=settings.log_level, json_output=settings.log_json)
    rt = ServiceRuntime(settings)
    rt.add_consumer("availability", [SAMPLE_TOPIC.name], handler=apply_thing)

    @get("/effects/count", guards=[require_roles(Role.ADMIN)])
    async def count() -> dict[str, Any]:
        async with rt.sessions() as session:
            return {"effects": int(await session.scalar(text("SELECT count(*) FROM effects")) or 0)}

    serve(rt.http_app([count]), settings)


if __name__ == "__main__":
    main()
