"""The soak's /proc probe on this very process (unit tier: files under /proc, no socket, no process)."""

from __future__ import annotations

import os

from prizeflow_testkit.soak_probes import established_sockets, process_groups, process_resources


def test_a_process_group_is_found_with_its_memory_and_descriptors() -> None:
    groups = process_groups()
    assert os.getpid() in groups[os.getpgrp()]
    figures = process_resources(os.getpgrp(), {"kafka": 9, "postgres": 7}, groups=groups)
    assert figures["processes"] >= 1
    assert figures["rss_kb"] > 10_000  # a Python interpreter with pytest loaded
    assert figures["fds"] >= 3
    assert set(figures) == {"rss_kb", "processes", "fds", "kafka_connections", "postgres_connections"}


def test_established_sockets_map_inodes_to_remote_ports() -> None:
    assert all(inode >= 0 and 0 < port < 65536 for inode, port in established_sockets().items())


def test_a_process_missing_from_the_groups_is_read_on_its_own() -> None:
    figures = process_resources(os.getpid(), {}, sockets={}, groups={})
    assert figures["processes"] == 1  # a leader the listing missed (it started since) is read
