"""A PostgreSQL cluster of our own, from the system binaries, under `.devstack/postgres/`."""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prizeflow_devstack.paths import Paths
from prizeflow_devstack.ports import HOST, remembered_or_free
from prizeflow_devstack.procs import cmdline, pid_alive, start_ticks, tail, terminate
from prizeflow_devstack.state import State

PG_USER = "postgres"
_DEVSTACK_CONF = "devstack.conf"


class PostgresError(RuntimeError):
    """PostgreSQL could not be provisioned; the message carries the log tail."""


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def find_bin_dir() -> Path:
    """`PG_BIN_DIR`, else `pg_config --bindir` if it has initdb, else the newest /usr/lib/postgresql/*/bin."""
    if explicit := os.environ.get("PG_BIN_DIR"):
        bin_dir = Path(explicit)
        if not (bin_dir / "initdb").is_file():
            raise PostgresError(f"PG_BIN_DIR={explicit} has no initdb")
        return bin_dir
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            out = None
        if out is not None and (Path(out.stdout.strip()) / "initdb").is_file():
            return Path(out.stdout.strip())
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").is_file()]
    if candidates:
        return max(candidates, key=_version_key)
    raise PostgresError("PostgreSQL server binaries not found: install postgresql (initdb, pg_ctl) or set PG_BIN_DIR")


def as_root() -> bool:
    return os.geteuid() == 0


def pg_argv(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the `postgres` user when we are root."""
    return ["runuser", "-u", PG_USER, "--", *argv] if as_root() else argv


def chown_tree(path: Path) -> None:
    if not as_root():
        return
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError as err:
        raise PostgresError("running as root but there is no `postgres` system user to run PostgreSQL") from err
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)


def socket_dir(paths: Paths) -> Path:
    """Inside `.devstack`, unless the path would overflow the 107-byte unix socket limit."""
    preferred = paths.pg_dir / "run"
    if len(str(preferred / ".s.PGSQL.65535")) < 100:
        return preferred
    digest = hashlib.sha256(str(paths.root).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"prizeflow-pg-{digest}"


def _run(argv: list[str], paths: Paths, what: str, timeout: float = 120) -> None:
    result = subprocess.run(
        pg_argv(argv), cwd=paths.pg_dir, capture_output=True, text=True, check=False, timeout=timeout
    )
    if result.returncode != 0:
        raise PostgresError(
            f"{what} failed (exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}\n"
            f"--- tail of {paths.pg_log} ---\n{tail(paths.pg_log)}"
        )


@dataclass(frozen=True)
class Postmaster:
    pid: int
    port: int


def running_postmaster(paths: Paths) -> Postmaster | None:
    """The postmaster recorded in `postmaster.pid`, if it is alive and really a postgres process."""
    try:
        lines = (paths.pg_data / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, IndexError, ValueError):
        return None
    if pid_alive(pid) and "postgres" in cmdline(pid):
        return Postmaster(pid=pid, port=port)
    return None


def _initdb(paths: Paths, bin_dir: Path) -> None:
    """initdb into a scratch dir, then rename: an interrupted initdb never leaves a half cluster."""
    scratch = paths.pg_dir / "data.init"
    shutil.rmtree(scratch, ignore_errors=True)
    if paths.pg_data.exists():
        shutil.rmtree(paths.pg_data)
    scratch.mkdir(mode=0o700)
    chown_tree(paths.pg_dir)
    _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(scratch),
            "--username",
            PG_USER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
        ],
        paths,
        "initdb",
    )
    conf = scratch / "postgresql.conf"
    with conf.open("a", encoding="utf-8") as handle:
        handle.write(f"\ninclude_if_exists = '{_DEVSTACK_CONF}'\n")
    scratch.rename(paths.pg_data)


def _write_config(paths: Paths, port: int) -> None:
    sock = socket_dir(paths)
    sock.mkdir(parents=True, exist_ok=True)
    (paths.pg_data / _DEVSTACK_CONF).write_text(
        "# written by prizeflow-devstack at every start\n"
        f"listen_addresses = '{HOST}'\n"
        f"port = {port}\n"
        f"unix_socket_directories = '{sock}'\n"
        "max_connections = 300\n"
        "shared_buffers = 256MB\n"
        "fsync = on\n"
        "log_min_messages = warning\n"
        "log_connections = off\n"
        "log_line_prefix = '%m [%p] %q%u@%d '\n",
        encoding="utf-8",
    )
    chown_tree(paths.pg_dir)
    if sock != paths.pg_dir / "run":
        chown_tree(sock)


def start_postgres(paths: Paths, state: State) -> Postmaster:
    """Start (initdb first if needed) or adopt the running cluster; updates `state` in place."""
    paths.pg_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(state.postgres.bin_dir) if state.postgres.bin_dir else find_bin_dir()
    if not (bin_dir / "pg_ctl").is_file():
        bin_dir = find_bin_dir()
    running = running_postmaster(paths)
    if running is None:
        if not (paths.pg_data / "PG_VERSION").is_file():
            _initdb(paths, bin_dir)
        port = remembered_or_free(state.postgres.port, exclude=state.used_ports() - {state.postgres.port or -1})
        _write_config(paths, port)
        print(f"devstack: starting PostgreSQL on {HOST}:{port}", file=sys.stderr)
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "start",
                "-D",
                str(paths.pg_data),
                "-l",
                str(paths.pg_log),
                "-w",
                "-t",
                "60",
            ],
            paths,
            "pg_ctl start",
        )
        running = running_postmaster(paths)
        if running is None:
            raise PostgresError(f"pg_ctl reported success but no postmaster runs\n{tail(paths.pg_log)}")
    state.postgres.port = running.port
    state.postgres.pid = running.pid
    state.postgres.start_ticks = start_ticks(running.pid)
    state.postgres.bin_dir = str(bin_dir)
    return running


def stop_postgres(paths: Paths, state: State) -> None:
    """`pg_ctl stop -m fast`; SIGKILL the postmaster if that fails. Keeps the port in state."""
    running = running_postmaster(paths)
    if running is not None:
        bin_dir = Path(state.postgres.bin_dir) if state.postgres.bin_dir else find_bin_dir()
        try:
            _run(
                [str(bin_dir / "pg_ctl"), "stop", "-D", str(paths.pg_data), "-m", "fast", "-w", "-t", "60"],
                paths,
                "pg_ctl stop",
            )
        except (PostgresError, subprocess.TimeoutExpired):
            terminate(running.pid, group=False, grace=5.0)
    state.postgres.pid = None
    state.postgres.start_ticks = None
