"""The images the cluster runs besides Prizeflow's, in its registry (`registry.prizeflow.internal`), by digest.

- the pod sandbox (`pause`, from Kubernetes' own pause.c), imported into containerd directly;
- each operator and add-on: its Go binary in a scratch image (oci.py), as their release images are distroless;
- what runs Debian software: PostgreSQL 15 for CloudNativePG (the operand), the barman-cloud sidecar (the plugin's
  Go binary and barman-cloud from PyPI, pinned by the plugin's own requirements), Apache Kafka at the bundle's
  version, Squid (the egress proxy), nginx (the rehearsal's simulated internet), built with podman from the
  project's debootstrap bases (`prizeflow_devstack.images`) and the Containerfiles in tools/devstack/cluster/images.

`.devstack/cluster/images.json` records each image's reference by digest; the add-ons' manifests read it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from prizeflow_devstack import images as project_images
from prizeflow_devstack.cluster import oci
from prizeflow_devstack.cluster import versions as v
from prizeflow_devstack.cluster.build import go_binary
from prizeflow_devstack.cluster.paths import ClusterPaths
from prizeflow_devstack.kafka import ensure_jars

REGISTRY_HOST = "registry.prizeflow.internal"
PAUSE_REF = f"registry.k8s.io/pause:{v.PAUSE}"


@dataclass(frozen=True)
class GoImage:
    name: str
    tag: str
    component: str
    files: Mapping[str, str]  # image path → binary of the component
    entrypoint: tuple[str, ...]
    user: str = "65532:65532"
    symlinks: Mapping[str, str] = field(default_factory=dict)


GO_IMAGES: tuple[GoImage, ...] = (
    GoImage("coredns", v.COREDNS, "coredns", {"/coredns": "coredns"}, ("/coredns",)),
    GoImage(
        "local-path-provisioner",
        v.LOCAL_PATH_PROVISIONER,
        "local-path-provisioner",
        {"/usr/bin/local-path-provisioner": "local-path-provisioner"},
        ("/usr/bin/local-path-provisioner",),
        user="0:0",
    ),
    # As CloudNativePG's own image lays it out: the operator finds the architectures it can give instances by
    # listing operator/manager_* (it refuses to report a cluster's status without one); /manager links to this one.
    GoImage(
        "cloudnative-pg",
        v.CLOUDNATIVE_PG,
        "cloudnative-pg",
        {"/operator/manager_amd64": "manager"},
        ("/manager",),
        symlinks={"/manager": "operator/manager_amd64"},
    ),
    GoImage(
        "plugin-barman-cloud", v.PLUGIN_BARMAN_CLOUD, "plugin-barman-cloud", {"/manager": "manager"}, ("/manager",)
    ),
    GoImage(
        "external-secrets",
        v.EXTERNAL_SECRETS,
        "external-secrets",
        {"/bin/external-secrets": "external-secrets"},
        ("/bin/external-secrets",),
        "65534:65534",
    ),
    GoImage("keda", v.KEDA, "keda", {"/keda": "operator"}, ("/keda",), "1000:1000"),
    GoImage("keda-metrics-apiserver", v.KEDA, "keda", {"/keda-adapter": "adapter"}, ("/keda-adapter",), "1000:1000"),
    GoImage("versitygw", v.VERSITYGW, "versitygw", {"/usr/bin/versitygw": "versitygw"}, ("/usr/bin/versitygw",)),
)


class ImageError(RuntimeError):
    """An image of the cluster could not be built, imported or pushed."""


def _ctr(paths: ClusterPaths, *args: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(
        ["ctr", "-a", str(paths.containerd_socket), "-n", "k8s.io", *args],
        input=stdin,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise ImageError(f"ctr {' '.join(args[:2])} failed: {result.stderr.decode()[-2000:]}")
    return result.stdout.decode()


def _pause_source() -> Path:
    modcache = subprocess.run([go_binary(), "env", "GOMODCACHE"], capture_output=True, text=True, check=True)
    source = Path(modcache.stdout.strip()) / f"k8s.io/kubernetes@{v.KUBERNETES}" / "build/pause/linux/pause.c"
    if not source.exists():
        raise ImageError(f"{source} is missing: build the cluster's components first (prizeflow-cluster build)")
    return source


def ensure_pause_image(root: Path) -> None:
    """The pod sandbox image, compiled from Kubernetes' pause.c (static) and imported into containerd."""
    paths = ClusterPaths(root)
    if PAUSE_REF in _ctr(paths, "images", "ls", "-q").split():
        return
    with tempfile.TemporaryDirectory(prefix="prizeflow-pause-") as tmp:
        binary = Path(tmp) / "pause"
        subprocess.run(
            ["gcc", "-Os", "-static", f"-DVERSION=v{v.PAUSE}-prizeflow", "-o", str(binary), str(_pause_source())],
            check=True,
            capture_output=True,
        )
        subprocess.run(["strip", str(binary)], check=True)
        built = oci.build(oci.ScratchImage({"/pause": (binary, 0o755)}, entrypoint=("/pause",)))
        archive = Path(tmp) / "pause.tar"
        oci.archive(built, PAUSE_REF, archive)
        _ctr(paths, "images", "import", str(archive))


