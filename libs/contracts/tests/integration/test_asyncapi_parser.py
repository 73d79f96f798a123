"""The AsyncAPI document as the official parser (@asyncapi/parser, Node) sees it.

Our own shape tests cannot tell whether AsyncAPI tooling accepts the document; the parser can. It is pinned in
tools/asyncapi-lint (`make asyncapi-lint-deps` installs it). Missing node or packages fail these tests, never skip
them: a skipped check would let an invalid document through unnoticed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import yaml
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from prizeflow_contracts import asyncapi

pytestmark = pytest.mark.integration  # runs the official parser under Node

REPO_ROOT = Path(__file__).resolve().parents[4]
LINT_DIR = REPO_ROOT / "tools" / "asyncapi-lint"
VALIDATE = LINT_DIR / "validate.mjs"
HOW_TO_INSTALL = "run `make asyncapi-lint-deps` (npm ci in tools/asyncapi-lint)"
# Exit status of validate.mjs: 0 clean, 1 a diagnostic at or above --fail-on; anything else is a broken run.
CLEAN, FLAGGED = 0, 1


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, once the pinned parser is known to be installed (else a failure saying how)."""
    exe = shutil.which("node")
    if exe is None:
        pytest.fail(f"node is not on PATH: install Node.js (>= 18), then {HOW_TO_INSTALL}")
    installed = LINT_DIR / "node_modules" / "@asyncapi" / "parser" / "package.json"
    if not installed.is_file():
        pytest.fail(f"@asyncapi/parser is not installed: {HOW_TO_INSTALL}")
    lock = json.loads((LINT_DIR / "package-lock.json").read_text(encoding="utf-8"))
    pinned = lock["packages"]["node_modules/@asyncapi/parser"]["version"]
    version = json.loads(installed.read_text(encoding="utf-8"))["version"]
    if version != pinned:
        pytest.fail(f"@asyncapi/parser {version} is installed but {pinned} is pinned: {HOW_TO_INSTALL}")
    return exe


def parse(node: str, document: Path) -> tuple[int, list[dict[str, Any]]]:
    """validate.mjs's exit status and diagnostics for one file."""
    proc = subprocess.run(
        [node, str(VALIDATE), str(document)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode not in (CLEAN, FLAGGED):
        pytest.fail(f"validate.mjs exited {proc.returncode}: {proc.stderr.strip()}")
    report = json.loads(proc.stdout)
    (result,) = report["files"]
    diagnostics: list[dict[str, Any]] = result["diagnostics"]
    return proc.returncode, diagnostics


def problems(diagnostics: list[dict[str, Any]]) -> list[str]:
    """Errors and warnings, one readable line each (information, e.g. "3.1.0 exists", is not a problem)."""
    return [
        f"{d['severity']} at {'/'.join(d['path'])} (line {d['line']}): {d['message']} [{d['code']}]"
        for d in diagnostics
        if d["severity"] in {"error", "warning"}
    ]


def test_committed_document_passes_the_official_parser(node: str) -> None:
    status, diagnostics = parse(node, REPO_ROOT / asyncapi.DOC_PATH)
    assert problems(diagnostics) == []
    assert status == CLEAN


def test_freshly_rendered_document_passes_the_official_parser(node: str, tmp_path: Path) -> None:
    # The committed copy may lag the models until someone regenerates it; this checks what the generator makes now.
    target = tmp_path / "asyncapi.yaml"
    asyncapi.main(["--output", str(target)])
    status, diagnostics = parse(node, target)
    assert problems(diagnostics) == []
    assert status == CLEAN


# --- the generator's 2020-12 -> AsyncAPI translation, on shapes today's payloads may not all use -------------


class _Payment(BaseModel):
    type: Literal["payment"] = "payment"
    amount: int


class _Invoke(BaseModel):
    type: Literal["invoke", "invoke_v2"]
    args: tuple[str, int]


class _Batch(BaseModel):
    ops: list[Annotated[_Payment | _Invoke, Field(discriminator="type")]]
    window: tuple[int, int]
    tags: tuple[str, ...]


def _document(schemas: dict[str, Any]) -> dict[str, Any]:
    return {
        "asyncapi": asyncapi.ASYNCAPI_VERSION,
        "info": {"title": "translation check", "version": "1.0.0"},
        "components": {"schemas": schemas},
    }


def _pydantic_schemas() -> dict[str, Any]:
    _, defs = models_json_schema([(_Batch, "validation")], ref_template=asyncapi.REF_PREFIX + "{model}")
    schemas: dict[str, Any] = defs["$defs"]
    return schemas


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_parser_rejects_pydantic_output_as_is(node: str, tmp_path: Path) -> None:
    # Proves the check can fail: pydantic's OpenAPI-style discriminator object is an error in an AsyncAPI schema.
    raw = _pydantic_schemas()
    assert isinstance(raw["_Batch"]["properties"]["ops"]["items"]["discriminator"], dict)
    status, diagnostics = parse(node, _write(tmp_path / "raw.yaml", _document(raw)))
    assert status == FLAGGED
    errors = [d for d in diagnostics if d["severity"] == "error"]
    assert any(d["path"][-1] == "discriminator" and "string" in d["message"] for d in errors), errors


def test_parser_accepts_the_translated_schemas(node: str, tmp_path: Path) -> None:
    translated = {name: asyncapi.asyncapi_schema(schema) for name, schema in _pydantic_schemas().items()}
    ops = translated["_Batch"]["properties"]["ops"]["items"]
    assert ops["discriminator"] == "type"
    assert ops[asyncapi.DISCRIMINATOR_MAPPING] == {
        "invoke": "#/components/schemas/_Invoke",
        "invoke_v2": "#/components/schemas/_Invoke",
        "payment": "#/components/schemas/_Payment",
    }
    assert translated["_Batch"]["properties"]["window"]["items"] == [{"type": "integer"}, {"type": "integer"}]
    status, diagnostics = parse(node, _write(tmp_path / "translated.yaml", _document(translated)))
    assert problems(diagnostics) == []
    assert status == CLEAN
