"""Build the cluster's Go components from the module proxy, once: `.devstack/cluster/bin/<component>/`.

A component is rebuilt only when what it is built from changed: its `go.mod` and `go.sum`, its packages, its flags
and the Go toolchain (a stamp beside the binaries records their hash). Static binaries (CGO_ENABLED=0, as the
projects' own release builds are), `-trimpath`, symbols stripped and no DWARF compiled (CoreDNS: 265 CPU-s
instead of 350, its cache 775 MB instead of 986). The components share one Go build cache
(`.devstack/cluster/gocache`), so their common dependencies (client-go, apimachinery, ...) compile once, and it is
deleted once every component is built: it grows to ~14 GB of the disk the node's images and volumes then need. Where
the disk runs short before a component, the cache is dropped first (the components after it compile their shared
dependencies again) and the build fails only when that is not enough.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prizeflow_devstack.cluster.versions import GO_COMPONENTS, GoComponent


class BuildError(RuntimeError):
    """A component did not build; the message holds the end of the Go command's output."""


@dataclass(frozen=True)
class Built:
    component: str
    seconds: float  # 0.0: it was already built from the same inputs
    binaries: tuple[Path, ...]


def go_binary() -> str:
    found = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if found is None:
        raise BuildError("Go is not installed: the cluster's components build from the Go module proxy")
    return found


def _go_version(go: str) -> str:
    return subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout.strip()


def source_dir(root: Path, component: GoComponent) -> Path:
    return root / "tools" / "devstack" / "cluster" / "go" / component.name


def _stamp(root: Path, component: GoComponent, go_version: str) -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((source_dir(root, component) / name).read_bytes())
    digest.update("\0".join((*component.packages, *_go_build_flags(component), go_version)).encode())
    return digest.hexdigest()


def _go_build_flags(component: GoComponent) -> tuple[str, ...]:
    """Stripped binaries (`-s -w`), so the compiler writes no DWARF either: a quarter less CPU and cache disk."""
    ldflags = " ".join(("-s", "-w", *component.ldflags))
    return ("-trimpath", "-gcflags=all=-dwarf=false", f"-ldflags={ldflags}")


# Go's build cache for the largest component (Kubernetes, External Secrets with its providers) peaks near 8 GB.
BUILD_NEEDS_FREE_GB = 10


def _free_gb(path: Path) -> float:
    return shutil.disk_usage(path).free / 1e9


def ensure_built(
    root: Path,
    out: Path,
    components: Sequence[GoComponent] = GO_COMPONENTS,
    *,
    say: Callable[[str], None] = print,
    free_disk_gb: Callable[[Path], float] = _free_gb,
) -> list[Built]:
    """Every component's binaries under `out/<component>/`, built when missing or stale."""
    go = go_binary()
    version = _go_version(go)
    cache = out.parent / "gocache"
    done: list[Built] = []
    for component in components:
        target = out / component.name
        binaries = tuple(target / name for name in component.outputs())
        stamp_file = target / ".stamp"
        stamp = _stamp(root, component, version)
        if all(b.exists() for b in binaries) and stamp_file.exists() and stamp_file.read_text() == stamp:
            done.append(Built(component.name, 0.0, binaries))
            continue
        where = out.parent if out.parent.exists() else root
        free_gb = free_disk_gb(where)
        if free_gb < BUILD_NEEDS_FREE_GB and cache.exists():
            # The cache is a speed-up only: without it the components still to build compile their shared
            # dependencies again, which costs CPU, not correctness.
            say(f"cluster: {free_gb:.1f} GB free, so Go's build cache is dropped before building {component.name}")
            shutil.rmtree(cache, ignore_errors=True)
            free_gb = free_disk_gb(where)
        if free_gb < BUILD_NEEDS_FREE_GB:
            raise BuildError(
                f"{free_gb:.1f} GB free: building {component.name} needs {BUILD_NEEDS_FREE_GB} GB for Go's build cache "
                "(free some: `podman image prune`, a stale checkout's `.devstack/`)"
            )
        target.mkdir(parents=True, exist_ok=True)
        stamp_file.unlink(missing_ok=True)
        say(f"cluster: building {component.name} ({', '.join(component.outputs())}) from the Go module proxy")
        started = time.monotonic()
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly", "GOWORK": "off", "GOCACHE": str(cache)}
        result = subprocess.run(
            [go, "build", *_go_build_flags(component), "-o", f"{target}/", *component.packages],
            cwd=source_dir(root, component),
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BuildError(f"go build of {component.name} failed:\n{(result.stdout + result.stderr)[-4000:]}")
        missing = [str(b) for b in binaries if not b.exists()]
        if missing:
            raise BuildError(f"go build of {component.name} wrote no {', '.join(missing)}")
        stamp_file.write_text(stamp)
        seconds = time.monotonic() - started
        say(f"cluster: built {component.name} in {seconds:.0f} s")
        done.append(Built(component.name, seconds, binaries))
    shutil.rmtree(cache, ignore_errors=True)
    return done


__all__ = ["BUILD_NEEDS_FREE_GB", "BuildError", "Built", "ensure_built", "go_binary", "source_dir"]