def _record(paths: ClusterPaths) -> Path:
    return paths.base / "images.json"


def load_refs(root: Path) -> dict[str, str]:
    path = _record(ClusterPaths(root))
    return json.loads(path.read_text()) if path.exists() else {}


def _save_refs(root: Path, refs: Mapping[str, str]) -> None:
    path = _record(ClusterPaths(root))
    path.write_text(json.dumps(dict(sorted(refs.items())), indent=2) + "\n")


def forget_missing(root: Path, registry_port: int, *, say: Callable[[str], None] = print) -> dict[str, str]:
    """The recorded refs the registry still holds: one it lost (its storage deleted or collected) is forgotten, so
    `up` builds and pushes it again instead of installing a pod that can never pull it."""
    refs = load_refs(root)
    kept: dict[str, str] = {}
    with httpx.Client(timeout=10) as client:
        for name, ref in refs.items():
            repository, digest = ref.removeprefix(f"{REGISTRY_HOST}/").split(":", 1)[0], ref.rsplit("@", 1)[-1]
            answer = client.head(
                f"http://127.0.0.1:{registry_port}/v2/{repository}/manifests/{digest}",
                headers={"Accept": f"{oci.MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"},
            )
            if answer.status_code == 200:
                kept[name] = ref
            else:
                say(f"cluster: the registry lost {repository}@{digest[:19]}: it is pushed again")
    if kept != refs:
        _save_refs(root, kept)
    return kept


def push_go_images(root: Path, registry_port: int, *, say: Callable[[str], None] = print) -> dict[str, str]:
    paths = ClusterPaths(root)
    refs = load_refs(root)
    for image in GO_IMAGES:
        files = {path: (paths.binary(image.component, binary), 0o755) for path, binary in image.files.items()}
        built = oci.build(
            oci.ScratchImage(files, entrypoint=image.entrypoint, user=image.user, symlinks=image.symlinks)
        )
        repository = f"prizeflow-cluster/{image.name}"
        ref = f"{REGISTRY_HOST}/{repository}:{image.tag}@{built.digest}"
        if refs.get(image.name) != ref:
            oci.push(f"127.0.0.1:{registry_port}", repository, image.tag, built)
            say(f"cluster: pushed {repository}:{image.tag} ({built.digest[:19]})")
        refs[image.name] = ref
    _save_refs(root, refs)
    return refs


# ---- Debian-based images, with podman ------------------------------------------------------------------------------


def _context_dir(root: Path, name: str) -> Path:
    return root / "tools" / "devstack" / "cluster" / "images" / name


def _podman_push(root: Path, local: str, registry_port: int, repository: str, tag: str) -> str:
    with tempfile.TemporaryDirectory(prefix="prizeflow-push-") as tmp:
        digest_file = Path(tmp) / "digest"
        project_images.podman(
            root, "push", "--quiet", "--tls-verify=false", "--digestfile", str(digest_file),
            local, f"127.0.0.1:{registry_port}/{repository}:{tag}",
        )  # fmt: skip
        return digest_file.read_text().strip()


def _podman_build(root: Path, context: Path, tag: str, build_args: Mapping[str, str]) -> None:
    args = [f"--build-arg={k}={val}" for k, val in build_args.items()]
    project_images.podman(root, "build", "--quiet", "--format", "docker", *args, "-t", tag, str(context))


def _installed_version(root: Path, image: str, package: str) -> str:
    out = project_images.podman(root, "run", "--rm", image, "dpkg-query", "-W", "-f=${Version}", package).stdout
    return out.strip().split("-", 1)[0]


