"""docker-compose.yml on Docker's own engine, as the README tells a user to run it: `docker compose up --build`.

Debian's dockerd (tools/devstack/scripts/ensure-docker.sh installs it and builds the pinned Compose v2 plugin) runs
with its own data-root under `.devstack/docker/` unless a Docker engine already answers; it stops again after this
module. No image registry is reachable here, so the official images the file runs and the Python base its builds
start from are podman's (pulled, or the local stand-ins under the same names), saved into Docker's engine; the
platform's images are built by Compose from the repository (`WHEELS=source`, the Containerfile's default), with the
host's wheelhouse offered as the package mirror (`PRIZEFLOW_FIND_LINKS`: no package index is reachable from inside a
build). Then the scenario every engine plays (tests/support/compose_scenario.py): a sponsored round paid on the
sandbox, and Prometheus scraping every service; and what Compose built from the repository installs the same
distributions as podman's image from the host's wheelhouse (the tier builds each image once per engine). Everything
is torn down after (the fixture asserts nothing is left).

Also here, because it needs an engine that answers: the devstack keeps its local PostgreSQL and Kafka binaries while
a Docker engine runs, unless `PRIZEFLOW_DEVSTACK_INFRA=docker` asks for testcontainers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from compose_scenario import a_sponsored_round_is_paid, prometheus_scrapes_every_service

from prizeflow_devstack import docker_engine, docker_infra, images, infra
from prizeflow_devstack.compose import NOT_RUNNABLE_HERE, PORT_ENV, DockerComposeStack, ensure_compose_secrets
from prizeflow_devstack.ports import pick_free_port
from prizeflow_devstack.sbom import SBOM_PATH

pytestmark = [pytest.mark.containers, pytest.mark.timeout(2400)]  # its fixture installs, loads and builds first

# What the compose file runs without building it, and what its builds start from (the Containerfile's BASE_IMAGE and
# UV_IMAGE defaults).
ENGINE_IMAGES = (
    images.PYTHON_BASE,
    images.UV_IMAGE,
    images.POSTGRES_IMAGE,
    images.kafka_image(),
    images.PROMETHEUS_IMAGE,
)


def _note(message: str) -> None:
    print(f"\n[docker] {message}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def engine(repo_root: Path) -> Iterator[docker_engine.Engine]:
    """docker.io and the Compose plugin installed (or the tier fails here), and a Docker engine answering."""
    script = repo_root / "tools" / "devstack" / "scripts" / "ensure-docker.sh"
    started = time.monotonic()
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, f"Docker cannot be installed here:\n{result.stdout}{result.stderr}"
    running = docker_engine.ensure_engine(repo_root)
    how = f"started dockerd (pid {running.pid}, {running.log})" if running.pid else f"using {running.host}"
    _note(
        f"Docker {running.server_version}, storage driver {running.storage_driver}: {how}, "
        f"{time.monotonic() - started:.0f} s{''.join('; ' + n for n in running.notes)}"
    )
    try:
        yield running
    finally:
        assert docker_engine.stop_engine(running), "the dockerd this module started did not stop"


def test_the_devstack_keeps_its_local_binaries_while_a_docker_engine_answers(
    engine: docker_engine.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make test` and `make run` provision PostgreSQL and Kafka from the local binaries even when a Docker engine
    answers (this machine has no registry for testcontainers' images, and the container tier's dockerd runs beside
    the other lanes); `PRIZEFLOW_DEVSTACK_INFRA=docker` asks for testcontainers, and then an engine must answer."""
    (tmp_path / "pyproject.toml").write_text("[tool.uv.workspace]\nmembers = []\n", encoding="utf-8")
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "PRIZEFLOW_DEVSTACK_INFRA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    assert infra._docker_answers(), "the engine must answer `docker info` for this test to mean anything"

    class Chosen(Exception):
        """Raised where ensure_infra would start something, carrying which it chose."""

    def local(*args: object) -> tuple[str, str]:
        raise Chosen("local")

    def testcontainers(*args: object, **kwargs: object) -> tuple[str, str]:
        raise Chosen("docker")

    monkeypatch.setattr(infra, "_ensure_local", local)
    monkeypatch.setattr(docker_infra, "ensure", testcontainers)
    with pytest.raises(Chosen, match=r"^local$"):
        infra.ensure_infra(tmp_path)
    monkeypatch.setenv("PRIZEFLOW_DEVSTACK_INFRA", "docker")
    with pytest.raises(Chosen, match=r"^docker$"):
        infra.ensure_infra(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    with pytest.raises(infra.InfraError, match="no Docker engine answers"):
        infra.ensure_infra(tmp_path)


@pytest.fixture(scope="module")
def docker_stack(
    repo_root: Path,
    engine: docker_engine.Engine,
    built_images: dict[str, images.Built],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DockerComposeStack]:
    """`docker compose --profile demo up --detach --build --wait` (every service but Grafana); torn down after.
    podman's images from the host's wheelhouse are built first (`built_images`): the tests below hold what Compose
    built from the repository to them."""
    started = time.monotonic()
    # podman's images of the same names first, as its tier makes them (the two Debian root filesystems behind the
    # stand-ins concurrently): what the engine lacks is copied from there.
    images.ensure_infrastructure_images(repo_root)
    for ref, how in docker_engine.ensure_images(repo_root, engine, list(ENGINE_IMAGES)).items():
        _note(f"{ref}: {how}")
    images.build_wheelhouse(repo_root, sorted(images.IMAGES.values(), key=lambda s: s.name))
    mirror = images.wheel_mirror(repo_root, tmp_path_factory.mktemp("docker") / "find-links")
    ensure_compose_secrets(repo_root)
    _note(f"engine images and the wheel mirror ready in {time.monotonic() - started:.0f} s")
    taken: set[int] = set()
    ports = {}
    for name in PORT_ENV:
        ports[name] = pick_free_port(taken)
        taken.add(ports[name])
    with docker_engine.serve_wheels(mirror, engine.gateway(), docker_engine.mirror_port(repo_root)) as find_links:
        # One build at a time: without buildx, Compose builds each service in a build session of its own, and the
        # shared wheelhouse and runtime layers are only reused from the cache once a first build has made them (two
        # cores: concurrent builds of the same layers would only compete).
        build_env = {"PRIZEFLOW_FIND_LINKS": find_links, "COMPOSE_PARALLEL_LIMIT": "1"}
        stack = DockerComposeStack(
            repo_root, f"pfdock{uuid.uuid4().hex[:6]}", ports, engine, profiles=("demo",), build_env=build_env
        )
        for service, why in NOT_RUNNABLE_HERE.items():
            _note(f"{service}: not started here ({why}); every other service of docker-compose.yml is")
        up = time.monotonic()
        try:
            stack.up(timeout=360)
            stack.startup_s = time.monotonic() - up
            _note(f"docker compose up --build: {stack.project} built and healthy in {stack.startup_s:.0f} s")
            yield stack
        finally:
            left = stack.down()
            engine.docker("image", "prune", "--force", check=False)  # the images this build replaced
            results = repo_root / ".results"
            results.mkdir(exist_ok=True)
            timings = {"startup_s": stack.startup_s, **stack.timings, "tier_s": time.monotonic() - started}
            (results / "compose-docker.json").write_text(json.dumps(timings, indent=2))
            (results / "compose-docker.log").write_text("\n".join(stack.log))  # compose's own output, builds included
            assert left == [], f"docker compose down left {left}"
            _note(f"{stack.project} torn down: no container, network or volume left ({timings['tier_s']:.0f} s)")


async def test_docker_compose_up_build_pays_a_sponsored_round_on_the_sandbox(
    docker_stack: DockerComposeStack, repo_root: Path
) -> None:
    docker_stack.timings["smoke_s"] = await a_sponsored_round_is_paid(docker_stack, repo_root)


def test_prometheus_scrapes_every_service_under_docker(docker_stack: DockerComposeStack) -> None:
    prometheus_scrapes_every_service(docker_stack)


def test_every_platform_container_runs_an_image_this_compose_project_built(docker_stack: DockerComposeStack) -> None:
    """`--build` built them: each platform image is labelled with this project by the Compose that built it (none
    came from podman, none from an earlier run)."""
    running = {str(c["Service"]): str(c["Image"]) for c in docker_stack.containers()}
    platform = {service: ref for service, ref in running.items() if ref.startswith("localhost/prizeflow-")}
    built = {spec.ref for spec in images.IMAGES.values() if spec.name != "console"}  # no console in the stack
    assert set(platform.values()) == built
    for service, ref in platform.items():
        inspect = docker_stack.engine.docker("image", "inspect", ref, "--format", "{{json .Config.Labels}}")
        labels = json.loads(inspect.stdout)
        assert labels.get("com.docker.compose.project") == docker_stack.project, (service, ref, labels)


def _pypi_versions(sbom_json: str) -> dict[str, str]:
    sbom = json.loads(sbom_json)
    return {c["name"]: c["version"] for c in sbom["components"] if c["purl"].startswith("pkg:pypi/")}


def test_what_compose_built_from_the_repository_installs_what_the_wheelhouse_image_does(
    docker_stack: DockerComposeStack, repo_root: Path
) -> None:
    """The `wheels-source` stage (the Containerfile's default; Compose built every image with it above, from the
    repository and uv.lock alone, the host's downloaded wheels offered only as a plain package mirror) installs the
    same distributions at the same versions as the image `prizeflow-dev images` builds from the host's wheelhouse,
    with its own SBOM; its packages import on a read-only root with no network; the same user and entrypoint."""
    engine = docker_stack.engine
    ref = images.IMAGES["settlement"].ref
    cat = ("run", "--rm", "--network=none", "--entrypoint", "cat", ref, SBOM_PATH)
    from_source = _pypi_versions(engine.docker(*cat).stdout)
    from_house = _pypi_versions(images.podman(repo_root, *cat).stdout)
    assert from_source == from_house
    assert len(from_source) > 20, sorted(from_source)  # the whole closure, not an empty SBOM read twice
    probe = "import prizeflow_settlement.bootstrap, prizeflow_runtime, alembic"
    engine.docker("run", "--rm", "--read-only", "--network=none", ref, "python", "-c", probe)
    config = json.loads(engine.docker("image", "inspect", ref, "--format", "{{json .Config}}").stdout)
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/usr/local/bin/tini", "--"]
