"""Convert operators' CRD YAML into the strict JSON schemas deploy/k8s/schemas holds (tests/deploy validates with them).

Like kubeconform's openapi2jsonschema, strict: an object that lists `properties` admits nothing else
(`additionalProperties: false`) unless the CRD says `x-kubernetes-preserve-unknown-fields`; `required`, enums, bounds
and patterns are kept; `x-kubernetes-int-or-string` becomes "integer or string"; `nullable` admits null. Descriptions
and defaults are dropped (the schemas validate, they do not document). `metadata` gets the fields a Prizeflow
manifest may set (name, namespace, labels, annotations), so a typo there fails too.

Each schema records where it came from (repository, tag, path) in `$comment`. To refresh: bump a tag in SOURCES,
fetch the repositories (any clone or bare mirror) and run
`uv run --frozen python -m prizeflow_devstack.crd_schemas --git cloudnative-pg/cloudnative-pg=<git dir> ...`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from prizeflow_devstack.paths import resolve_root


@dataclass(frozen=True)
class Source:
    repo: str  # owner/name on GitHub
    tag: str
    path: str  # the CRD YAML in that repository at that tag
    version: str  # the served version to convert


SOURCES: tuple[Source, ...] = (
    Source("cloudnative-pg/cloudnative-pg", "v1.30.0", "config/crd/bases/postgresql.cnpg.io_clusters.yaml", "v1"),
    Source(
        "cloudnative-pg/cloudnative-pg", "v1.30.0", "config/crd/bases/postgresql.cnpg.io_scheduledbackups.yaml", "v1"
    ),
    Source("cloudnative-pg/cloudnative-pg", "v1.30.0", "config/crd/bases/postgresql.cnpg.io_backups.yaml", "v1"),
    Source(
        "cloudnative-pg/plugin-barman-cloud", "v0.14.0", "config/crd/bases/barmancloud.cnpg.io_objectstores.yaml", "v1"
    ),
    Source("strimzi/strimzi-kafka-operator", "1.2.0", "packaging/install/cluster-operator/040-Crd-kafka.yaml", "v1"),
    Source(
        "strimzi/strimzi-kafka-operator", "1.2.0", "packaging/install/cluster-operator/045-Crd-kafkanodepool.yaml", "v1"
    ),
    Source(
        "strimzi/strimzi-kafka-operator", "1.2.0", "packaging/install/cluster-operator/043-Crd-kafkatopic.yaml", "v1"
    ),
    Source(
        "strimzi/strimzi-kafka-operator", "1.2.0", "packaging/install/cluster-operator/044-Crd-kafkauser.yaml", "v1"
    ),
    Source(
        "external-secrets/external-secrets",
        "v2.9.0",
        "config/crds/bases/external-secrets.io_externalsecrets.yaml",
        "v1",
    ),
)

# Validation keywords kept as they are; everything else (descriptions, defaults, formats, x-kubernetes-* hints,
# CEL rules a static check cannot run) is dropped.
_KEPT = {"type", "enum", "required", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
_KEPT |= {"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties", "uniqueItems"}

_METADATA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def strict(node: Mapping[str, Any], *, branch: bool = False) -> dict[str, Any]:
    """One OpenAPI v3 schema node of a CRD, as a strict JSON schema node. Inside a `oneOf`/`anyOf`/`allOf` branch
    (which in a structural schema only restates fields of its parent, e.g. "one of these two is required") nothing is
    closed: the parent already is."""
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEPT}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    if "properties" in node:
        out["properties"] = {name: strict(child, branch=branch) for name, child in node["properties"].items()}
    if isinstance(node.get("additionalProperties"), Mapping):
        out["additionalProperties"] = strict(node["additionalProperties"], branch=branch)
    elif node.get("x-kubernetes-preserve-unknown-fields"):
        pass  # free-form below this point (Kafka `config`, a plugin's `parameters`, ...)
    elif "properties" in node and not branch:
        out["additionalProperties"] = False
    if "items" in node:
        out["items"] = strict(node["items"], branch=branch)
    for key in ("oneOf", "anyOf", "allOf"):
        if key in node:
            out[key] = [strict(b, branch=True) for b in node[key]]
    if "not" in node:
        out["not"] = strict(node["not"], branch=True)
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def convert(crd: Mapping[str, Any], source: Source) -> dict[str, Any]:
    """The JSON schema of one served version of a CustomResourceDefinition."""
    spec = crd["spec"]
    [version] = [v for v in spec["versions"] if v["name"] == source.version]
    if not version.get("served"):
        raise ValueError(f"{source.repo}@{source.tag} {source.path}: {source.version} is not served")
    group, kind = spec["group"], spec["names"]["kind"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["apiVersion"] = {"const": f"{group}/{source.version}"}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = _METADATA
    schema["required"] = sorted({"apiVersion", "kind", "metadata", *schema.get("required", [])})
    schema["additionalProperties"] = False
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"github.com/{source.repo} {source.tag} {source.path} ({source.version}); converted by "
        "tools/devstack/src/prizeflow_devstack/crd_schemas.py",
        "title": f"{kind} ({group}/{source.version})",
        **schema,
    }


def file_name(schema: Mapping[str, Any]) -> str:
    api, kind = schema["properties"]["apiVersion"]["const"], schema["properties"]["kind"]["const"]
    return f"{api.replace('/', '_')}_{kind}.json"


def dump(schema: Mapping[str, Any]) -> str:
    """Minified, keys in order, one line (the files are read by machines; `$comment` says where they came from)."""
    return json.dumps(schema, separators=(",", ":"), sort_keys=True) + "\n"


def _read(git_dir: Path, source: Source) -> Any:
    text = subprocess.run(
        ["git", f"--git-dir={git_dir}", "show", f"{source.tag}:{source.path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    [crd] = [d for d in yaml.safe_load_all(text) if d and d.get("kind") == "CustomResourceDefinition"]
    return crd


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="crd_schemas", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--git", action="append", default=[], metavar="OWNER/NAME=GIT_DIR", help="where each repository is"
    )
    parser.add_argument("--root", type=Path, default=None, help="repo root (default: discovered from cwd)")
    args = parser.parse_args(argv)
    repos = dict(item.split("=", 1) for item in args.git)
    missing = sorted({s.repo for s in SOURCES} - set(repos))
    if missing:
        parser.error(f"no --git for {', '.join(missing)}")
    out = resolve_root(args.root) / "deploy" / "k8s" / "schemas"
    for source in SOURCES:
        schema = convert(_read(Path(repos[source.repo]), source), source)
        path = out / file_name(schema)
        path.write_text(dump(schema))
        print(f"wrote {path.relative_to(out.parents[2])} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
