"""CPU of one idle service process, in CPU-milliseconds per second (issue 46's idle goal: <= 10 each).

    uv run --frozen python tests/bench/idle_cpu.py --service settlement --seconds 60

Starts the service alone as a `Platform` (its own database, migrated, and topics, on the devstack's PostgreSQL and
Kafka: `eval "$(uv run --frozen prizeflow-dev env)"` first), waits until it is ready and `--warmup` seconds more
(start-up work and the consumers' first rebalance are not idle), then reads utime+stime of the process from
/proc/<pid>/stat at the start and the end of `--seconds`, and prints the figure as JSON. Nothing calls the service
meanwhile: what it costs is its own background work (Kafka long polls and heartbeats, its relay, its jobs).
On a shared machine the figure moves with the neighbours' load: compare runs made back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from prizeflow_devstack.infra import ensure_infra
from prizeflow_devstack.platform import Platform

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (fields 14 and 15 of /proc/<pid>/stat, after the command name's parentheses)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--service", default="settlement")
    parser.add_argument("--with", dest="companions", nargs="*", default=[], help="services it needs to start")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--profile", type=Path, help="also record where the time goes (py-spy, collapsed stacks)")
    args = parser.parse_args()
    infra = ensure_infra()
    with tempfile.TemporaryDirectory(prefix="idle-cpu-") as workdir:
        platform = Platform(infra=infra, workdir=Path(workdir), services=(args.service, *args.companions)).start()
        try:
            popen = platform.procs[args.service].popen
            assert popen is not None
            time.sleep(args.warmup)
            before, started = cpu_seconds(popen.pid), time.monotonic()
            if args.profile is not None:
                spy = ["py-spy", "record", "--nonblocking", "-r", "200", "-f", "raw", "-o", str(args.profile)]
                subprocess.run([*spy, "-d", str(int(args.seconds)), "-p", str(popen.pid)], check=True)
            else:
                time.sleep(args.seconds)
            used, elapsed = cpu_seconds(popen.pid) - before, time.monotonic() - started
        finally:
            platform.stop()
    print(
        json.dumps(
            {"service": args.service, "seconds": round(elapsed, 1), "cpu_ms_per_s": round(used * 1000 / elapsed, 2)}
        )
    )


if __name__ == "__main__":
    main()
