"""A Docker engine for the container tier: the one that answers, or a dockerd of the project's own under
`.devstack/docker/`, with the images `docker-compose.yml` needs and a wheel mirror for its builds.

- `ensure_engine`: a Docker engine that already answers (`DOCKER_HOST`, or the default socket) is used as it is;
  otherwise Debian's dockerd (`tools/devstack/scripts/ensure-docker.sh` installs it) is started with its own
  data-root, exec-root, pidfile, socket and daemon.json under `.devstack/docker/` (socket and exec-root under /run
  when the checkout's path is too long for unix sockets), the default bridge on `BRIDGE_IP` and compose networks
  from `ADDRESS_POOL` (podman's are 10.88.0.0/16 and 10.89.0.0/16). `stop_engine` stops the project's dockerd and
  leaves an engine that was not the project's alone (`prizeflow-dev down` stops one a killed run left). IPv4
  forwarding is switched on before dockerd starts (`keep_forward_policy`): Docker 20.10 sets the host's iptables
  FORWARD policy to DROP when it is the one that switches forwarding on, and with br_netfilter loaded (Docker loads
  it) that drops every packet on podman's internal networks (the compose stack's `signer-db`: its migrations job
  timed out reaching PostgreSQL in the tier after this one). The socket
  is private: nothing else on the machine takes it for "the" Docker engine (the devstack uses testcontainers only
  when asked to: `PRIZEFLOW_DEVSTACK_INFRA=docker`).
- `ensure_images`: each image the compose file names but does not build (and the base images its builds start
  from), present in the engine, pulled, or — no registry answers here — podman's image of the same name (the
  local stand-ins, `images.ensure_official`) saved into it with `docker load`: one base archive for both engines.
- `serve_wheels`: the host's wheelhouse as a plain HTTP directory on the engine's bridge gateway, for the
  `wheels-source` stage's FIND_LINKS (no package index is reachable from inside a build here: TLS to it does not
  verify in a container).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prizeflow_devstack import images
from prizeflow_devstack.procs import cmdline, pid_alive, pids_matching, start_ticks, tail, terminate

ENGINE_READY_DEADLINE_S = 60.0
ENGINE_STOP_GRACE_S = 60.0
# The project's dockerd: its default bridge and the pool its compose networks are cut from, away from podman's.
BRIDGE_IP = "172.29.0.1/24"
ADDRESS_POOL = "base=172.30.0.0/16,size=24"


class EngineError(RuntimeError):
    """No Docker engine answers and none could be started, or a docker command failed; the message says why."""


@dataclass(frozen=True)
class Engine:
    """A Docker engine and how to reach it. `pid`: the project's dockerd (None: an engine that is not ours)."""

    host: str
    pid: int | None = None
    ticks: int | None = None
    log: Path | None = None
    storage_driver: str = ""
    server_version: str = ""
    notes: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(
        self, *args: str, timeout: float = 600, check: bool = True, stdin: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker", *args], env=self.env(), stdin=stdin, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            failed = f"docker {' '.join(args[:3])}… failed (exit {result.returncode})"
            raise EngineError(f"{failed}:\n{result.stderr[-3000:]}")
        return result

    def gateway(self) -> str:
        """The default bridge's gateway: an address of this host that the engine's containers (and builds) reach."""
        out = self.docker("network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}")
        found = out.stdout.split()
        if not found:
            raise EngineError("the engine's default bridge has no gateway address")
        return found[0]


def engine_dir(root: Path) -> Path:
    return root / ".devstack" / "docker"


# A unix socket's path is at most 107 bytes; containerd's longest under dockerd's exec-root is this much longer.
_SOCKET_MAX = 107
_LONGEST_UNDER_EXEC_ROOT = "/containerd/containerd.sock.ttrpc"


def sockets_dir(root: Path) -> Path:
    """Where the project's dockerd keeps its socket and exec-root: `.devstack/docker/`, or, when the checkout's path
    is too long for unix sockets there, a directory of its own under /run named after the checkout."""
    base = engine_dir(root)
    if len(f"{base}/run{_LONGEST_UNDER_EXEC_ROOT}") <= _SOCKET_MAX:
        return base
    return Path("/run") / f"prizeflow-docker-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"


def own_host(root: Path) -> str:
    """The DOCKER_HOST of the project's own dockerd."""
    return f"unix://{sockets_dir(root) / 'docker.sock'}"


def _server(env: dict[str, str]) -> dict[str, object] | None:
    """`docker version`'s server part, or None when no engine answers within seconds."""
    try:
        result = subprocess.run(
            ["docker", "version", "--format", "{{json .Server}}"], env=env, capture_output=True, text=True,
            timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    try:
        server = json.loads(result.stdout)
    except json.JSONDecodeError:
        return None
    return server if isinstance(server, dict) else None


def _is_docker(server: dict[str, object]) -> bool:
    """Docker's own engine, not podman's Docker-compatible API (its components name podman)."""
    components = server.get("Components") or []
    named = [str(c.get("Name", "")) for c in components if isinstance(c, dict)] if isinstance(components, list) else []
    return not any("podman" in name.lower() for name in named)


def _storage_driver(env: dict[str, str]) -> str:
    result = subprocess.run(
        ["docker", "info", "--format", "{{.Driver}}"], env=env, capture_output=True, text=True, timeout=10, check=False
    )
    return result.stdout.strip()


def _foreign_dockerd(base: Path) -> list[str]:
    """Other dockerd processes (not ours): a second engine would share the docker0 bridge and the iptables chains."""
    found = []
    for pid in pids_matching("dockerd"):
        line = cmdline(pid)
        argv0 = line.split(" ", 1)[0]
        if Path(argv0).name == "dockerd" and str(base) not in line:
            found.append(f"pid {pid}: {line[:200]}")
    return found


IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def keep_forward_policy(ip_forward: Path = IP_FORWARD) -> bool:
    """Switch IPv4 forwarding on unless it is on already, so that the dockerd started next finds it on and leaves the
    FORWARD chain's policy alone (Docker sets it to DROP only when it switches forwarding on itself). Podman switches
    it on for its own networks all the same. True when this call switched it on."""
    try:
        if ip_forward.read_text(encoding="ascii").strip() == "1":
            return False
        ip_forward.write_text("1\n", encoding="ascii")
    except OSError as err:
        raise EngineError(f"cannot switch IPv4 forwarding on ({ip_forward}): {err}") from err
    return True


def ensure_engine(root: Path) -> Engine:
    """The Docker engine that answers, else the project's own dockerd (started, and ready when this returns)."""
    server = _server(dict(os.environ))
    if server is not None and _is_docker(server):
        env = dict(os.environ)
        host = env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        return Engine(host, storage_driver=_storage_driver(env), server_version=str(server.get("Version", "")))
    base, sockets = engine_dir(root), sockets_dir(root)
    host = own_host(root)
    own = {**os.environ, "DOCKER_HOST": host}
    server = _server(own)
    if server is not None:  # ours, left by a run that did not stop it: this run stops it
        return Engine(
            host, pid=_own_pid(root), storage_driver=_storage_driver(own),
            server_version=str(server.get("Version", "")),
            notes=[f"reused the project's dockerd already answering on {host}"],
        )  # fmt: skip
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None)
    if dockerd is None:
        raise EngineError("dockerd is not installed (tools/devstack/scripts/ensure-docker.sh installs docker.io)")
    if foreign := _foreign_dockerd(base):
        raise EngineError(
            "another dockerd runs without answering here (it would share docker0 and the iptables chains): "
            + "; ".join(foreign)
            + " — stop it, or point DOCKER_HOST at it"
        )
    keep_forward_policy()
    (base / "data").mkdir(parents=True, exist_ok=True)
    (sockets / "run").mkdir(parents=True, exist_ok=True)
    config = base / "daemon.json"  # ours alone: /etc/docker/daemon.json is the machine's, not read
    # The build cache is kept (a rebuild is seconds) but bounded, so a checkout's engine does not grow for ever.
    settings = {"log-level": "warn", "builder": {"gc": {"enabled": True, "defaultKeepStorage": "6GB"}}}
    config.write_text(json.dumps(settings) + "\n", encoding="utf-8")
    log = base / "dockerd.log"
    (sockets / "docker.sock").unlink(missing_ok=True)
    argv = [
        dockerd, "--config-file", str(config), "--data-root", str(base / "data"), "--exec-root", str(sockets / "run"),
        "--pidfile", str(base / "dockerd.pid"), "--host", host, "--bip", BRIDGE_IP,
        "--default-address-pool", ADDRESS_POOL,
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    ticks = start_ticks(process.pid)
    deadline = time.monotonic() + ENGINE_READY_DEADLINE_S
    while (server := _server(own)) is None:
        if process.poll() is not None:
            raise EngineError(f"dockerd exited {process.returncode} before it answered:\n{tail(log)}")
        if time.monotonic() > deadline:
            terminate(process.pid, group=True, grace=10)
            raise EngineError(f"dockerd did not answer on {host} within {ENGINE_READY_DEADLINE_S:.0f} s:\n{tail(log)}")
        time.sleep(0.3)  # polling the engine's own API
    _KEEP.append(process)
    return Engine(
        host, pid=process.pid, ticks=ticks, log=log, storage_driver=_storage_driver(own),
        server_version=str(server.get("Version", "")),
    )  # fmt: skip


# The dockerd we started: its Popen is kept so that it is not collected (with a warning) while the engine runs.
_KEEP: list[subprocess.Popen[bytes]] = []


def stop_engine(engine: Engine) -> bool:
    """Stop the project's dockerd (it stops its containerd and containers); an engine that is not the project's is
    left alone. True when nothing of ours is left running."""
    if engine.pid is None:
        return True
    return _stop_dockerd(engine.pid, engine.ticks)


def _stop_dockerd(pid: int, ticks: int | None) -> bool:
    if not pid_alive(pid, ticks):
        return True
    # dockerd alone first: it shuts down its containers and its containerd itself; then its session, if anything of
    # it is left (dockerd hung, or was killed).
    stopped = terminate(pid, group=False, grace=ENGINE_STOP_GRACE_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # whatever of its session is left (containerd, shims) once dockerd is gone
    for process in list(_KEEP):
        if process.pid == pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            _KEEP.remove(process)
    return stopped


def _own_pid(root: Path) -> int | None:
    """The pid of the project's dockerd, if one runs (its pidfile, checked against the process's command line)."""
    try:
        pid = int((engine_dir(root) / "dockerd.pid").read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) and str(engine_dir(root)) in cmdline(pid) else None


def stop_project_engine(root: Path) -> bool:
    """Stop the project's dockerd if one runs (`prizeflow-dev down`: a tier that was killed leaves it). True if
    one was stopped."""
    pid = _own_pid(root)
    return pid is not None and _stop_dockerd(pid, None)


# --- images ---------------------------------------------------------------------------------------------------------


def _has_image(engine: Engine, ref: str) -> bool:
    return engine.docker("image", "inspect", ref, "--format", "{{.Id}}", check=False).returncode == 0


def _pull(engine: Engine, ref: str) -> bool:
    return engine.docker("pull", "--quiet", ref, timeout=600, check=False).returncode == 0


def ensure_images(root: Path, engine: Engine, refs: list[str]) -> dict[str, str]:
    """Each of `refs` in the engine: "present", "pulled", or "loaded from podman" (podman's image of that name,
    pulled or built as a local stand-in by `images.ensure_official`, copied in with one `podman save | docker load`
    for all of them: the stand-ins share their Debian base layers)."""
    how: dict[str, str] = {}
    missing = []
    for ref in refs:
        if _has_image(engine, ref):
            how[ref] = "present"
        elif _pull(engine, ref):
            how[ref] = "pulled"
        else:
            missing.append(ref)
    if missing:
        for ref in missing:
            images.ensure_official(root, ref)
        save = subprocess.Popen(
            ["podman", "save", "--multi-image-archive", "--format", "docker-archive", *missing],
            env=images.podman_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert save.stdout is not None
        try:
            loaded = engine.docker("load", "--quiet", stdin=save.stdout.fileno(), timeout=900, check=False)
        finally:
            save.stdout.close()
            _, err = save.communicate(timeout=60)
        if save.returncode != 0 or loaded.returncode != 0:
            raise EngineError(f"podman save | docker load of {missing} failed:\n{err.decode()[-2000:]}{loaded.stderr}")
        for ref in missing:
            if not _has_image(engine, ref):
                raise EngineError(f"{ref} is not in the engine after docker load:\n{loaded.stdout}")
            how[ref] = "loaded from podman"
    return how


# --- a wheel mirror for the builds -----------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """The builds' requests are not the test's output."""


def mirror_port(root: Path) -> int:
    """The port a checkout serves its wheel mirror on, the same on every run: the mirror's URL is a build argument,
    part of the build cache's key, so a new port would rebuild the wheelhouse and every layer above it."""
    return 15000 + int(hashlib.sha256(str(root).encode()).hexdigest(), 16) % 1000


@contextlib.contextmanager
def serve_wheels(directory: Path, host: str, port: int) -> Iterator[str]:
    """`directory` over HTTP on `host` (the engine's bridge gateway: only this machine and its containers reach it)
    on `port`, or any free port when that one is taken, for as long as the context lasts; yields the URL to give as
    FIND_LINKS."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer((host, 0), handler)  # a cold build cache, but a build
    thread = threading.Thread(target=server.serve_forever, name="wheel-mirror", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
