"""The cluster's Go build (`prizeflow_devstack.cluster.build`) with a stand-in `go` on PATH: what it does about disk."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from prizeflow_devstack.cluster import build
from prizeflow_devstack.cluster.versions import GoComponent
from prizeflow_devstack.procs import pid_alive

pytestmark = pytest.mark.integration  # runs a process (the stand-in go)

# Writes each package's binary into `-o <dir>/` and a file into $GOCACHE, as a real build grows its cache.
_FAKE_GO = textwrap.dedent(
    """\
    #!/bin/sh
    if [ "$1" = version ]; then echo "go version go0.0 stand-in"; exit 0; fi
    out=""; prev=""
    for arg in "$@"; do
      if [ "$prev" = "-o" ]; then out="$arg"; fi
      prev="$arg"
    done
    mkdir -p "$GOCACHE" && echo built > "$GOCACHE/entry-$$"
    for arg in "$@"; do
      case "$arg" in example.test/*) echo binary > "$out/${arg##*/}";; esac
    done
    """
)

_COMPONENTS = (
    GoComponent("first", ("example.test/cmd/one",)),
    GoComponent("second", ("example.test/cmd/two",)),
)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    go = bin_dir / "go"
    go.write_text(_FAKE_GO)
    go.chmod(go.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for component in _COMPONENTS:
        source = build.source_dir(tmp_path, component)
        source.mkdir(parents=True)
        (source / "go.mod").write_text(f"module example.test/{component.name}\n")
        (source / "go.sum").write_text("")
    return tmp_path


def test_a_disk_short_only_by_the_build_cache_drops_the_cache_and_builds_on(root: Path) -> None:
    out = root / ".devstack" / "cluster" / "bin"
    cache = out.parent / "gocache"
    said: list[str] = []

    def free_gb(_: Path) -> float:  # the cache, once written, takes the disk below what a build needs
        return build.BUILD_NEEDS_FREE_GB - 1 if cache.exists() else build.BUILD_NEEDS_FREE_GB + 1

    built = build.ensure_built(root, out, _COMPONENTS, say=said.append, free_disk_gb=free_gb)

    assert [b.component for b in built] == ["first", "second"]
    assert all(binary.read_text() == "binary\n" for b in built for binary in b.binaries)
    assert any("build cache is dropped before building second" in line for line in said)
    assert not cache.exists()


def test_a_disk_short_without_the_cache_refuses_to_build_and_says_how_much_is_free(root: Path) -> None:
    out = root / ".devstack" / "cluster" / "bin"

    with pytest.raises(build.BuildError, match=r"^4\.0 GB free: building first needs 10 GB"):
        build.ensure_built(root, out, _COMPONENTS, say=lambda _: None, free_disk_gb=lambda _: 4.0)

    assert not (out / "first" / "one").exists()


def test_a_component_built_from_the_same_inputs_is_not_built_again_even_on_a_short_disk(root: Path) -> None:
    out = root / ".devstack" / "cluster" / "bin"
    build.ensure_built(root, out, _COMPONENTS, say=lambda _: None, free_disk_gb=lambda _: 100.0)

    again = build.ensure_built(root, out, _COMPONENTS, say=lambda _: None, free_disk_gb=lambda _: 1.0)

    assert [b.seconds for b in again] == [0.0, 0.0]


def test_sigterm_stops_the_go_build_it_waits_on(root: Path) -> None:
    """A build stopped with SIGTERM (a job killed, CI timing out) leaves no Go build running on, orphaned."""
    pid_file = root / "go.pid"
    go = root / "fakebin" / "go"
    go.write_text(
        '#!/bin/sh\nif [ "$1" = version ]; then echo "go version go0.0 stand-in"; exit 0; fi\n'
        f'echo $$ > "{pid_file}"\nexec sleep 60\n'
    )
    script = textwrap.dedent(
        f"""\
        from pathlib import Path
        from prizeflow_devstack.cluster import build, cli
        from prizeflow_devstack.cluster.versions import GoComponent

        cli.exit_on_sigterm()
        build.ensure_built(
            Path({str(root)!r}), Path({str(root / "out")!r}), (GoComponent("first", ("example.test/cmd/one",)),),
            free_disk_gb=lambda _: 100.0,
        )
        """
    )
    builder = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the stand-in go never started"
        assert builder.poll() is None, "the build ended before go started"
        time.sleep(0.05)
    go_pid = int(pid_file.read_text())

    builder.send_signal(signal.SIGTERM)

    assert builder.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while pid_alive(go_pid):
        assert time.monotonic() < deadline, "the go build outlived the build command"
        time.sleep(0.05)
