"""Every library and service, built as the wheel it ships as, installed into a clean venv with only the runtime
dependencies it declares (pinned by uv.lock, offline from uv's cache), imports every one of its modules.

This is what the source-tree tests cannot see: a module importing a package its project does not declare (it
is there in the workspace venv because a sibling or the dev group brings it), a file the wheel leaves out, a
product module reaching for the testkit, the devstack or pytest (none of them is installed here).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _declared(project: Path) -> int:
    return len(tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"])


# Libraries first, each group from the fewest declared dependencies up: consecutive syncs of the shared venv
# (below) then mostly add packages instead of removing and reinstalling them.
PROJECTS = sorted(
    (p.parent for p in [*ROOT.glob("libs/*/pyproject.toml"), *ROOT.glob("services/*/pyproject.toml")]),
    key=lambda p: (p.parent.name != "libs", _declared(p), p.name),
)
# Nothing a product wheel depends on may bring these in: they are dev tooling.
DEV_ONLY = [
    "prizeflow_testkit", "prizeflow_devstack", "prizeflow_soroban_emulator", "prizeflow_emulator_kit",
    "prizeflow_simulator", "pytest",
]  # fmt: skip

# Modules are found by walking the installed files (a directory without `__init__.py` is a namespace package
# that pkgutil would not descend into), and imported one by one.
IMPORT_ALL = r"""
import importlib, importlib.util, json, pathlib, sys, traceback
package, venv, dev_only = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
root = pathlib.Path(importlib.util.find_spec(package).origin).parent
names = sorted(
    ".".join((package, *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
    for p in root.rglob("*.py")
)
failed, imported = {}, []
for name in names:
    try:
        module = importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=4)
        continue
    if not str(module.__file__ or "").startswith(venv):
        failed[name] = f"imported from {module.__file__}, not from the venv"
    imported.append(name)
present = [m for m in dev_only if importlib.util.find_spec(m) is not None]
print(json.dumps({"imported": imported, "failed": failed, "dev_only_present": present}))
"""


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv") or str(ROOT / ".devstack" / "tools" / "bin" / "uv")
    if not Path(found).is_file():
        pytest.fail("uv not found: put it on PATH (or set UV); `make sync` installs it under .devstack/tools/bin")
    return found


def _run(*args: str, cwd: Path = ROOT) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON", "UV_PROJECT"))}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _name(project: Path) -> str:
    return str(tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"])


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One wheel per library and service, built once per session (offline: the build backend from uv's cache)."""
    out = tmp_path_factory.mktemp("wheels")
    for project in PROJECTS:
        _run(_uv(), "build", "--wheel", "--offline", "--quiet", "--package", _name(project), "--out-dir", str(out))
    return out


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One venv for the session, synced to exactly one package's closure per test (`uv pip sync` removes what
    the package does not declare): the dependencies packages share keep their compiled bytecode from one test
    to the next, which is most of the time a fresh venv per package would spend."""
    path = tmp_path_factory.mktemp("wheel-venv") / "venv"
    _run(_uv(), "venv", "--offline", "--quiet", "--python", sys.executable, str(path))
    return path


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_wheel_imports_every_module_with_only_its_declared_dependencies(
    project: Path, wheels: Path, venv: Path, tmp_path: Path
) -> None:
    uv, name = _uv(), _name(project)
    package = name.replace("-", "_")
    # Its closure as uv.lock pins it: the workspace members it needs (installed from their wheels below) and the
    # third-party packages (from uv's cache).
    lock = tmp_path / "pylock.deps.toml"
    _run(uv, "export", "--frozen", "--no-dev", "--quiet", "--package", name, "--format", "pylock.toml", "-o", str(lock))
    members = sorted(p["name"] for p in tomllib.loads(lock.read_text())["packages"] if "directory" in p)
    assert name in members, f"{name} missing from its own export: {members}"
    third_party = tmp_path / "pylock.toml"
    _run(
        uv, "export", "--frozen", "--no-dev", "--quiet", "--package", name, "--no-emit-workspace",
        "--format", "pylock.toml", "-o", str(third_party),
    )  # fmt: skip
    python = str(venv / "bin" / "python")
    _run(uv, "pip", "sync", "--offline", "--quiet", "--python", python, str(third_party))
    built = [next(wheels.glob(f"{m.replace('-', '_')}-*.whl")) for m in members]
    _run(uv, "pip", "install", "--offline", "--quiet", "--no-deps", "--python", python, *map(str, built))
    _run(uv, "pip", "check", "--offline", "--python", python)  # every Requires-Dist of every wheel is met

    report = json.loads(
        _run(python, "-I", "-c", IMPORT_ALL, package, str(venv), json.dumps(DEV_ONLY), cwd=tmp_path).splitlines()[-1]
    )

    assert not report["failed"], "\n".join(f"{m}:\n{tb}" for m, tb in report["failed"].items())
    assert not report["dev_only_present"], f"dev tooling installed with {name}: {report['dev_only_present']}"
    shipped = {
        ".".join(p.relative_to(project / "src").with_suffix("").parts).removesuffix(".__init__")
        for p in (project / "src" / package).rglob("*.py")
    }
    missing = shipped - set(report["imported"])
    assert not missing, f"modules in src/ that the wheel does not bring: {sorted(missing)}"


def _tracked(directory: Path) -> list[Path]:
    """The files git tracks under `directory` (a wheel must not depend on what happens to lie in a checkout)."""
    out = _run("git", "ls-files", "-z", "--", str(directory.relative_to(ROOT)))
    return [ROOT / name for name in out.split("\0") if name]


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_wheel_carries_every_data_file_of_its_package(project: Path, wheels: Path) -> None:
    """Templates, static assets, schemas, py.typed: what a package reads from its own directory at run time is in
    its wheel (the imports above cannot see a missing template or stylesheet)."""
    package = _name(project).replace("-", "_")
    [wheel] = wheels.glob(f"{package}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        inside = set(archive.namelist())
    src = project / "src"
    data = {p.relative_to(src).as_posix() for p in _tracked(src / package) if p.suffix != ".py"}
    assert data <= inside, f"{wheel.name} lacks {sorted(data - inside)}"
    if package == "prizeflow_console":  # the console serves its pages and assets from the installed package
        assert {
            "prizeflow_console/templates/base.html",
            "prizeflow_console/static/console.css",
            "prizeflow_console/static/console.js",
            "prizeflow_console/static/vendor/htmx.min.js",
        } <= inside
        with zipfile.ZipFile(wheel) as archive:
            vendored = archive.read("prizeflow_console/static/vendor/htmx.min.js")
        assert vendored == (src / package / "static" / "vendor" / "htmx.min.js").read_bytes()


def test_the_console_images_requirements_are_its_locked_closure_over_the_runtimes() -> None:
    """The wheelhouse's export for the console image (images.export_requirements, `uv export --frozen`): its
    workspace wheels, its own dependencies pinned with hashes, and every pin of the shared runtime layer
    (prizeflow-runtime.txt, installed first: DEPS=runtime) at the same version, so the console's install only adds to
    that layer."""
    from prizeflow_devstack import images

    locked, members = images.export_requirements(ROOT, images.IMAGES["console"])
    assert members == ["prizeflow-console", "prizeflow-contracts", "prizeflow-runtime"]
    pins = _pins(locked)
    assert {"litestar", "jinja2", "httpx", "pyjwt", "cryptography", "uvicorn", "uvloop"} <= set(pins)
    assert "--hash=sha256:" in locked
    assert not [line for line in locked.splitlines() if line.startswith("-e ")], "workspace packages come as wheels"
    runtime_layer = _pins(images.export_requirements(ROOT, images.RUNTIME_LAYER)[0])
    assert {name: pins.get(name) for name in runtime_layer} == runtime_layer


def _pins(locked: str) -> dict[str, str]:
    """`name==version` of each requirement of a requirements.txt export (markers and hashes dropped)."""
    pins = {}
    for line in locked.splitlines():
        if line and not line[0].isspace() and "==" in line:
            name, _, rest = line.partition("==")
            pins[name.strip().lower()] = rest.split(";")[0].split()[0].rstrip("\\").strip()
    return pins
