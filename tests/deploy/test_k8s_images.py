"""Which images production runs, and what the signer's PKCS#11 setting points at, statically (rendered overlays).

- Every image the prod overlay runs is named by digest: a tag names whatever was pushed under it last, so a
  tag-only reference lets a registry change what production runs without a commit.
- The signer's PKCS#11 library (SIGNER_PKCS11_MODULE) is provided: the file is written into a volume by an init
  container whose image the overlay pins, and that volume is mounted read-only at the setting's directory in the
  signer. The Prizeflow image has no vendor library, so a path nothing provides is a signer that cannot start.
- `prizeflow-dev images --pin` rewrites an overlay's `images:` to digests, which kustomize renders as `name@digest`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from k8s_helpers import k8s_helpers

from prizeflow_devstack import images

pytestmark = pytest.mark.k8s


K8S = k8s_helpers()
DIGEST_REF = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
Doc = dict[str, Any]
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


def _pod_specs(docs: tuple[Doc, ...]) -> list[tuple[str, Doc]]:
    found = []
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
            found.append((f"{doc['kind']}/{doc['metadata']['name']}", spec["template"]["spec"]))
    return found


def _images(docs: tuple[Doc, ...]) -> dict[str, str]:
    """`<kind>/<name>/<container>` → image, for every container and init container of every workload."""
    return {
        f"{where}/{c['name']}": c["image"]
        for where, pod in _pod_specs(docs)
        for c in [*pod.get("initContainers", []), *pod["containers"]]
    }


def test_every_image_production_runs_is_named_by_digest() -> None:
    running = _images(K8S.rendered("prod"))
    assert any(
        "prizeflow/signer@" in ref or "prizeflow/signer:" in ref for ref in running.values()
    )  # the Prizeflow images are among them
    tag_only = {where: ref for where, ref in running.items() if not DIGEST_REF.match(ref)}
    assert not tag_only, f"referenced by tag only (pin by digest: `prizeflow-dev images --pin`): {tag_only}"


def test_every_prizeflow_image_of_the_prod_overlay_is_pinned_where_the_release_writes_it() -> None:
    """The overlay's `images:` entries are what `--pin` rewrites: each Prizeflow image the base names has one, with
    a digest and no tag."""
    kustomization = K8S.K8S / "overlays" / "prod" / "kustomization.yaml"
    listed = images.overlay_image_names(kustomization)
    base = {ref.split("/", 1)[1] for ref in _images(K8S.rendered("dev")).values() if ref.startswith("localhost/")}
    assert {name.removeprefix("prizeflow-").split(":")[0] for name in base} <= listed
    entries = K8S.yaml.safe_load(kustomization.read_text(encoding="utf-8"))["images"]
    for entry in entries:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", entry.get("digest", "")), entry
        assert "newTag" not in entry, f"{entry['name']}: a tag beside the digest is ignored by kustomize; drop it"


def _signer(overlay: str) -> tuple[Doc, Doc, dict[str, str]]:
    docs = K8S.rendered(overlay)
    pod = K8S.named(docs, "Deployment", "signer")["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "signer")
    return pod, container, K8S._config(docs, container)


def test_the_signers_pkcs11_module_is_provided_by_a_mounted_volume() -> None:
    pod, container, env = _signer("prod")
    assert env["SIGNER_BACKEND"] == "pkcs11"
    module = PurePosixPath(env["SIGNER_PKCS11_MODULE"])
    mounts = [m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == module.parent]
    assert len(mounts) == 1, f"nothing is mounted at {module.parent}, where SIGNER_PKCS11_MODULE={module} is read"
    mount = mounts[0]
    assert mount.get("readOnly") is True, "the signer must not be able to replace its own PKCS#11 library"
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert set(volume) == {"name", "emptyDir"}, volume
    writers = [
        (init, m)
        for init in pod.get("initContainers", [])
        for m in init.get("volumeMounts", [])
        if m["name"] == volume["name"] and not m.get("readOnly")
    ]
    assert len(writers) == 1, "exactly one init container writes the module's volume"
    init, at = writers[0]
    target = init["command"][-1]
    assert PurePosixPath(target) == PurePosixPath(at["mountPath"]) / module.name, (
        f"{init['name']} writes {target}; the signer reads {module} (= {at['mountPath']}/{module.name} in it)"
    )
    assert init["command"][:2] == ["cp", "-L"], "the library itself is copied, not a symlink into the init image"
    assert DIGEST_REF.match(init["image"]), init["image"]


def test_the_dev_signer_keeps_its_hot_key_and_needs_no_module() -> None:
    pod, container, env = _signer("dev")
    assert env["SIGNER_BACKEND"] == "hot_key"
    assert "SIGNER_PKCS11_MODULE" not in env
    assert "initContainers" not in pod
    assert all(m["mountPath"] != "/opt/hsm/lib" for m in container["volumeMounts"])


def test_pinning_rewrites_the_images_entries_and_kustomize_renders_them_by_digest(tmp_path: Path) -> None:
    overlay = tmp_path / "overlays" / "pinned"
    shutil.copytree(K8S.K8S / "overlays" / "dev", overlay)
    shutil.copytree(K8S.K8S / "base", tmp_path / "base")
    shutil.copytree(K8S.K8S / "components", tmp_path / "components")
    kustomization = overlay / "kustomization.yaml"
    names = images.overlay_image_names(kustomization)
    digests = {name: f"sha256:{index:064x}" for index, name in enumerate(sorted(names), start=1)}
    assert sorted(images.pin_overlay(kustomization, digests, repository="registry.test/prizeflow")) == sorted(names)
    out = subprocess.run([K8S.tool("kustomize"), "build", str(overlay)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    docs = tuple(d for d in K8S.yaml.safe_load_all(out.stdout) if d)
    refs = set(_images(docs).values())
    assert {f"registry.test/prizeflow/{n}@{d}" for n, d in digests.items()} <= refs
    assert not [ref for ref in refs if "prizeflow" in ref and "@" not in ref]
    with pytest.raises(images.ImageError, match="not a sha256 digest"):
        images.pin_overlay(kustomization, {"signer": "0.1.0"})


def test_the_hsm_clients_configuration_and_certificates_are_mounted_where_its_library_reads_them() -> None:
    """The init container copied the library alone: a vendor's client also reads its configuration and the
    certificates the configuration names (Luna: Chrystoki.conf, in the directory ChrystokiConfigurationPath names).
    They come from the Secret signer-hsm-client (an ExternalSecret in prod), read-only where the variable points."""
    pod, container, env = _signer("prod")
    directory = PurePosixPath(env["ChrystokiConfigurationPath"])
    [mount] = [m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == directory]
    assert mount.get("readOnly") is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "signer-hsm-client"
    assert volume["secret"]["defaultMode"] == 0o440, "the pod's group reads it, no one else"
    docs = K8S.rendered("prod")
    [secret] = [d for d in docs if d["kind"] == "ExternalSecret" and d["metadata"]["name"] == "signer-hsm-client"]
    assert {"Chrystoki.conf", "client.pem", "client-key.pem", "server.pem"} == {
        d["secretKey"] for d in secret["spec"]["data"]
    }
    [init] = pod["initContainers"]
    assert init["image"] == K8S.SITE["hsm-client-image"]
    assert not init["image"].endswith("0" * 64), "the zero digest names no image"
    assert PurePosixPath(env["SIGNER_PKCS11_MODULE"]).parent != directory, "the library and its configuration apart"
