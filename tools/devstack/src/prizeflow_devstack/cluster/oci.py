"""Images of one static binary (and the files it needs), written as OCI images without an engine, and pushed to a
registry over its HTTP API, or written as an OCI archive that `ctr images import` loads.

`FROM scratch` images: the operators' release images are distroless ones holding the binary alone; these hold the
binary, the Debian CA bundle and an empty `/tmp`. Deterministic (entries sorted, times zero, gzip without a name or
time): the same files give the same digest, so a rebuilt cluster pulls nothing new and restarts nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class ScratchImage:
    """Files (image path → host file, mode) and how the image runs."""

    files: Mapping[str, tuple[Path, int]]
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    user: str = "65532:65532"
    env: Sequence[str] = ("PATH=/usr/local/bin:/usr/bin:/bin",)
    labels: Mapping[str, str] = field(default_factory=dict)
    symlinks: Mapping[str, str] = field(default_factory=dict)  # image path → its target


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


@dataclass(frozen=True)
class Built:
    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest


def _dir_entry(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o1777 if name == "tmp" else 0o755
    return info


def _layer(image: ScratchImage) -> bytes:
    files = dict(image.files)
    if CA_BUNDLE.exists():
        files.setdefault("/etc/ssl/certs/ca-certificates.crt", (CA_BUNDLE, 0o644))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = {"tmp"}
        for path in (*files, *image.symlinks):
            parts = path.strip("/").split("/")
            directories.update("/".join(parts[:i]) for i in range(1, len(parts)))
        for directory in sorted(directories):
            tar.addfile(_dir_entry(directory))
        for path, (source, mode) in sorted(files.items()):
            data = source.read_bytes()
            info = tarfile.TarInfo(path.strip("/"))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        for path, target in sorted(image.symlinks.items()):
            link = tarfile.TarInfo(path.strip("/"))
            link.type, link.linkname, link.mode = tarfile.SYMTYPE, target, 0o777
            tar.addfile(link)
    return buf.getvalue()


def build(image: ScratchImage) -> Built:
    raw = _layer(image)
    layer = Blob(LAYER, gzip.compress(raw, compresslevel=1, mtime=0))
    config_doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": list(image.entrypoint) or None,
            "Cmd": list(image.cmd) or None,
            "Env": list(image.env),
            "User": image.user,
            "Labels": dict(image.labels) or None,
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
    }
    config = Blob(CONFIG, json.dumps(config_doc, sort_keys=True).encode())
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    }
    manifest = Blob(MANIFEST, json.dumps(manifest_doc, sort_keys=True).encode())
    return Built(manifest, config, (layer,))


def push(registry: str, repository: str, tag: str, built: Built, *, timeout: float = 300) -> str:
    """PUT the blobs (those the registry lacks) and the manifest under `tag`; the manifest's digest."""
    base = f"http://{registry}/v2/{repository}"
    with httpx.Client(timeout=timeout) as client:
        for blob in (*built.layers, built.config):
            if client.head(f"{base}/blobs/{blob.digest}").status_code == 200:
                continue
            started = client.post(f"{base}/blobs/uploads/")
            started.raise_for_status()
            location = started.headers["location"]
            if location.startswith("/"):
                location = f"http://{registry}{location}"
            sep = "&" if "?" in location else "?"
            client.put(
                f"{location}{sep}digest={blob.digest}",
                content=blob.data,
                headers={"Content-Type": "application/octet-stream"},
            ).raise_for_status()
        answer = client.put(f"{base}/manifests/{tag}", content=built.manifest.data, headers={"Content-Type": MANIFEST})
        answer.raise_for_status()
        digest = str(answer.headers.get("docker-content-digest", built.digest))
    if digest != built.digest:
        raise RuntimeError(f"{repository}:{tag}: the registry stored {digest}, not {built.digest}")
    return digest


def archive(built: Built, ref: str, out: Path) -> None:
    """An OCI image layout archive of `built`, named `ref` (what `ctr images import` reads)."""
    names = {"org.opencontainers.image.ref.name": ref, "io.containerd.image.name": ref}
    descriptor = {**built.manifest.descriptor(), "annotations": names}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [descriptor]}
    with tarfile.open(out, "w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for blob in (*built.layers, built.config, built.manifest):
            add(f"blobs/sha256/{blob.digest.removeprefix('sha256:')}", blob.data)


__all__ = ["Built", "ScratchImage", "archive", "build", "push"]
