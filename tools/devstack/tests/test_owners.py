"""What a killed test session or bench left (a database, a topic suffix) is dropped by the next one, on the real
PostgreSQL and Kafka the devstack provides; what a live owner holds is never touched."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from prizeflow_devstack import owners
from prizeflow_devstack.infra import Infra, sweep_orphans
from prizeflow_devstack.paths import find_root
from prizeflow_testkit import fetch

pytestmark = pytest.mark.integration


async def _topics(bootstrap: str, suffix: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if t.endswith((suffix, suffix + ".dlq")))
    finally:
        await admin.close()


async def _databases(infra: Infra, *names: str) -> list[str]:
    rows = await fetch(
        infra.postgres_url, "SELECT datname FROM pg_database WHERE datname = ANY($1::text[])", list(names)
    )
    return sorted(r["datname"] for r in rows)


async def test_a_killed_bench_s_database_and_topics_are_dropped_by_the_next_session_and_a_live_one_s_kept(
    infra: Infra,
) -> None:
    dead_db, dead_suffix = f"bench_{uuid.uuid4().hex[:8]}", f".bench-{uuid.uuid4().hex[:8]}"
    live_db = f"test_{uuid.uuid4().hex[:16]}"
    # A bench that claims and makes its database and topics, then is killed before its `finally` runs.
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from prizeflow_devstack import owners
        from prizeflow_devstack.infra import Infra, create_database
        from prizeflow_testkit.bench import provision_test_topics
        async def main():
            infra = Infra({infra.postgres_url!r}, {infra.kafka_bootstrap!r}, managed=True)
            owners.claim("database", {dead_db!r})
            await create_database(infra, {dead_db!r})
            owners.claim("topics", {dead_suffix!r})
            await provision_test_topics({infra.kafka_bootstrap!r}, {dead_suffix!r})
            os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(main())
        """
    )
    killed = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script], cwd=find_root(), capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    # This process holds another: alive, it is never an orphan.
    from prizeflow_devstack.infra import create_database, drop_database

    owners.claim("database", live_db)
    await create_database(infra, live_db)
    try:
        assert await _databases(infra, dead_db, live_db) == sorted([dead_db, live_db])
        assert await _topics(infra.kafka_bootstrap, dead_suffix)

        cleaned = await asyncio.to_thread(sweep_orphans, infra)
        assert {f"database {dead_db}", f"topics {dead_suffix}"} <= set(cleaned)
        assert f"database {live_db}" not in cleaned
        assert await _databases(infra, dead_db, live_db) == [live_db]
        assert await _topics(infra.kafka_bootstrap, dead_suffix) == []
        assert {o.name for o in owners.orphans()} & {dead_db, dead_suffix, live_db} == set()
    finally:
        await drop_database(infra, live_db)
        owners.release("database", live_db)


def test_an_owner_file_written_half_is_an_orphan_and_a_name_outside_the_pattern_is_refused(tmp_path: object) -> None:
    root = find_root()
    name = f"test_{uuid.uuid4().hex[:16]}"
    path = root / ".devstack" / "owners" / f"database-{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"pid": 1', encoding="utf-8")  # killed mid-write
    try:
        assert name in {o.name for o in owners.orphans()}
    finally:
        path.unlink(missing_ok=True)
    with pytest.raises(ValueError, match="invalid"):
        owners.claim("database", "x; DROP DATABASE postgres")
