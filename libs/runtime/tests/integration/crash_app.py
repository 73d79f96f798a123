"""A consumer process for the crash test: applies `sample` events; can SIGKILL itself right after a DB commit.

Run: python crash_app.py <topic> <group>   (env DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, CRASH_AFTER_COMMIT=1)
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))

from sample import apply_thing

from prizeflow_runtime.broker import attach_consumer, create_broker
from prizeflow_runtime.consumer import ReliableConsumer
from prizeflow_runtime.db import create_engine, session_factory


async def main(topic: str, group: str) -> None:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    engine = create_engine(os.environ["DATABASE_URL"])

    async def crash() -> None:
        # The DB transaction has committed; the offset commit has not happened yet.
        print("committed-to-db; killing myself before the offset commit", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    consumer = ReliableConsumer(
        name=group,
        topics=[topic],
        session_factory=session_factory(engine),
        handler=apply_thing,
        after_commit=crash if os.environ.get("CRASH_AFTER_COMMIT") == "1" else None,
    )
    broker = create_broker(bootstrap, client_id=group)
    attach_consumer(broker, consumer)
    await broker.start()
    print("consuming", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await broker.stop()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