def build_debian_images(root: Path, registry_port: int, *, say: Callable[[str], None] = print) -> dict[str, str]:
    """PostgreSQL 15 (CloudNativePG's operand), the barman-cloud sidecar, Kafka, Squid, nginx: built and pushed."""
    paths = ClusterPaths(root)
    refs = load_refs(root)
    infra = project_images.debian_base(root, "infra")
    python = project_images.debian_base(root, "python")
    edge = project_images.debian_base(root, "edge")
    pg_version = _installed_version(root, infra, "postgresql-15")
    plan: list[tuple[str, str, str, dict[str, str], Callable[[Path], None] | None]] = [
        ("postgresql", f"{pg_version}-bookworm", "postgresql", {"BASE": infra}, None),
        (
            "plugin-barman-cloud-sidecar",
            v.PLUGIN_BARMAN_CLOUD,
            "barman-cloud-sidecar",
            {"BASE": python},
            lambda ctx: _sidecar_context(root, paths, ctx),
        ),
        ("kafka", v.KAFKA, "kafka", {"BASE": infra}, lambda ctx: _kafka_context(root, ctx)),
        ("squid", "bookworm", "squid", {"BASE": edge}, None),
        ("edge", "bookworm", "edge", {"BASE": edge}, None),
    ]
    for name, tag, context_name, build_args, prepare in plan:
        local = f"localhost/prizeflow-cluster/{name}:{tag}"
        with tempfile.TemporaryDirectory(prefix=f"prizeflow-cluster-{name}-") as tmp:
            context = Path(tmp) / "context"
            shutil.copytree(_context_dir(root, context_name), context)
            if prepare is not None:
                prepare(context)
            _podman_build(root, context, local, build_args)
        repository = f"prizeflow-cluster/{name}"
        digest = _podman_push(root, local, registry_port, repository, tag)
        refs[name] = f"{REGISTRY_HOST}/{repository}:{tag}@{digest}"
        say(f"cluster: built and pushed {repository}:{tag} ({digest[:19]})")
        _save_refs(root, refs)
    return refs


def push_tool_images(root: Path, registry_port: int, *, say: Callable[[str], None] = print) -> dict[str, str]:
    """The Python images the cluster runs from the project's Containerfile (the Strimzi stand-in, the emulators of
    the rehearsal's simulated internet): built as `prizeflow-dev images` builds the platform's, and pushed."""
    refs = load_refs(root)
    names = list(project_images.CLUSTER_IMAGES)
    project_images.build_images(root, names)
    for name in names:
        spec = project_images.CLUSTER_IMAGES[name]
        repository = f"prizeflow-cluster/{name}"
        digest = _podman_push(root, spec.ref, registry_port, repository, "dev")
        refs[name] = f"{REGISTRY_HOST}/{repository}:dev@{digest}"
        say(f"cluster: pushed {repository}:dev ({digest[:19]})")
    _save_refs(root, refs)
    return refs


def _sidecar_context(root: Path, paths: ClusterPaths, context: Path) -> None:
    """The plugin's Go binary and barman-cloud's wheels (the plugin's own pinned, hashed requirements), downloaded on
    the host: no index is reachable from inside a build here. One substitution: `psycopg2` is published as a source
    distribution only (the plugin's image compiles it against libpq-dev), so its code comes from `psycopg2-binary`
    of the same version (the same module, libpq bundled), hashed as downloaded; everything else is installed from
    exactly the plugin's hashes, without resolving dependencies again (`--no-deps`)."""
    shutil.copy2(paths.binary("plugin-barman-cloud", "manager"), context / "manager")
    shutil.copy2(project_images.uv_binary(), context / "uv")
    modcache = subprocess.run([go_binary(), "env", "GOMODCACHE"], capture_output=True, text=True, check=True)
    upstream = (
        Path(modcache.stdout.strip())
        / f"github.com/cloudnative-pg/plugin-barman-cloud@{v.PLUGIN_BARMAN_CLOUD}"
        / "containers"
        / "sidecar-requirements.txt"
    ).read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", upstream)
    psycopg = next(b for b in blocks if b.startswith("psycopg2=="))
    version = psycopg.split()[0].split("==", 1)[1]
    requirements = context / "requirements.txt"
    requirements.write_text("\n".join(b for b in blocks if not b.startswith("psycopg2==")) + "\n")
    wheels = context / "wheels"
    wheels.mkdir()
    download = [
        project_images.uv_binary(), "tool", "run", "--from", project_images.PIP, "pip", "download", "--quiet",
        "--no-deps", "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
        "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
        "--platform", "manylinux_2_28_x86_64", "--dest", str(wheels),
    ]  # fmt: skip
    subprocess.run([*download, "-r", str(requirements)], check=True, cwd=root, capture_output=True)
    subprocess.run([*download, f"psycopg2-binary=={version}"], check=True, cwd=root, capture_output=True)
    [binary] = wheels.glob("psycopg2_binary-*.whl")
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    with requirements.open("a") as out:
        out.write(f"psycopg2-binary=={version} --hash=sha256:{digest}\n")


def _kafka_context(root: Path, context: Path) -> None:
    standin = root / "deploy" / "images" / "standins" / "kafka"
    for part in ("bin", "config"):
        shutil.copytree(standin / part, context / part)
    shutil.copytree(ensure_jars(v.KAFKA), context / "libs", ignore=shutil.ignore_patterns(".*"))


__all__ = [
    "GO_IMAGES",
    "REGISTRY_HOST",
    "build_debian_images",
    "ensure_pause_image",
    "load_refs",
    "push_go_images",
    "push_tool_images",
]
