"""What the restore drill runs on (docs/runbooks/restore.md, tests/runbooks/test_restore_drill.py): an S3-compatible
object store on localhost (moto's server), a PostgreSQL cluster of the drill's own (WAL archiving is a whole
cluster's setting, and a point-in-time restore brings back a whole cluster, so the devstack's shared one will not
do), and the barman-cloud tools that archive, back up and restore it, the same tools CloudNativePG's barman-cloud
plugin runs in its pods.

PostgreSQL refuses to run as root: as root, the cluster runs as the `postgres` OS user, and so do the commands that
read or write its files (`barman-cloud-backup` reads the data directory, `barman-cloud-restore` writes the new one,
the archiver runs `archive_command`). That user cannot run the project's interpreter when it lives under root's
home, so barman-cloud gets an environment of its own (`barman_bin`) on the system's Python, at the versions
uv.lock pins.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prizeflow_devstack.ports import HOST, pick_free_port
from prizeflow_devstack.postgres import PG_USER, as_root, chown_tree, find_bin_dir, pg_argv
from prizeflow_devstack.procs import tail

# Credentials moto accepts (any); a real store's come from a Secret (deploy/k8s) or the host's ~/.aws.
S3_ENV: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "prizeflow-drill",
    "AWS_SECRET_ACCESS_KEY": "prizeflow-drill-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class ArchiveError(RuntimeError):
    """The drill's infrastructure could not be provided: the test errors, it never skips."""


def db_user_argv(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """`argv` as the OS user PostgreSQL runs as, with exactly `env` (runuser would otherwise reset PATH)."""
    return pg_argv(["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv])


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    if found:
        return found
    raise ArchiveError("uv not found (neither $UV nor on PATH): the drill builds barman-cloud's environment with it")


def barman_bin(root: Path) -> Path:
    """`<root>/.devstack/barman/bin`: barman-cloud at uv.lock's versions, on an interpreter the database's OS user
    may run. Built once per uv.lock (a stamp holds the lock's digest)."""
    target = root / ".devstack" / "barman"
    bin_dir = target / "bin"
    digest = hashlib.sha256((root / "uv.lock").read_bytes()).hexdigest()
    stamp = target / ".uv-lock-sha256"
    if stamp.is_file() and stamp.read_text().strip() == digest and (bin_dir / "barman-cloud-backup").is_file():
        return bin_dir
    system_python = Path("/usr/bin/python3")
    python = str(system_python) if as_root() and system_python.is_file() else sys.executable
    uv = _uv()
    exported = subprocess.run(
        [uv, "export", "--frozen", "--all-packages", "--no-hashes", "--no-emit-workspace", "--format",
         "requirements-txt", "-q"],
        cwd=root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if exported.returncode != 0:
        raise ArchiveError(f"uv export failed: {exported.stderr.strip()}")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write(exported.stdout)
    try:
        for argv in (
            [uv, "venv", "-q", "--clear", "--python", python, str(target)],
            [uv, "pip", "install", "-q", "--python", str(bin_dir / "python"), "-c", constraints.name, "barman[cloud]"],
        ):
            done = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=False, timeout=600)
            if done.returncode != 0:
                raise ArchiveError(f"{' '.join(argv[:3])} failed: {done.stderr.strip() or done.stdout.strip()}")
    finally:
        os.unlink(constraints.name)
    stamp.write_text(digest)
    return bin_dir


@dataclass
class ObjectStore:
    """moto's S3 server on a free port of localhost, with one bucket."""

    workdir: Path
    bucket: str = "prizeflow-backups"
    port: int = 0
    popen: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 60.0) -> ObjectStore:
        server = Path(sys.executable).parent / "moto_server"
        if not server.is_file():
            raise ArchiveError(f"{server} is missing: uv sync --all-packages (moto[s3] is a dev dependency)")
        self.port = pick_free_port()
        log = self.workdir / "s3.log"
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [str(server), "-H", HOST, "-p", str(self.port)], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise ArchiveError(f"moto_server exited\n{tail(log)}")
            try:
                req = urllib.request.Request(f"{self.endpoint}/{self.bucket}", method="PUT")  # noqa: S310
                with urllib.request.urlopen(req, timeout=2):  # noqa: S310 - our own localhost server
                    return self
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise ArchiveError(f"moto_server did not answer on {self.endpoint}\n{tail(log)}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


@dataclass
class Cluster:
    """A PostgreSQL cluster in `data`, on `port` of localhost, trusting local connections (the drill's; a real
    one is CloudNativePG's). `env` is what its commands and its server run with (PATH to barman-cloud, S3 keys)."""

    data: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def admin_url(self) -> str:
        return f"postgresql://{PG_USER}@{HOST}:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql+asyncpg://{PG_USER}@{HOST}:{self.port}/{name}"

    @property
    def log(self) -> Path:
        return self.data.parent / f"{self.data.name}.log"

    def run(self, argv: Sequence[str], what: str, timeout: float = 300) -> str:
        done = subprocess.run(
            db_user_argv(argv, self.env), cwd=self.data.parent, capture_output=True, text=True, check=False,
            timeout=timeout,
        )  # fmt: skip
        if done.returncode != 0:
            raise ArchiveError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()}\n{tail(self.log)}")
        return done.stdout

    def initdb(self) -> Cluster:
        bin_dir = find_bin_dir()
        self.run(
            [str(bin_dir / "initdb"), "-D", str(self.data), "-U", PG_USER, "--auth", "trust", "-E", "UTF8",
             "--locale", "C"],
            "initdb",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                f"\nlisten_addresses = '{HOST}'\nport = {self.port}\nunix_socket_directories = '{self.data.parent}'\n"
                "max_connections = 300\nshared_buffers = 128MB\njit = off\nlog_min_messages = warning\n"
            )
        return self

    def start(self) -> Cluster:
        self.run([str(find_bin_dir() / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log), "-w",
                  "-t", "120"], "pg_ctl start")  # fmt: skip
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").is_file():
            subprocess.run(
                db_user_argv([str(find_bin_dir() / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate", "-w"],
                             self.env),
                cwd=self.data.parent, capture_output=True, check=False, timeout=60,
            )  # fmt: skip


def drill_workdir() -> Path:
    """A directory the database's OS user owns (pytest's tmp_path lives under a root-only directory)."""
    path = Path(tempfile.mkdtemp(prefix="prizeflow-drill-"))
    path.chmod(0o755)
    chown_tree(path)
    return path


def drill_env(barman: Path, store: ObjectStore) -> dict[str, str]:
    return {
        "PATH": os.pathsep.join([str(barman), str(find_bin_dir()), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(store.workdir),
        "LANG": "C.UTF-8",
        **S3_ENV,
    }


__all__ = [
    "S3_ENV",
    "ArchiveError",
    "Cluster",
    "ObjectStore",
    "barman_bin",
    "db_user_argv",
    "drill_env",
    "drill_workdir",
]
