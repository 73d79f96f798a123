"""docker-compose.yml as a Docker user's `docker compose config` reads it, without Docker: resolved (YAML anchors
and merges, `${VAR:-default}` interpolation with nothing set), it validates against the Compose Specification's JSON
schema (vendored, tests/containers/compose-spec), every image is either a public one pinned to a version or built
by the file from this repository (context, Containerfile, target and build arguments that exist), and every
variable it interpolates has a default or is documented. No Docker engine or compose plugin answers here, so these
check the file the way Compose would; the build itself is tests/containers/test_image_build.py."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from prizeflow_devstack import images

pytestmark = pytest.mark.containers

ROOT = Path(__file__).resolve().parents[2]
SPEC = Path(__file__).with_name("compose-spec") / "compose-spec.json"
SPEC_SHA256 = "1f91e091f16b2dd50ab8860e02bb391d22df553d91c145eacedb1b6eff9c3f0e"  # compose-spec/README.md
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}, ${NAME?err}, ${NAME:+alt}, $NAME; `$$` is a literal $.
VARIABLE = re.compile(
    r"(?<!\$)\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def _text() -> str:
    return (ROOT / "docker-compose.yml").read_text(encoding="utf-8")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one string: a missing variable without a default is an error here (Compose would
    substitute an empty string and warn, which is how a stack starts with a port or path silently empty)."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op") or "", match.group("arg") or ""
        present = name in env and (env[name] != "" or not op.startswith(":"))
        if op in (":-", "-"):
            return env[name] if present else arg
        if op in (":+", "+"):
            return arg if present else ""
        if name not in env:
            raise KeyError(f"${{{name}}} has no default")
        return env[name]

    return VARIABLE.sub(substitute, value).replace("$$", "$")


def _resolved(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _resolved(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolved(value, env) for value in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The file as Compose models it: PyYAML resolves anchors and `<<` merges (lists of them too) as Compose's
    loader does; then every string is interpolated with no variable set."""
    doc: dict[str, Any] = _resolved(yaml.safe_load(_text()), {})
    return doc


def test_the_vendored_schema_is_the_one_recorded() -> None:
    assert hashlib.sha256(SPEC.read_bytes()).hexdigest() == SPEC_SHA256, "compose-spec.json differs from its record"


def test_the_file_validates_against_the_compose_specification(config: dict[str, Any]) -> None:
    schema = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_catches_what_compose_refuses(config: dict[str, Any]) -> None:
    """The validation above can fail: a misspelt key and a wrong type are errors."""
    schema = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    broken = {**config, "services": {**config["services"], "signer": {**config["services"]["signer"], "imgae": "x"}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))
    broken = {**config, "services": {**config["services"], "topics": {**config["services"]["topics"], "read_only": 1}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def _stages(containerfile: Path) -> set[str]:
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", containerfile.read_text(encoding="utf-8"), re.M | re.I))


def _build_args(containerfile: Path) -> set[str]:
    return set(re.findall(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)", containerfile.read_text(encoding="utf-8"), re.M))


def test_every_image_is_public_and_pinned_or_built_from_this_repository(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        image = str(service.get("image", ""))
        build = service.get("build")
        if build is None:
            assert not image.startswith("localhost/"), f"{name}: {image} exists only where it was built: add `build:`"
            registry, _, rest = image.partition("/")
            assert "." in registry, f"{name}: {image}: name the registry (docker.io/…), not a short name"
            tag = rest.rsplit(":", 1)[1] if ":" in rest.rsplit("/", 1)[-1] else ""
            assert "@sha256:" in image or (tag and tag != "latest"), f"{name}: {image} is not pinned to a version"
            continue
        context = (ROOT / build["context"]).resolve()
        assert context == ROOT, f"{name}: build context {context} is not the repository"
        containerfile = context / build["dockerfile"]
        assert containerfile.is_file(), f"{name}: {containerfile} does not exist"
        assert build["target"] in _stages(containerfile), f"{name}: no stage {build['target']} in {containerfile}"
        unknown = set(build.get("args", {})) - _build_args(containerfile)
        assert not unknown, f"{name}: build args {unknown} are not ARGs of {containerfile.name}"
        assert image.startswith("localhost/prizeflow-"), f"{name}: a built image keeps the name the devstack builds"


def test_the_build_sections_build_what_prizeflow_dev_images_builds(config: dict[str, Any]) -> None:
    """`docker compose up --build` and `prizeflow-dev images` make the same image under the same name: same stage,
    same build arguments (less WHEELS and BASE_IMAGE, which compose leaves at their defaults, and FIND_LINKS, a wheel
    mirror instead of PyPI when `PRIZEFLOW_FIND_LINKS` names one: none by default)."""
    built = {}
    for name, service in config["services"].items():
        if "build" in service:
            args = service["build"]["args"]
            spec = images.IMAGES[args["IMAGE"]]
            assert service["image"] == spec.ref, name
            assert service["build"]["target"] == images.build_target(spec), name
            assert args == images.build_args(spec, args["DEPS"]) | {"FIND_LINKS": ""}, name
            built[spec.name] = args["DEPS"]
    # the dependency layer is the runtime's whenever the package depends on the runtime
    assert built == {n: ("none" if n == "soroban-rpc" else "runtime") for n in built}
    # everything compose runs of the platform is built by it (the console is not in the stack: deploy/compose)
    assert set(built) == set(images.IMAGES) - {"console"}


def test_the_source_wheelhouse_is_built_for_every_images_package() -> None:
    """The `wheels-source` stage builds one wheelhouse for every image (its PACKAGES), so that every image's build
    shares it: an image whose package it lacks would fail to build from the repository."""
    text = (ROOT / "Containerfile").read_text(encoding="utf-8").replace("\\\n", "")
    match = re.search(r'^ARG PACKAGES="([^"]*)"$', text, re.M)
    assert match, "no ARG PACKAGES in the Containerfile"
    # and the runtime's own layer (images.RUNTIME_LAYER), which every image installs first from the same wheelhouse
    wanted = {spec.package for spec in images.IMAGES.values()} | {images.RUNTIME_LAYER.package}
    assert sorted(match.group(1).split()) == sorted(wanted)


def test_every_interpolated_variable_has_a_default_or_is_documented() -> None:
    documented = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for match in VARIABLE.finditer(_text()):
        name = match.group("braced") or match.group("bare")
        has_default = (match.group("op") or "") in (":-", "-")
        assert has_default or f"`{name}`" in documented, f"${{{name}}}: no default and not in docs/deploy.md"
    with pytest.raises(KeyError):
        interpolate("127.0.0.1:${UNSET_PORT}:8080", {})
    assert interpolate("${A:-1}/${B-2}/$${C}", {"B": ""}) == "1//${C}"


def test_the_wheels_stage_uses_the_uv_the_lock_is_written_with() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    version = re.search(r"^UV_VERSION := (\S+)$", makefile, re.M)
    assert version
    assert f"ARG UV_IMAGE=ghcr.io/astral-sh/uv:{version.group(1)}\n" in (ROOT / "Containerfile").read_text()
    assert f"ghcr.io/astral-sh/uv:{version.group(1)}" == images.UV_IMAGE


def test_the_build_context_admits_what_the_wheels_stage_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for path in ("pyproject.toml", "uv.lock", "libs/", "services/", "tools/", ".build/wheelhouse/"):
        assert f"!{path}" in ignore, f".dockerignore keeps {path} out of the build"
    assert not (ROOT / ".containerignore").exists(), "podman would read it instead of .dockerignore"
