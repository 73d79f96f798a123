"""The image catalogue (images.py), without podman: every service ships as an image, each image's command is a
console script its package declares, and each is built from the right Containerfile stage and dependency layer.
(Building and running the images is the container tier: tests/containers.)"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from prizeflow_devstack import images
from prizeflow_devstack.paths import resolve_root

ROOT = resolve_root(None)


def _project(package: str) -> tuple[Path, dict[str, Any]]:
    for pyproject in ROOT.glob("*/*/pyproject.toml"):
        doc = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        if doc.get("project", {}).get("name") == package:
            return pyproject.parent, doc
    raise LookupError(package)


def test_every_service_ships_as_an_image() -> None:
    """A directory under services/ that declares a service process has an image of its own, named as the service."""
    declared = set()
    for pyproject in ROOT.glob("services/*/pyproject.toml"):
        service = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("prizeflow", {})
        if "service" in service:
            declared.add(service["service"]["name"])
    assert "console" in declared
    assert declared == set(images.SERVICES)
    assert set(images.SERVICES) <= set(images.IMAGES)


@pytest.mark.parametrize("name", sorted(images.IMAGES))
def test_an_images_command_is_a_script_of_its_package_and_its_migrations_exist(name: str) -> None:
    spec = images.IMAGES[name]
    directory, doc = _project(spec.package)
    if spec.script is not None:
        assert spec.script in doc["project"]["scripts"], f"{spec.package} declares no script {spec.script}"
    if spec.migrations is not None:
        assert (ROOT / spec.migrations) == directory
        assert (directory / "alembic.ini").is_file()
        assert (directory / "migrations").is_dir()
    else:
        assert not (directory / "alembic.ini").exists(), f"{name} has migrations the image would not carry"


def test_the_console_is_a_service_on_the_runtimes_layer_carrying_its_sessions_migrations() -> None:
    spec = images.IMAGES["console"]
    assert (spec.package, spec.script, spec.migrations) == (
        "prizeflow-console",
        "prizeflow-console",
        "services/console",
    )
    assert spec.ref == "localhost/prizeflow-console:dev"
    assert images.build_target(spec) == "service"  # alembic.ini and migrations/ for its migrations Job
    assert images.dependency_layer(["prizeflow-console", "prizeflow-contracts", "prizeflow-runtime"]) == "runtime"


def test_build_stages_and_dependency_layers() -> None:
    assert images.build_target(images.IMAGES["payouts"]) == "service"
    assert images.build_target(images.IMAGES["ops"]) == "ops"
    assert images.build_target(images.IMAGES["soroban-rpc"]) == "tool"
    assert images.dependency_layer(["prizeflow-soroban-emulator"]) == "none"


def test_workspace_members_are_read_from_the_exports_editable_lines() -> None:
    listing = "\n".join(
        [
            "-e ./libs/contracts",
            "-e ./libs/runtime",
            "-e ./services/console",
            "httpx==0.28.1",
            "    # via prizeflow-console",
            "litestar==2.25.0",
        ]
    )
    dirs = {
        "prizeflow-contracts": "libs/contracts",
        "prizeflow-runtime": "libs/runtime",
        "prizeflow-console": "services/console",
        "prizeflow-payouts": "services/payouts",
    }
    assert images.workspace_members(listing, dirs) == ["prizeflow-console", "prizeflow-contracts", "prizeflow-runtime"]


def test_the_ops_image_carries_prizeflow_ops_and_the_runtime() -> None:
    """The bundle's preflight Job runs `prizeflow-ops preflight` in the ops image, whose topics check and outbox relay
    are the runtime's: the image's package is prizeflow-ops, whose closure holds the runtime; the shared dependency
    layer stays the runtime's own."""
    spec = images.IMAGES["ops"]
    assert (spec.package, images.build_target(spec)) == ("prizeflow-ops", "ops")
    pyproject = tomllib.loads((Path(__file__).resolve().parents[3] / "tools" / "ops" / "pyproject.toml").read_text())
    assert "prizeflow-runtime" in pyproject["project"]["dependencies"]
    assert images.RUNTIME_LAYER.package == "prizeflow-runtime"


def test_a_wheelhouse_file_is_rewritten_only_when_it_changed_and_then_whole(tmp_path: Path) -> None:
    """A build copying the wheelhouse as its context beside a rebuild of it reads each file old or new, never half:
    an unchanged file keeps its inode, a changed one is a new file renamed over the old (an open reader keeps the
    old inode whole)."""
    path = tmp_path / "uv"
    images._write_if_changed(path, b"one", mode=0o755)
    inode = path.stat().st_ino
    images._write_if_changed(path, b"one", mode=0o755)
    assert path.stat().st_ino == inode
    with path.open("rb") as reader:
        images._write_if_changed(path, b"two!", mode=0o755)
        assert reader.read() == b"one"
    assert path.read_bytes() == b"two!"
    assert path.stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uv"]


@pytest.mark.integration  # starts a process
def test_the_wheelhouse_is_held_by_one_process_at_a_time(tmp_path: Path) -> None:
    """A second holder (another process: a rehearsal's build beside the container tier) gets the wheelhouse only
    once the first has let it go."""
    holder = (
        "import sys, time; from pathlib import Path; from prizeflow_devstack import images\n"
        "root = Path(sys.argv[1])\n"
        "with images.wheelhouse_held(root):\n"
        "    print('held', flush=True); time.sleep(1); (root / 'released').write_text('')\n"
    )
    with subprocess.Popen([sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True) as first:
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "held"
        with images.wheelhouse_held(tmp_path):
            assert (tmp_path / "released").exists()
