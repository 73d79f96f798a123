"""The capacity model's counters (unit tier: /proc of this very process and files under tmp_path; no socket)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from prizeflow_testkit.capacity import (
    CLK_TCK,
    ProcStat,
    Snapshot,
    frame_package,
    group_cpu_ticks,
    kafka_log_dirs,
    per_unit,
    proc_stat,
    process_table,
    top_frames,
    topic_log_bytes,
    tree_cpu_ticks,
)


def burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_this_process_group_s_cpu_grows_with_the_work_it_does() -> None:
    # This process's own ticks, read through the same table: under `make test` the process group holds every lane
    # (a non-interactive shell has no job control), whose exiting processes take their ticks out of a group sum.
    me = os.getpid()
    before = tree_cpu_ticks(me, process_table())[me]
    burn(0.3)
    after = tree_cpu_ticks(me, process_table())[me]
    assert (after - before) / CLK_TCK >= 0.2
    # The group counts this process's own ticks (not what it reaped: only the leader's reaped children are the group's).
    table = process_table()
    assert group_cpu_ticks(os.getpgrp(), table) >= table[me].own
    st = proc_stat(os.getpid())
    assert st is not None
    assert st.pgrp == os.getpgrp()


def test_a_process_tree_counts_its_root_with_what_it_reaped_and_each_child() -> None:
    table = {
        10: ProcStat(ppid=1, pgrp=10, own=5, reaped=100),
        11: ProcStat(ppid=10, pgrp=10, own=7, reaped=0),
        12: ProcStat(ppid=10, pgrp=10, own=3, reaped=0),
        20: ProcStat(ppid=1, pgrp=20, own=50, reaped=0),
    }
    assert tree_cpu_ticks(10, table) == {10: 105, 11: 7, 12: 3}
    assert group_cpu_ticks(10, table) == 100 + 5 + 7 + 3
    assert tree_cpu_ticks(99, table) == {}


def snapshot(**overrides: Any) -> Snapshot:
    zero = dict.fromkeys(("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted", "blks_read"), 0)
    base: dict[str, Any] = {
        "at": 0.0,
        "services": {"rewards": 0},
        "postgres": {1: 0, 2: 0},
        "postgres_db_of": {2: "pf_rewards"},
        "kafka": 0,
        "kafka_topics": {"game.rounds.e2e1": 0, "other": 0},
        "wal_lsn": 1000,
        "databases": {"pf_rewards": zero, "elsewhere": zero},
        "load_average": (1.0, 1.0, 1.0),
    }
    return Snapshot(**{**base, **overrides})


def test_a_phase_s_delta_attributes_postgres_and_kafka_to_the_platform() -> None:
    before = snapshot(postgres={1: 100, 2: 10, 3: 40}, postgres_db_of={2: "pf_rewards", 3: "elsewhere"})
    stats = {"xact_commit": 30, "xact_rollback": 0, "tup_inserted": 300, "tup_updated": 0, "tup_deleted": 0}
    after = snapshot(
        at=2.0,
        services={"rewards": 2 * CLK_TCK},
        # pid 3 exited: its 40 + 20 more ticks are in the postmaster's reaped counter now (100 -> 160)
        postgres={1: 160, 2: 10 + CLK_TCK, 4: 5},
        postgres_db_of={2: "pf_rewards", 4: "pf_rewards"},
        kafka=CLK_TCK // 2,
        kafka_topics={"game.rounds.e2e1": 4000, "other": 1000},
        wal_lsn=1000 + 8000,
        databases={
            "pf_rewards": {**stats, "blks_read": 0},
            "elsewhere": {**stats, "tup_inserted": 100, "blks_read": 0},
        },
    )
    d = after.delta(before, ".e2e1", {"rewards": "pf_rewards"})
    assert d["cpu_s"] == {"rewards": 2.0}
    pg = d["postgres"]
    assert pg["cpu_s_server"] == round((20 + CLK_TCK + 5) / CLK_TCK, 3)  # pid 3's last 20 ticks
    assert pg["cpu_s_platform_backends"] == round((CLK_TCK + 5) / CLK_TCK, 3)
    assert pg["platform_share_of_tuples_written"] == 0.75
    assert pg["wal_bytes_platform"] == 6000
    assert pg["by_service"]["rewards"]["xacts"] == 30
    assert d["kafka"] == {"cpu_s_broker": 0.5, "bytes_in_platform": 4000, "bytes_in_all_topics": 5000}

    per = per_unit(d, {"allocation": 1000}, idle={"rewards": 0.25})
    assert per["allocation"]["cpu_us_by_service"] == {"rewards": 2000.0}
    assert per["allocation"]["cpu_us_by_service_net_of_idle"] == {"rewards": 1500.0}
    assert per["allocation"]["postgres_wal_bytes"] == 6.0
    assert per["allocation"]["kafka_bytes_in"] == 4.0
    assert per["allocation"]["postgres_xacts"] == 0.03


def test_kafka_s_log_segments_are_summed_per_topic_and_its_dirs_read_from_its_properties(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for part, size in (("game.rounds.x-0", 100), ("game.rounds.x-1", 50), ("__consumer_offsets-3", 7)):
        (data / part).mkdir(parents=True)
        (data / part / "00000000000000000000.log").write_bytes(b"x" * size)
        (data / part / "00000000000000000000.index").write_bytes(b"\0" * 4096)  # preallocated: not data
    (data / "gone-0.abc-delete").mkdir()
    assert topic_log_bytes([data]) == {"game.rounds.x": 150, "__consumer_offsets": 7}
    assert kafka_log_dirs(os.getpid()) == []  # this process names no properties file


def test_the_top_frames_of_collapsed_stacks_are_shares_of_all_samples() -> None:
    collapsed = (
        "main (a.py:1);work (a.py:5);json (b.py:9) 6\nmain (a.py:1);work (a.py:5) 2\nmain (a.py:1);idle (c.py:2) 2\n"
    )
    top = top_frames(collapsed, top=2)
    assert top["samples"] == 10
    assert top["self"] == [["json (b.py:9)", 0.6], ["work (a.py:5)", 0.2]]
    assert top["inclusive"] == [["work (a.py:5)", 0.8], ["json (b.py:9)", 0.6]]  # main: in every sample
    assert top["self_by_package"] == [["b", 0.6], ["a", 0.2]]
    assert top_frames("") == {"samples": 0, "self": [], "inclusive": [], "self_by_package": []}


def test_a_frame_s_package_is_the_first_part_of_its_path() -> None:
    assert frame_package("execute (asyncpg/connection.py:377)") == "asyncpg"
    assert frame_package("apply (prizeflow_rewards/adapters/ledger_pg.py:200)") == "prizeflow_rewards"
    assert frame_package("_run_code (<frozen runpy>:88)") == "interpreter"
    assert frame_package("select (selectors.py:468)") == "selectors"
    assert frame_package('process 42:"python -m x"') == "process 42"


def test_the_load_generator_is_measured_apart_and_every_process_has_its_cost_per_event() -> None:
    before = snapshot(postgres={1: 0, 2: 0, 3: 0}, postgres_db_of={2: "pf_rewards", 3: "pf_payouts"}, load={"gen": 0})
    after = snapshot(
        at=1.0,
        services={"rewards": CLK_TCK},
        postgres={1: 0, 2: CLK_TCK // 2, 3: CLK_TCK // 4},
        postgres_db_of={2: "pf_rewards", 3: "pf_payouts"},
        kafka=CLK_TCK // 4,
        load={"gen": CLK_TCK // 2},
    )
    d = after.delta(before, ".e2e1", {"rewards": "pf_rewards", "payouts": "pf_payouts"})
    assert d["cpu_s_load"] == {"gen": 0.5}
    per = per_unit(d, {"claim": 1000})["claim"]
    assert per["cpu_us_load"] == {"gen": 500.0}
    assert per["postgres_cpu_us_by_service"] == {"rewards": 500.0, "payouts": 250.0}
    # Prizeflow 1,000 + its PostgreSQL backends 750 + the broker 250; the load generator is in none of them.
    assert per["cpu_us_prizeflow"] == 1000.0
    assert per["cpu_us_everything"] == 2000.0
    # A provider's emulator beside the services: by name, never in Prizeflow's figures.
    d["cpu_s"]["stripe-api"] = 0.25
    per = per_unit(d, {"claim": 1000}, prizeflow={"rewards"})["claim"]
    assert per["cpu_us_by_service"] == {"rewards": 1000.0, "stripe-api": 250.0}
    assert per["cpu_us_prizeflow"] == 1000.0
    assert per["cpu_us_emulators"] == 250.0
    assert per["cpu_us_everything"] == 2000.0
