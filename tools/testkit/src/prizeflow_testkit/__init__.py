"""Prizeflow testkit: what tests and benchmarks share, never a dependency of a service or library.

The generic helpers are re-exported here (`from prizeflow_testkit import eventually, read_topic`); the ones tied
to one service live in their own modules and import it: `events` (example payloads of every contract event),
`rewards`, `payouts`, `stellar` (the Soroban emulator and the signer as processes, funded accounts).
"""

from prizeflow_testkit.db import fetch
from prizeflow_testkit.http import public_routes, unauthenticated_answers, wait_ready
from prizeflow_testkit.kafka import (
    committed_offsets,
    consumer_group_lags,
    end_offsets,
    header,
    provision_test_topics,
    read_topic,
    wait_caught_up,
)
from prizeflow_testkit.processes import Process, free_port, python_module, stop_all, wait_http
from prizeflow_testkit.tokens import dev_bearer
from prizeflow_testkit.waits import eventually

__all__ = [
    "Process",
    "committed_offsets",
    "consumer_group_lags",
    "dev_bearer",
    "end_offsets",
    "eventually",
    "fetch",
    "free_port",
    "header",
    "provision_test_topics",
    "public_routes",
    "python_module",
    "read_topic",
    "stop_all",
    "unauthenticated_answers",
    "wait_caught_up",
    "wait_http",
    "wait_ready",
]
