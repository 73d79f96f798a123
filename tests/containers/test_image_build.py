"""How images are built and what they declare, with podman (the `wheels-source` stage, what `docker compose up --build`
runs, is held to the same distributions by test_compose_docker.py, on the images Compose built there):

- every image carries a CycloneDX SBOM listing exactly the distributions installed in it at the versions uv.lock pins
  (and the wheel hashes uv.lock records), exported by `prizeflow-dev images` beside the image's digest;
- a file secret made by a non-root user is readable by the image's user (compose bind-mounts it as it is on the host);
- a push reports the digest the registry serves, and `--pin` writes it into an overlay (Debian's docker-registry as
  the registry).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from prizeflow_devstack import compose, images
from prizeflow_devstack.ports import pick_free_port
from prizeflow_devstack.sbom import SBOM_PATH, normalize

pytestmark = pytest.mark.containers

INSTALLED = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
)


def _locked(root: Path) -> dict[str, dict[str, Any]]:
    """uv.lock's packages by normalized name: version and the sha256 of every wheel it lists."""
    lock = tomllib.loads((root / "uv.lock").read_text(encoding="utf-8"))
    return {
        normalize(p["name"]): {
            "version": p.get("version"),
            "hashes": {w["hash"].removeprefix("sha256:") for w in p.get("wheels", [])},
        }
        for p in lock["package"]
    }


def _python_components(sbom: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in sbom["components"] if c["purl"].startswith("pkg:pypi/")}


def _run_json(root: Path, ref: str, *argv: str) -> Any:
    out = images.podman(root, "run", "--rm", "--network=none", "--entrypoint", argv[0], ref, *argv[1:]).stdout
    return json.loads(out)


@pytest.mark.parametrize("name", sorted(images.IMAGES))
def test_an_images_sbom_lists_exactly_what_is_installed_at_the_locked_versions(
    repo_root: Path, built_images: dict[str, images.Built], name: str
) -> None:
    spec = images.IMAGES[name]
    exported = repo_root / ".results" / "images" / f"{name}.cdx.json"
    sbom = json.loads(exported.read_text(encoding="utf-8"))
    assert sbom == _run_json(repo_root, spec.ref, "cat", SBOM_PATH), "the export is the SBOM the image carries"
    assert (sbom["bomFormat"], sbom["specVersion"]) == ("CycloneDX", "1.5")
    assert sbom["metadata"]["component"]["name"] == f"prizeflow-{name}"

    installed = {normalize(k): v for k, v in _run_json(repo_root, spec.ref, "python", "-c", INSTALLED).items()}
    listed = _python_components(sbom)
    assert {n: c["version"] for n, c in listed.items()} == installed, "the SBOM's Python packages are the venv's"
    locked = _locked(repo_root)
    for dist, component in listed.items():
        assert component["version"] == locked[dist]["version"], f"{dist}: not the version uv.lock pins"
        assert component["purl"] == f"pkg:pypi/{dist}@{component['version']}"
        if not dist.startswith("prizeflow-"):  # a workspace wheel is built here: its hash is nobody else's
            [digest] = [h["content"] for h in component["hashes"]]
            assert digest in locked[dist]["hashes"], f"{dist}: installed from a wheel uv.lock does not list"

    debs = {c["name"]: c["version"] for c in sbom["components"] if c["purl"].startswith("pkg:deb/")}
    dpkg = images.podman(
        repo_root, "run", "--rm", "--network=none", "--entrypoint", "dpkg-query", spec.ref,
        "-W", "-f", "${Package} ${Version} ${db:Status-Status}\\n",
    ).stdout  # fmt: skip
    assert debs == {p: v for p, v, status in (line.split() for line in dpkg.splitlines()) if status == "installed"}
    assert {"cpython", "tini"} <= {c["name"] for c in sbom["components"] if not c["purl"].startswith("pkg:deb/")}


def test_images_json_gives_each_image_its_digest_and_sbom(
    repo_root: Path, built_images: dict[str, images.Built]
) -> None:
    report = json.loads((repo_root / ".results" / "images.json").read_text(encoding="utf-8"))
    for entry in report["images"]:
        assert entry["digest"].startswith("sha256:"), entry
        assert entry["id"].startswith("sha256:"), entry
        assert (repo_root / entry["sbom"]).is_file(), entry


def test_a_secret_written_by_a_non_root_user_is_readable_by_the_images_user(
    repo_root: Path, built_images: dict[str, images.Built], tmp_path: Path
) -> None:
    """compose mounts file secrets as they are on the host. Written by a normal user (uid 1000 here), the signer's
    seed is that user's: 0400 (what `compose-secrets` made before) is unreadable by uid 10001, 0444 inside the
    0700 secrets directory is readable — and the directory keeps other host users out."""
    with mock.patch("os.geteuid", return_value=1000):
        out = compose.ensure_compose_secrets(tmp_path)
    seed = out / "hot-signer.seed"
    assert stat.S_IMODE(seed.stat().st_mode) == 0o444
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    os.chown(seed, 1000, 1000)  # as a normal user's file is
    ref = images.IMAGES["signer"].ref
    mount = f"{seed}:/run/secrets/hot_signer_seed:ro"
    read = ["run", "--rm", "--network=none", "--cap-drop=ALL", "-v", mount, ref, "cat", "/run/secrets/hot_signer_seed"]
    assert images.podman(repo_root, *read).stdout.strip() == seed.read_text().strip()
    os.chmod(seed, 0o400)
    refused = images.podman(repo_root, *read, check=False)
    assert refused.returncode != 0
    assert "Permission denied" in refused.stderr


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """Debian's docker-registry (the distribution registry) on a free local port, over plain HTTP."""
    port = pick_free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {tmp_path / 'data'}}}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n",
        encoding="utf-8",
    )
    binary = shutil.which("docker-registry")
    assert binary, "docker-registry is not installed (tools/devstack/scripts/ensure-podman.sh installs it)"
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "docker-registry did not answer in 30 s"
                time.sleep(0.2)  # polling the registry's own endpoint
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_push_reports_the_registrys_digest_and_pin_writes_it(
    repo_root: Path, built_images: dict[str, images.Built], registry: str, tmp_path: Path
) -> None:
    spec = images.IMAGES["ops"]
    digest = images.push(repo_root, spec, f"{registry}/prizeflow", "0.1.0", tls_verify=False)
    request = urllib.request.Request(
        f"http://{registry}/v2/prizeflow/ops/manifests/0.1.0",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Docker-Content-Digest"] == digest
    kustomization = tmp_path / "kustomization.yaml"
    shutil.copy2(repo_root / "deploy" / "k8s" / "overlays" / "prod" / "kustomization.yaml", kustomization)
    assert images.pin_overlay(kustomization, {"ops": digest}) == ["ops"]
    assert f"- {{name: prizeflow/ops, newName: registry.example.com/prizeflow/ops, digest: {digest}}}" in (
        kustomization.read_text(encoding="utf-8")
    )
