"""A writer for the publish-after-commit crash test: commits events, then SIGKILLs itself before publishing them.

Run: python publish_crash_app.py <topic>   (env DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS)
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))

from sample import thing

from prizeflow_runtime.db import create_engine, session_factory
from prizeflow_runtime.outbox import add_events, idempotent_producer, publish_after_commit
from prizeflow_runtime.outbox_publisher import OutboxPublisher


class KilledBeforePublishing(OutboxPublisher):
    """The real publisher, killed where a crash hurts most: the transaction committed, nothing reached Kafka."""

    async def _send(self, records: Iterable[tuple[str, bytes, Any, bytes]]) -> None:
        print("committed; killing myself before the publish", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


async def main(topic: str) -> None:
    engine = create_engine(os.environ["DATABASE_URL"])
    producer = idempotent_producer(os.environ["KAFKA_BOOTSTRAP_SERVERS"])
    await producer.start()
    publisher = KilledBeforePublishing(database_url=os.environ["DATABASE_URL"], producer=lambda: producer)
    publish_after_commit(engine, publisher)
    running = asyncio.create_task(publisher.run())
    async with session_factory(engine)() as session, session.begin():
        await add_events(
            session, [thing("a1", correlation_id="key-a"), thing("b1", correlation_id="key-b")], topic=topic
        )
    await running  # the publisher kills the process before it returns


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
