"""Container images with podman, offline: a wheelhouse built on the host, one image per service, and local stand-ins
for official images when no registry answers.

- `build_wheelhouse`: every third-party wheel `uv.lock` pins (downloaded on the host, hash-checked) plus a wheel of
  each workspace package, uv and tini-static, under `.build/wheelhouse/`; the `Containerfile` installs from it with no
  index, so a build needs no network.
- `ensure_official`: an official image the compose file names is used when present or pullable; otherwise a stand-in
  is built under the same name from Debian's packages (deploy/images/standins), and the output says so.
- `build_images`: `podman build` of the repository's `Containerfile` (WHEELS=prebuilt), one image per entry of
  `IMAGES`; each image's SBOM (built in, `sbom.SBOM_PATH`) is exported to `.results/images/<name>.cdx.json` beside
  its digest (`.results/images.json`).
- `pin_overlay`: a Kustomize overlay's `images:` rewritten to refer to each image by digest (the release step, after
  `push`).
- `prune_replaced`: after a build, the untagged images earlier builds left are removed, so storage stays bounded.

Every podman call gets `CONTAINERS_CONF=deploy/podman/containers.conf` (the runc runtime, no default ulimits).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from prizeflow_devstack.kafka import ensure_jars, kafka_version

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
PYTHON_BASE = "docker.io/library/python:3.11-slim-bookworm"
POSTGRES_IMAGE = "docker.io/library/postgres:15-bookworm"
PROMETHEUS_IMAGE = "docker.io/prom/prometheus:v2.42.0"
GRAFANA_IMAGE = "docker.io/grafana/grafana:11.3.0"
IMAGE_TAG = "dev"
# The Containerfile's UV_IMAGE default (WHEELS=source): the uv the Makefile pins. Here a local stand-in holds the
# host's uv binary under that name (`ensure_official`), since ghcr.io cannot be reached.
UV_IMAGE = "ghcr.io/astral-sh/uv:0.13.8"
PIP = "pip==24.3.1"  # downloads the locked wheels (uv has no download command); run with `uv tool run`


def kafka_image() -> str:
    return f"docker.io/apache/kafka:{kafka_version()}"


class ImageError(RuntimeError):
    """An image could not be built or podman cannot run; the message says which step and why."""


@dataclass(frozen=True)
class ImageSpec:
    """One image of the platform: the workspace package it installs (with its locked dependencies), the console
    script it runs, and the service directory whose migrations it carries (None: a tool without a database)."""

    name: str
    package: str
    script: str | None
    migrations: str | None = None

    @property
    def ref(self) -> str:
        return f"localhost/prizeflow-{self.name}:{IMAGE_TAG}"


IMAGES: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec("settlement", "prizeflow-settlement", "prizeflow-settlement", "services/settlement"),
        ImageSpec("rewards", "prizeflow-rewards", "prizeflow-rewards", "services/rewards"),
        ImageSpec("payouts", "prizeflow-payouts", "prizeflow-payouts", "services/payouts"),
        ImageSpec("signer", "prizeflow-signer", "prizeflow-signer", "services/signer"),
        ImageSpec("webhooks", "prizeflow-webhooks", "prizeflow-webhooks", "services/webhooks"),
        # The web console: its sessions' database (migrations), on the runtime's dependency layer.
        ImageSpec("console", "prizeflow-console", "prizeflow-console", "services/console"),
        # The operators' tools in the cluster: topic provisioning (`python -m prizeflow_runtime.topics`), the external
        # outbox relay, and `prizeflow-ops` (the preflight Job runs `prizeflow-ops preflight`): its closure holds the
        # runtime's.
        ImageSpec("ops", "prizeflow-ops", None),
        ImageSpec("soroban-rpc", "prizeflow-soroban-emulator", "prizeflow-soroban-emulator"),
        ImageSpec("simulator", "prizeflow-simulator", "prizeflow-sim"),
    )
}
# The shared dependency layer (the Containerfile's DEPS=runtime): the runtime's locked closure, in every wheelhouse.
RUNTIME_LAYER = ImageSpec("runtime-layer", "prizeflow-runtime", None)
SERVICES = ("settlement", "rewards", "payouts", "signer", "webhooks", "console")
# Built only for the rehearsal cluster (tests/k8s), from the same Containerfile: the Strimzi stand-in and the
# emulators of the providers the rehearsal's simulated internet serves.
CLUSTER_IMAGES: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec("strimzi-standin", "prizeflow-strimzi-standin", "prizeflow-strimzi-standin"),
        ImageSpec("sanctions-lists", "prizeflow-sanctions-emulator", "prizeflow-sanctions-emulator"),
        ImageSpec("dev-idp", "prizeflow-dev-idp", "prizeflow-dev-idp"),
        ImageSpec("stripe-api", "prizeflow-stripe-emulator", "prizeflow-stripe-emulator"),
        ImageSpec("upi-api", "prizeflow-upi-emulator", "prizeflow-upi-emulator"),
        IMAGES["soroban-rpc"],
    )
}


def build_args(spec: ImageSpec, deps: str) -> dict[str, str]:
    """The Containerfile's build arguments for an image (docker-compose.yml's `build.args` are the same, less WHEELS
    and BASE_IMAGE, which keep their defaults there: wheels built from the repository, the official Python image)."""
    args = {"IMAGE": spec.name, "PACKAGE": spec.package, "SCRIPT": spec.script or "", "DEPS": deps}
    if spec.migrations:
        args["SERVICE_DIR"] = spec.migrations
    return args


def build_target(spec: ImageSpec) -> str:
    """The Containerfile stage an image is built from: `service` carries migrations, `ops` runs one-shot commands,
    `tool` is a server without a database (the Soroban RPC emulator, the simulator)."""
    if spec.migrations:
        return "service"
    return "ops" if spec.name == "ops" else "tool"


def dependency_layer(workspace: list[str]) -> str:
    """The Containerfile's DEPS: `runtime` (start from the shared layer of the runtime's closure) when the image's
    workspace packages include the runtime, else `none`."""
    return "runtime" if "prizeflow-runtime" in workspace else "none"


def podman_env(root: Path) -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(root / "deploy" / "podman" / "containers.conf")}


def podman(root: Path, *args: str, timeout: float = 1800, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], env=podman_env(root), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise ImageError(f"podman {' '.join(args[:3])}… failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return result


def image_exists(root: Path, ref: str) -> bool:
    return podman(root, "image", "exists", ref, check=False).returncode == 0


def image_size(root: Path, ref: str) -> int:
    """Bytes of the image (all its layers), as `podman images` reports it."""
    return int(podman(root, "image", "inspect", ref, "--format", "{{.Size}}").stdout.strip())


def say(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


# --- stand-ins for official images -------------------------------------------------------------------------------

ROOTFS_PACKAGES: dict[str, tuple[str, ...]] = {
    "python": ("python3", "ca-certificates"),
    "infra": ("postgresql-15", "openjdk-17-jre-headless", "prometheus", "ca-certificates"),
    # The cluster's egress proxy and the rehearsal's simulated internet (prizeflow_devstack.cluster.images).
    "edge": ("squid", "nginx-light", "ca-certificates"),
}


def _rootfs_ref(kind: str) -> str:
    digest = hashlib.sha256(" ".join((DEBIAN_SUITE, *ROOTFS_PACKAGES[kind])).encode()).hexdigest()[:12]
    return f"localhost/prizeflow-debian-{kind}:{DEBIAN_SUITE}-{digest}"


def _debootstrap(root: Path, kind: str) -> str:
    """A minimal Debian root filesystem with `kind`'s packages, imported as an image (cached by its package set)."""
    ref = _rootfs_ref(kind)
    if image_exists(root, ref):
        return ref
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed (tools/devstack/scripts/ensure-podman.sh installs it)")
    started = time.monotonic()
    say(f"debootstrap {DEBIAN_SUITE} + {', '.join(ROOTFS_PACKAGES[kind])} (no registry: building from Debian)")
    with tempfile.TemporaryDirectory(prefix=f"prizeflow-rootfs-{kind}-") as tmp:
        target = Path(tmp) / "rootfs"
        result = subprocess.run(
            [
                "debootstrap", "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES[kind])}",
                DEBIAN_SUITE, str(target), DEBIAN_MIRROR,
            ],
            capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise ImageError(f"debootstrap failed (exit {result.returncode}):\n{result.stdout[-3000:]}")
        for junk in ("usr/share/doc", "usr/share/man", "usr/share/info", "var/cache/apt", "var/lib/apt/lists"):
            shutil.rmtree(target / junk, ignore_errors=True)
        (target / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        tar = subprocess.Popen(
            ["tar", "-C", str(target), "--numeric-owner", "--exclude=./proc/*", "--exclude=./sys/*",
             "--exclude=./dev/*", "-c", "."],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert tar.stdout is not None
        try:
            imported = subprocess.run(
                ["podman", "import", "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["bash"]', "-", ref],
                stdin=tar.stdout, env=podman_env(root), capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
        finally:
            tar.stdout.close()  # ours: podman has its own copy of the pipe
            tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise ImageError(f"podman import of the {kind} root filesystem failed:\n{imported.stderr[-2000:]}")
    say(f"{ref} built in {time.monotonic() - started:.0f} s")
    return ref


def debian_base(root: Path, kind: str) -> str:
    """The debootstrap image of `kind` (ROOTFS_PACKAGES), built once and cached by its package set."""
    return _debootstrap(root, kind)


def uv_binary() -> str:
    return _uv()


def _pull(root: Path, ref: str) -> bool:
    result = podman(root, "pull", "--quiet", ref, timeout=300, check=False)
    if result.returncode == 0:
        return True
    reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
    say(f"cannot pull {ref} ({reason[:160]})")
    return False


def _build_uv_standin(root: Path, ref: str) -> None:
    """`ghcr.io/astral-sh/uv:<version>` holds `/uv`: the host's uv binary, when it is that version."""
    uv = _uv()
    said = _run([uv, "--version"], cwd=root, what="uv --version").split()
    if len(said) < 2 or ref.rsplit(":", 1)[1] != said[1]:
        raise ImageError(f"{ref}: the host's uv is {' '.join(said)}; a stand-in must be the same version")
    with tempfile.TemporaryDirectory(prefix="prizeflow-standin-uv-") as tmp:
        shutil.copy2(uv, Path(tmp) / "uv")
        (Path(tmp) / "Containerfile").write_text("FROM scratch\nCOPY uv /uv\n", encoding="utf-8")
        podman(root, "build", "--quiet", "--format", "docker", "-t", ref, tmp)


def _build_standin(root: Path, ref: str) -> None:
    standins = root / "deploy" / "images" / "standins"
    if ref == UV_IMAGE:
        _build_uv_standin(root, ref)
        return
    if ref == PYTHON_BASE:
        base = _debootstrap(root, "python")
        podman(root, "tag", base, ref)
        return
    base = _debootstrap(root, "infra")
    kind = {POSTGRES_IMAGE: "postgres", PROMETHEUS_IMAGE: "prometheus"}.get(ref)
    if ref == kafka_image():
        kind = "kafka"
    if kind is None:
        raise ImageError(f"{ref}: not pullable here and no local stand-in exists for it")
    with tempfile.TemporaryDirectory(prefix=f"prizeflow-standin-{kind}-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(standins / kind, context)
        if kind == "kafka":
            libs = ensure_jars()
            shutil.copytree(libs, context / "libs", ignore=shutil.ignore_patterns(".*"))
        podman(root, "build", "--quiet", "--format", "docker", "--build-arg", f"BASE={base}", "-t", ref, str(context))


def ensure_official(root: Path, ref: str) -> str:
    """`ref` present locally, pulled, or built as a stand-in under the same name. Returns how it came to be."""
    if image_exists(root, ref):
        return "present"
    if _pull(root, ref):
        return "pulled"
    started = time.monotonic()
    _build_standin(root, ref)
    say(f"{ref}: built a LOCAL STAND-IN from Debian packages in {time.monotonic() - started:.0f} s (no registry)")
    return "stand-in"


# --- the wheelhouse -----------------------------------------------------------------------------------------------

_WORKSPACE_LINE = re.compile(r"^-e \./(?P<path>\S+)$")


def workspace_members(listing: str, dirs: dict[str, str]) -> list[str]:
    """The workspace packages an image installs, from `uv export --no-hashes` (its `-e ./<dir>` lines)."""
    by_path = {path: name for name, path in dirs.items()}
    return sorted(by_path[m.group("path")] for line in listing.splitlines() if (m := _WORKSPACE_LINE.match(line)))


def _uv() -> str:
    """The uv running us (`uv run` sets UV), else uv on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        raise ImageError("uv not found (UV unset and no uv on PATH): run through `uv run` or `make`")
    return found


def _run(args: list[str], *, cwd: Path, what: str, timeout: float = 900) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise ImageError(f"{what} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def _package_dirs(root: Path) -> dict[str, Path]:
    """Workspace package name → its directory."""
    found: dict[str, Path] = {}
    for pyproject in root.glob("*/*/pyproject.toml"):
        match = re.search(r'^name = "([^"]+)"', pyproject.read_text(encoding="utf-8"), re.MULTILINE)
        if match and pyproject.parent.parent.name in ("libs", "services", "tools"):
            found[match.group(1)] = pyproject.parent
    return found


def export_requirements(root: Path, spec: ImageSpec) -> tuple[str, list[str]]:
    """What an image installs, as uv.lock pins it (`uv export --frozen`, offline): the third-party requirements with
    their hashes, and the workspace packages whose wheels it gets."""
    uv = _uv()
    dirs = {name: path.relative_to(root).as_posix() for name, path in _package_dirs(root).items()}
    base = [uv, "export", "--frozen", "--no-dev", "--package", spec.package, "--format", "requirements-txt"]
    listing = _run([*base, "--no-hashes", "--no-header"], cwd=root, what=f"uv export {spec.package}")
    locked = _run([*base, "--no-emit-workspace", "--no-header"], cwd=root, what=f"uv export {spec.package}")
    return locked, workspace_members(listing, dirs)


def build_wheelhouse(root: Path, specs: list[ImageSpec]) -> Path:
    """`.build/wheelhouse/`: per image package `requirements/<package>.txt` (locked, hashed, third-party) and
    `<package>.workspace` (the workspace wheels it installs), `wheels/`, `bin/uv`, `bin/tini` — the layout the
    Containerfile's `wheels-source` stage builds too. Built on the host: TLS from inside a container to the package
    registries fails here, and a build that needs no network is reproducible."""
    with wheelhouse_held(root):
        return _build_wheelhouse(root, specs)


def _build_wheelhouse(root: Path, specs: list[ImageSpec]) -> Path:
    house = root / ".build" / "wheelhouse"
    wheels, reqs, bins = house / "wheels", house / "requirements", house / "bin"
    for d in (wheels, reqs, bins):
        d.mkdir(parents=True, exist_ok=True)
    uv = _uv()
    dirs = {name: path.relative_to(root).as_posix() for name, path in _package_dirs(root).items()}
    needed_workspace: set[str] = set()
    for spec in specs:
        locked, members = export_requirements(root, spec)
        needed_workspace.update(members)
        _write_if_changed(reqs / f"{spec.package}.txt", locked.encode())
        _write_if_changed(reqs / f"{spec.package}.workspace", ("\n".join(members) + "\n").encode())
    # Every image's pins in one export: uv.lock pins one version of each package for the whole workspace.
    packages = [arg for package in sorted({s.package for s in specs}) for arg in ("--package", package)]
    all_reqs = house / "all-requirements.txt"
    export = [uv, "export", "--frozen", "--no-dev", *packages, "--no-emit-workspace", "--no-header"]
    _write_if_changed(
        all_reqs,
        _run([*export, "--format", "requirements-txt"], cwd=root, what="uv export of every image's pins").encode(),
    )
    _run(
        [
            uv, "tool", "run", "--quiet", "--from", PIP, "pip", "download", "--quiet", "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:", "--require-hashes", "-r", str(all_reqs), "-d", str(wheels),
        ],
        cwd=root, what="pip download of the locked wheels", timeout=1800,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="workspace-wheels-", dir=house.parent) as fresh:
        for name in sorted(needed_workspace):
            _run([uv, "build", "--wheel", "--quiet", "--out-dir", fresh, dirs[name]], cwd=root, what=f"build {name}")
        built = {w.name: w for w in Path(fresh).glob("*.whl")}
        for old in wheels.glob("prizeflow_*.whl"):
            if old.name not in built:
                old.unlink()
        for name, wheel in built.items():
            _write_if_changed(wheels / name, wheel.read_bytes())  # hatchling's wheels are reproducible
    _write_if_changed(bins / "uv", Path(uv).read_bytes(), mode=0o755)
    tini = Path("/usr/bin/tini-static")
    if not tini.is_file():
        raise ImageError("/usr/bin/tini-static is missing (Debian package tini; ensure-podman.sh installs it)")
    _write_if_changed(bins / "tini", tini.read_bytes(), mode=0o755)
    # the Containerfile's SBOM generator
    _write_if_changed(bins / "sbom.py", Path(__file__).with_name("sbom.py").read_bytes(), mode=0o644)
    return house


def _write_if_changed(path: Path, content: bytes, *, mode: int = 0o644) -> None:
    """`path` holds `content` afterwards; rewritten only when it differed, and then whole (a new file renamed over
    it): a reader (a build copying the wheelhouse as its context) sees the old file or the new, never a half."""
    if path.is_file() and path.stat().st_size == len(content) and path.read_bytes() == content:
        return
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    staged.write_bytes(content)
    staged.chmod(mode)
    os.replace(staged, path)


def wheel_mirror(root: Path, dest: Path) -> Path:
    """A flat directory of wheels standing in for PyPI, for the `wheels-source` stage's FIND_LINKS: the third-party
    wheels of the host's wheelhouse (`build_wheelhouse` first), pip (the stage downloads with it) and hatchling's
    closure (the workspace's build backend), but none of the workspace's own wheels: the stage must build those from
    the repository. `dest` is emptied first."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for wheel in (root / ".build" / "wheelhouse" / "wheels").glob("*.whl"):
        if not wheel.name.startswith("prizeflow_"):
            if wheel.stat().st_dev == dest.stat().st_dev:
                os.link(wheel, dest / wheel.name)
            else:
                shutil.copy2(wheel, dest / wheel.name)
    _run(
        [
            _uv(), "tool", "run", "--quiet", "--from", PIP, "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", "-d", str(dest), PIP, "hatchling>=1.25",
        ],
        cwd=root, what="pip download of pip and hatchling", timeout=600,
    )  # fmt: skip
    return dest


# --- the platform's images -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    ref: str
    size: int
    seconds: float
    id: str = ""  # the image's config digest: the same wherever the image is pushed
    digest: str = ""  # podman's local manifest digest (a registry's is the one `push` reports)
    sbom: str = ""  # the SBOM exported from the image, relative to the repository


def image_ids(root: Path, ref: str) -> tuple[str, str]:
    """(image id as sha256:…, local manifest digest) of a built image."""
    out = podman(root, "image", "inspect", ref, "--format", "{{.Id}} {{.Digest}}").stdout.split()
    return f"sha256:{out[0]}", out[1] if len(out) > 1 else ""


def export_sbom(root: Path, ref: str, out: Path) -> Path:
    """Copy the SBOM the build wrote into the image to `out` (read from the image, never regenerated)."""
    from prizeflow_devstack.sbom import SBOM_PATH

    run = podman(root, "run", "--rm", "--network=none", "--entrypoint", "cat", ref, SBOM_PATH)
    json.loads(run.stdout)  # a build that wrote no valid SBOM fails here
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(run.stdout, encoding="utf-8")
    return out


def build_images(root: Path, names: list[str] | None = None) -> list[Built]:
    """Build the platform's images from the `Containerfile` (base image: the official Python slim, present, pulled
    or stood in; wheels: the host-built wheelhouse). Returns each image with its size, digest and exported SBOM."""
    known = {**IMAGES, **CLUSTER_IMAGES}
    specs = [known[n] for n in (names or list(IMAGES))]
    with wheelhouse_held(root):
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        built = _build_images(root, specs)
        prune_replaced(root, before=started)
        return built


@contextlib.contextmanager
def wheelhouse_held(root: Path) -> Iterator[None]:
    """The checkout's wheelhouse and image builds to this holder, machine-wide, while inside.

    The container tier, the cluster's rehearsal and `prizeflow-dev images` each build, and may run side by side: an
    image build reading `.build/wheelhouse` as its context while another process rebuilt it in place copied a file
    being rewritten (a rehearsal's build beside the tier failed so: "incorrect size" of `bin/uv`). Every writer of
    the wheelhouse, and every build that reads it, holds this."""
    lock_path = root / ".build" / "images.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def prune_replaced(root: Path, *, before: str) -> None:
    """Remove the untagged images made before `before` (an RFC 3339 UTC instant): the images a build's tags moved
    off and the intermediate stages of earlier builds. Every build leaves about twenty; left, they filled the disk
    of a machine that runs the suite often (a CI run on such a machine died with "no space left on device").
    This build's own stages stay as the next build's cache."""
    podman(root, "image", "prune", "--force", "--filter", f"until={before}", timeout=900, check=False)


def _build_images(root: Path, specs: list[ImageSpec]) -> list[Built]:
    ensure_official(root, PYTHON_BASE)
    started = time.monotonic()
    # The shared dependency layer is the runtime's closure: its requirements must be in the house.
    house = _build_wheelhouse(root, sorted({*specs, RUNTIME_LAYER}, key=lambda s: s.name))  # held by build_images
    workspace = {s.name: (house / "requirements" / f"{s.package}.workspace").read_text().split() for s in specs}
    say(f"wheelhouse ready in {time.monotonic() - started:.0f} s")
    built = []
    for spec in specs:
        t0 = time.monotonic()
        args = ["build", "--quiet", "--format", "docker", "--target", build_target(spec)]
        build = {
            "BASE_IMAGE": PYTHON_BASE,
            "WHEELS": "prebuilt",
            **build_args(spec, dependency_layer(workspace[spec.name])),
        }
        for key, value in build.items():
            args += ["--build-arg", f"{key}={value}"]
        podman(root, *args, "-t", spec.ref, "-f", str(root / "Containerfile"), str(root))
        image_id, digest = image_ids(root, spec.ref)
        sbom = export_sbom(root, spec.ref, root / ".results" / "images" / f"{spec.name}.cdx.json")
        built.append(
            Built(
                spec.ref,
                image_size(root, spec.ref),
                time.monotonic() - t0,
                image_id,
                digest,
                sbom.relative_to(root).as_posix(),
            )
        )
        say(f"{spec.ref}: {built[-1].size / 1e6:.0f} MB in {built[-1].seconds:.0f} s, {digest}, SBOM {built[-1].sbom}")
    return built


# --- release: push, and pin an overlay's images by digest --------------------------------------------------------

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def push(root: Path, spec: ImageSpec, repository: str, tag: str, *, tls_verify: bool = True) -> str:
    """Push an image to `<repository>/<name>:<tag>` and return the manifest digest the registry stores."""
    with tempfile.TemporaryDirectory(prefix="prizeflow-push-") as tmp:
        digest_file = Path(tmp) / "digest"
        podman(
            root, "push", "--quiet", f"--tls-verify={str(tls_verify).lower()}", "--digestfile", str(digest_file),
            spec.ref, f"{repository}/{spec.name}:{tag}", timeout=1800,
        )  # fmt: skip
        digest = digest_file.read_text(encoding="utf-8").strip()
    if not _DIGEST.match(digest):
        raise ImageError(f"push of {spec.ref} reported no digest ({digest!r})")
    return digest


_IMAGE_ENTRY = re.compile(r"^(?P<indent>\s*)- \{name: prizeflow/(?P<name>[a-z0-9-]+),(?P<rest>.*)\}\s*$")


def overlay_image_names(kustomization: Path) -> set[str]:
    """The Prizeflow images (`prizeflow/<name>`) an overlay's `images:` lists that this repository builds."""
    names = {
        m.group("name")
        for line in kustomization.read_text(encoding="utf-8").splitlines()
        if (m := _IMAGE_ENTRY.match(line))
    }
    return names & set(IMAGES)


def pin_overlay(kustomization: Path, digests: dict[str, str], *, repository: str | None = None) -> list[str]:
    """Rewrite the `images:` entries of `kustomization` for the images in `digests` (name → sha256:…) to
    `{name: prizeflow/<name>, newName: <repository>/<name>, digest: …}` (the entry's newName when no repository
    is given): a digest names one image for ever, a tag whatever was pushed under it last. Returns what changed."""
    changed = []
    lines = kustomization.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        match = _IMAGE_ENTRY.match(line)
        if not match or match.group("name") not in digests:
            continue
        name = match.group("name")
        digest = digests[name]
        if not _DIGEST.match(digest):
            raise ImageError(f"{name}: {digest!r} is not a sha256 digest")
        fields = {
            key.strip(): value.strip()
            for key, _, value in (part.partition(":") for part in match.group("rest").split(","))
        }
        new_name = f"{repository}/{name}" if repository else fields.get("newName", f"prizeflow/{name}")
        lines[i] = f"{match.group('indent')}- {{name: prizeflow/{name}, newName: {new_name}, digest: {digest}}}"
        changed.append(name)
    missing = sorted(set(digests) - set(changed))
    if missing:
        raise ImageError(f"{kustomization}: no `images:` entry for {missing}")
    kustomization.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return changed


def report(root: Path, built: list[Built], out: Path | None = None) -> str:
    base = image_size(root, PYTHON_BASE)
    lines = [f"{'image':42} {'size':>8} {'over base':>10}"]
    lines += [f"{b.ref:42} {b.size / 1e6:7.0f}M {(b.size - base) / 1e6:9.0f}M" for b in built]
    lines.append(f"{PYTHON_BASE + ' (base)':42} {base / 1e6:7.0f}M")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        doc = {"base": {"ref": PYTHON_BASE, "bytes": base}, "images": [dict(b.__dict__) for b in built]}
        out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return "\n".join(lines)


def ensure_infrastructure_images(root: Path) -> dict[str, str]:
    """The official images the compose file runs (but Grafana, which cannot be built here) and the Python base.
    The two Debian root filesystems behind the stand-ins are made concurrently (mostly downloads and unpacking)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = {ref: pool.submit(ensure_official, root, ref) for ref in (PYTHON_BASE, POSTGRES_IMAGE)}
        how = {ref: future.result() for ref, future in first.items()}
    how.update({ref: ensure_official(root, ref) for ref in (kafka_image(), PROMETHEUS_IMAGE)})
    return how
