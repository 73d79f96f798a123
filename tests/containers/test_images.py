"""The platform's images: built offline from the wheelhouse, non-root, tini as PID 1, a health check, complete (every
module of every package they carry imports, on a read-only root filesystem), and the signer's holds nothing but the
signer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prizeflow_devstack import images

pytestmark = pytest.mark.containers

# Imports every module of the image's workspace packages: a dependency a package uses but does not declare fails here.
IMPORT_ALL = """
import importlib, json, pkgutil, sys
failed = {}
for top in sys.argv[1:]:
    package = importlib.import_module(top)
    for info in pkgutil.walk_packages(package.__path__, top + "."):
        if ".tests" in info.name or info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as err:
            failed[info.name] = f"{type(err).__name__}: {err}"
print(json.dumps(failed))
"""


def _workspace_modules(root: Path, image: str) -> list[str]:
    listing = root / ".build" / "wheelhouse" / "requirements" / f"{images.IMAGES[image].package}.workspace"
    return [name.replace("-", "_") for name in listing.read_text().split()]


@pytest.mark.parametrize("name", sorted(images.IMAGES))
def test_an_image_runs_as_non_root_under_tini_and_carries_everything_it_imports(
    repo_root: Path, built_images: dict[str, images.Built], name: str
) -> None:
    spec = images.IMAGES[name]
    config = json.loads(images.podman(repo_root, "image", "inspect", spec.ref, "--format", "{{json .Config}}").stdout)
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/usr/local/bin/tini", "--"]
    health = json.loads(
        images.podman(repo_root, "image", "inspect", spec.ref, "--format", "{{json .Config.Healthcheck}}").stdout
    )
    # ops runs one-shot commands: nothing to check the health of
    assert health["Test"][0] == ("NONE" if name == "ops" else "CMD")
    modules = _workspace_modules(repo_root, name)
    run = images.podman(
        repo_root, "run", "--rm", "--read-only", "--network=none", "--cap-drop=ALL", spec.ref,
        "python", "-c", IMPORT_ALL, *modules,
    )  # fmt: skip
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {}


def test_the_signer_image_holds_no_provider_and_no_other_services_code(
    repo_root: Path, built_images: dict[str, images.Built]
) -> None:
    probe = (
        "import importlib.util, json, sys; "
        "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))"
    )
    others = [
        "prizeflow_payouts", "prizeflow_rewards", "prizeflow_settlement", "prizeflow_webhooks", "prizeflow_simulator",
        "prizeflow_soroban_emulator", "prizeflow_devstack", "prizeflow_testkit", "stripe",
    ]  # fmt: skip
    run = images.podman(
        repo_root, "run", "--rm", "--network=none", images.IMAGES["signer"].ref,
        "python", "-c", probe, "prizeflow_signer", *others,
    )  # fmt: skip
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found == {"prizeflow_signer": True, **dict.fromkeys(others, False)}
    listing = images.podman(
        repo_root, "run", "--rm", "--network=none", images.IMAGES["signer"].ref, "python", "-c",
        "import os; print('\\n'.join(sorted(os.listdir('/app'))))",
    )  # fmt: skip
    assert listing.stdout.split() == ["alembic.ini", "migrations"]  # its own migrations, nothing else


def test_images_are_reported_with_their_sizes(repo_root: Path, built_images: dict[str, images.Built]) -> None:
    report = json.loads((repo_root / ".results" / "images.json").read_text())
    assert {i["ref"] for i in report["images"]} == {spec.ref for spec in images.IMAGES.values()}
    assert all(i["size"] > report["base"]["bytes"] for i in report["images"])
