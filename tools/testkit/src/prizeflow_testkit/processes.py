"""A process under test: started with its environment and a log file, ready once an HTTP URL answers 200 (or a
line shows up in its log, or not waited for at all), stopped with SIGTERM (then SIGKILL if it does not exit) or
killed outright as a crash.

The one runner of the tests and benchmarks: services, workers, the emulator, small apps of a library's tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 the kernel hands out as free."""
    from prizeflow_devstack.ports import pick_free_port

    return int(pick_free_port())


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else ""


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Until `url` answers 200; fails with the log's tail if `proc` exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - a local test URL
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready:\n{_tail(log)}")


def wait_log_line(line: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Until `line` appears in `log`; fails with the log's tail if `proc` exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode}:\n{_tail(log)}")
        time.sleep(0.1)
    raise AssertionError(f"{line!r} not logged:\n{_tail(log)}")


@dataclass
class Process:
    """`args` run with `env` over this process's environment (`inherit=False`: `env` alone), stdout and stderr
    appended to `log`. Ready once `ready_url` answers 200, or once `ready_line` is in the log; with neither,
    `start` returns as soon as the process is spawned. `new_session`: its own process group, which is what
    the signals go to (its children stop with it)."""

    args: list[str]
    env: Mapping[str, str]
    log: Path
    ready_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    ready_line: str | None = None
    cwd: Path | None = None
    inherit: bool = True
    new_session: bool = False

    def spawn(self) -> Process:
        """Start the process; do not wait for it to be ready."""
        env = {**os.environ, **self.env} if self.inherit else dict(self.env)
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.args,
                env=env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=self.new_session,
            )
        return self

    def wait_ready(self, timeout: float = 60.0) -> Process:
        """Until the readiness URL answers 200 or the readiness line is logged (neither: at once)."""
        proc = self._proc
        if self.ready_url is not None:
            wait_http(self.ready_url, proc, self.log, timeout)
        if self.ready_line is not None:
            wait_log_line(self.ready_line, proc, self.log, timeout)
        return self

    def start(self, timeout: float = 60.0) -> Process:
        """Spawn, then wait until ready."""
        return self.spawn().wait_ready(timeout)

    @property
    def _proc(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise RuntimeError(f"{self.args} was never started")
        return self.proc

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    def output(self) -> str:
        """Everything the process wrote so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        if self.running:
            if self.new_session:
                os.killpg(self._proc.pid, sig)
            else:
                self._proc.send_signal(sig)

    def wait(self, timeout: float | None = None) -> int:
        """Until the process exits on its own; its exit code (raises subprocess.TimeoutExpired)."""
        return self._proc.wait(timeout=timeout)

    def kill(self) -> int | None:
        """SIGKILL: no shutdown at all, as a crash."""
        self.signal(signal.SIGKILL)
        return None if self.proc is None else self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL if the process has not exited within `timeout` s; its exit code."""
        stop_all([self], timeout)
        return self.returncode


def stop_all(processes: Iterable[Process], timeout: float = 30.0) -> None:
    """SIGTERM to every one at once, then wait for each; SIGKILL to those not gone within `timeout` s."""
    procs = list(processes)
    for p in procs:
        p.signal(signal.SIGTERM)
    for p in procs:
        if p.proc is None:
            continue
        try:
            p.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.signal(signal.SIGKILL)
            p.proc.wait(timeout=30)


def local_tcp_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets, from /proc: which PostgreSQL sessions (`pg_stat_activity.
    client_port`) or Kafka connections are that process's."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def python_module(module: str, *args: str, env: Mapping[str, str], log: Path, port: int | None = None) -> Process:
    """`python -m module args…` with this interpreter; ready on `http://127.0.0.1:port/health/ready` if a port
    is given (the services' readiness probe), else not waited for."""
    url = None if port is None else f"http://127.0.0.1:{port}/health/ready"
    return Process([sys.executable, "-m", module, *args], env, log, url)


__all__ = ["Process", "free_port", "local_tcp_ports", "python_module", "stop_all", "wait_http", "wait_log_line"]
