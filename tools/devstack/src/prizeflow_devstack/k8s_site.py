"""`prizeflow-k8s --check-overlay <overlay>`: the values an operator gives an overlay, checked before anything renders.

Kustomize refuses an overlay whose site value is missing (overlays/prod/site.yaml reads each one), but it copies any
value it is given. This reads the overlay's site.env, site-lists.yaml and databases.env as kustomize does and refuses
what would render and still be wrong: a placeholder (an example or reserved host, a documentation address, the zero
digest), an image by tag only or a PostgreSQL of another major, an address range wider than the API server's, a
restore into the cluster it restores from. Each problem names the file and the key.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

POSTGRES_MAJOR = 15  # what every test runs (tests/deploy/test_k8s_durability.py checks the bundle agrees)
DIGEST = re.compile(r"@sha256:(?P<hex>[0-9a-f]{64})$")
# Reserved for examples and documentation (RFC 2606, RFC 6761, RFC 5737): never an installation's own.
PLACEHOLDER_HOST = re.compile(r"(^|\.)(example\.(com|net|org)|example|invalid|localhost)$")
DOCUMENTATION_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
HOST = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")
# A cluster name: the service's prefix, and none of the suffixes components/databases splits names on.
CLUSTER = re.compile(r"(?P<service>[a-z]+)-db(-[a-z0-9]+)*")
TARGET_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?\+00(:00)?")


def read_env(path: Path) -> dict[str, str]:
    """An env file as kustomize reads it: `key=value` lines, `#` comments and blank lines skipped."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _host(value: str) -> str | None:
    if not HOST.fullmatch(value):
        return f"{value!r} is not a host name"
    if PLACEHOLDER_HOST.search(value):
        return f"{value} is a placeholder (a name reserved for examples)"
    return None


def _url(value: str) -> str | None:
    if not value.startswith("https://"):
        return f"{value!r} is not an https:// URL"
    return _host(value.removeprefix("https://").split("/", 1)[0])


def _image(value: str) -> str | None:
    digest = DIGEST.search(value)
    if digest is None:
        return f"{value} is not named by digest (<image>:<tag>@sha256:<64 hex digits>)"
    if set(digest.group("hex")) == {"0"}:
        return f"{value}: the zero digest names no image"
    registry = value.split("/", 1)[0].split(":", 1)[0]  # a registry's host, its port aside
    return _host(registry) if "." in registry else None


def _postgres_image(value: str) -> str | None:
    problem = _image(value)
    if problem:
        return problem
    tag = re.search(r":(?P<major>\d+)[^:@/]*@", value)
    if tag is None:
        return f"{value} has no tag: CloudNativePG reads the PostgreSQL major from it (keep the tag before the digest)"
    if int(tag.group("major")) != POSTGRES_MAJOR:
        return f"{value} is PostgreSQL {tag.group('major')}; every test runs {POSTGRES_MAJOR}"
    return None


def _network(value: str, *, widest: int) -> str | None:
    try:
        network = ipaddress.ip_network(value)
    except ValueError:
        return f"{value!r} is not an address range (a.b.c.d/n)"
    if any(network.subnet_of(n) for n in DOCUMENTATION_NETS):  # type: ignore[arg-type]
        return f"{value} is a documentation range (RFC 5737), a placeholder"
    if network.prefixlen < widest:
        return f"{value} is wider than a /{widest}: name the address itself"
    return None


def _crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def _stellar_account(value: str) -> str | None:
    """A Stellar account's public key (SEP-23 strkey: `G`, 56 characters, its CRC16 checksum right)."""
    problem = f"{value!r} is not a Stellar account (G..., 56 characters)"
    if len(value) != 56 or not value.startswith("G"):
        return problem
    try:
        raw = base64.b32decode(value)
    except ValueError:
        return problem
    body, checksum = raw[:-2], raw[-2:]
    if body[0] != 6 << 3 or checksum != _crc16_xmodem(body).to_bytes(2, "little"):
        return f"{value!r}: its checksum is wrong (a typo)"
    return None


def _port(value: str) -> str | None:
    return None if value.isdigit() and 0 < int(value) < 65536 else f"{value!r} is not a port"


# site.env key → its check. A key no rule names is still checked for a placeholder host.
SITE_RULES: Mapping[str, Callable[[str], str | None]] = {
    "object-store-host": _host,
    "postgres-image": _postgres_image,
    "hsm-client-image": _image,
    "hsm-address": lambda v: _network(v, widest=24),
    "hsm-port": _port,
    "identity-issuer": _url,
    "identity-jwks-url": _url,
    "identity-discovery-url": _url,
    "console-host": _host,
    "webhooks-host": _host,
    "topup-success-url": _url,
    "topup-cancel-url": _url,
    "soroban-rpc-url": _url,
    "payout-source-account": _stellar_account,
}


def _replacement_sources(overlay: Path) -> list[dict[str, str]]:
    """The sources of the overlay's site.yaml replacements and of the replacements its components declare (the HSM
    client's image is read by components/signer-hsm, where the container it names is)."""
    sources: list[dict[str, str]] = []
    path = overlay / "site.yaml"
    if path.is_file():
        sources += [r["source"] for r in yaml.safe_load(path.read_text(encoding="utf-8"))]
    kustomization = overlay / "kustomization.yaml"
    if kustomization.is_file():
        for component in yaml.safe_load(kustomization.read_text(encoding="utf-8")).get("components") or []:
            listed = (overlay / component / "kustomization.yaml").resolve()
            if listed.is_file():
                declared = yaml.safe_load(listed.read_text(encoding="utf-8")).get("replacements") or []
                sources += [r["source"] for r in declared if "source" in r]
    return sources


# What the bundle itself holds where each site value goes (a render of the overlay without site.yaml's replacements,
# a delimited target's part): a site value equal to it was left as the bundle's placeholder, or the development
# setting the base runs with (Stellar's testnet RPC, under prod's public network). tests/deploy/test_k8s_site.py
# holds this table to the bundle.
BASE_PLACEHOLDERS: Mapping[str, str] = {
    "object-store-host": "object-store.invalid",
    "postgres-image": "ghcr.io/cloudnative-pg/postgresql:15.18-standard-bookworm",
    "hsm-client-image": "set-by-site-env/hsm-client-image",
    "hsm-address": "192.0.2.1/32",
    "hsm-port": "1",
    "identity-issuer": "https://id.example.com/",
    "identity-jwks-url": "https://id.example.com/.well-known/jwks.json",
    "identity-discovery-url": "https://id.example.com/.well-known/openid-configuration",
    "console-host": "console.example.com",
    "webhooks-host": "hooks.example.com",
    "topup-success-url": "https://play.example.com/top-up/success?session_id={CHECKOUT_SESSION_ID}",
    "topup-cancel-url": "https://play.example.com/top-up/cancelled",
    "soroban-rpc-url": "https://soroban-testnet.stellar.org",
    "payout-source-account": "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7",
}


def required_site_keys(overlay: Path) -> set[str]:
    """The site.env keys the overlay's site.yaml replacements read (what kustomize refuses to render without)."""
    sources = _replacement_sources(overlay)
    return {
        s["fieldPath"].removeprefix("data.")
        for s in sources
        if s["kind"] == "ConfigMap" and s["name"] == "prizeflow-site"
    }


def required_site_lists(overlay: Path) -> set[str]:
    """The site-lists.yaml keys (`spec.<key>`) the overlay's site.yaml replacements read."""
    return {s["fieldPath"].removeprefix("spec.") for s in _replacement_sources(overlay) if s["kind"] == "SiteValues"}


def read_site_lists(overlay: Path) -> dict[str, Any]:
    """site-lists.yaml's `spec`: each list site value by its key ({} when the file or the spec is missing)."""
    path = overlay / "site-lists.yaml"
    if not path.is_file():
        return {}
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return dict(doc.get("spec") or {})


def _ip_blocks(value: Any, *, widest: int) -> list[str]:
    """A list of NetworkPolicy peers, each exactly `{ipBlock: {cidr: <range>}}` of a narrow, real range."""
    if not isinstance(value, list) or not value:
        return ["is not a list of `- ipBlock: {cidr: <range>}` entries"]
    problems = []
    for entry in value:
        block = entry.get("ipBlock") if isinstance(entry, dict) and set(entry) == {"ipBlock"} else None
        if not isinstance(block, dict) or set(block) != {"cidr"}:
            problems.append(f"{entry!r} is not `ipBlock: {{cidr: <range>}}` (no `except`, no other peer)")
            continue
        if problem := _network(str(block["cidr"]), widest=widest):
            problems.append(problem)
    cidrs = [str(e.get("ipBlock", {}).get("cidr")) for e in value if isinstance(e, dict)]
    if len(set(cidrs)) != len(cidrs):
        problems.append("names a range twice")
    return problems


# site-lists.yaml key → its check (each problem a sentence).
LIST_RULES: Mapping[str, Callable[[Any], list[str]]] = {
    "kubernetes-api": lambda v: _ip_blocks(v, widest=16),
}


def check_site(overlay: Path) -> list[str]:
    required = required_site_keys(overlay)
    lists = required_site_lists(overlay)
    if not required and not lists:
        return []
    path = overlay / "site.env"
    values = read_env(path) if path.is_file() else {}
    problems = [f"site.env: {key} is not set" for key in sorted(required - set(values))]
    for key, value in values.items():
        rule = SITE_RULES.get(key)
        problem = rule(value) if rule else None
        if problem is None and value == BASE_PLACEHOLDERS.get(key):
            problem = f"{value} is what the bundle holds there until a site value replaces it: set this installation's"
        if problem is None and PLACEHOLDER_HOST.search(value.split("//")[-1].split("/")[0]):
            problem = f"{value} is a placeholder"
        if problem:
            problems.append(f"site.env: {key}: {problem}")
    given = read_site_lists(overlay)
    problems += [f"site-lists.yaml: {key} is not set" for key in sorted(lists - set(given))]
    for key, value in given.items():
        list_rule = LIST_RULES.get(key)
        problems += [f"site-lists.yaml: {key}: {p}" for p in (list_rule(value) if list_rule else [])]
    return problems


# The digests of the Prizeflow images built on the development machine and pinned in overlays/prod (docs/deploy.md
# "Images": registry.example.com holds nothing): never a release's. The release step (`prizeflow-dev images --push
# <registry>/prizeflow --tag <version> --pin overlays/prod`) replaces them with its own; tests/deploy/test_k8s_site.py
# holds this set to what is committed.
DEVELOPMENT_DIGESTS = frozenset(
    {
        "sha256:1a50e9b83f1dcf31760bffe2fb0cd9ca120b8c9218044afa23eb54f9a3f4f314",
        "sha256:55a669a90889978bd17a5a81570ca98d378b814464900c1b363d64cd37978aa9",
        "sha256:58a65abce7547b3c777e9439cf86ff822c63aca90d4ca2a6041bff634b52992c",
        "sha256:692e1ae8488ad43ca202528f061ad80ab94b7f49477c1ccdba8a677974f45e56",
        "sha256:85d0423ad8447776e4f05e8da1deeacbd43020a05a03c1a053e0d51ce14ecd3f",
        "sha256:b9203d1512d99d483b2a1d93f34091cd9b414647dd9d46c6b7e60930246388a9",
        "sha256:f64091472fe313d67e3ca2f1d1992230b7269f32a5cc487c3bab2fe78a8d51cb",
    }
)


def check_images(overlay: Path) -> list[str]:
    """kustomization.yaml's `images:`: every one pinned by digest, none from a registry reserved for examples, none a
    development build's (the committed digests until a release pins its own)."""
    path = overlay / "kustomization.yaml"
    if not path.is_file():
        return []
    problems = []
    for entry in yaml.safe_load(path.read_text(encoding="utf-8")).get("images") or []:
        name, image = entry["name"], entry.get("newName", entry["name"])
        registry = image.split("/", 1)[0].split(":", 1)[0]
        digest = entry.get("digest")
        if "." in registry and PLACEHOLDER_HOST.search(registry):
            problems.append(
                f"kustomization.yaml: images: {name}: {image} is in {registry}, a registry reserved for examples: "
                "push and pin this release (`prizeflow-dev images --push <registry>/prizeflow --tag <version> --pin "
                'deploy/k8s/overlays/prod`, docs/deploy.md "Images")'
            )
        if digest is None:
            problems.append(f"kustomization.yaml: images: {name} is not pinned by digest")
        elif digest in DEVELOPMENT_DIGESTS:
            problems.append(f"kustomization.yaml: images: {name}: {digest} is a development build's, not a release's")
    return problems


def check_databases(overlay: Path, services: tuple[str, ...]) -> list[str]:
    """databases.env: each service's cluster is one of its own names; a restore names another cluster of the same
    service to restore from, and a time in UTC; and it is listed as a component (or it restores nothing)."""
    path = overlay / "databases.env"
    if not path.is_file():
        return []
    values = read_env(path)
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = {c.rstrip("/").rsplit("/", 2)[-1] for c in kustomization.get("components", []) if "/restore/" in c}
    problems = []
    for service in services:
        cluster = values.get(service)
        if cluster is None:
            continue
        match = CLUSTER.fullmatch(cluster)
        if match is None or match.group("service") != service or re.search(r"-(app|nightly|rw)(-|$)", cluster):
            problems.append(f"databases.env: {service}={cluster} is not `{service}-db` or `{service}-db-<suffix>`")
        origin, when = values.get(f"{service}-restore-from"), values.get(f"{service}-restore-target-time")
        if service in listed and (origin is None or when is None):
            problems.append(
                f"databases.env: components/restore/{service} is listed: set {service}-restore-from and "
                f"{service}-restore-target-time"
            )
        if origin is None and when is None:
            continue
        if service not in listed:
            problems.append(
                f"databases.env: a restore of {service} without ../../components/restore/{service} in "
                "kustomization.yaml restores nothing"
            )
        if origin == cluster:
            problems.append(
                f"databases.env: {service} restores into {cluster}, the cluster it restores from: "
                f"a restore builds a NEW cluster (e.g. {cluster}-r1)"
            )
        elif origin is not None and not (CLUSTER.fullmatch(origin) and origin.startswith(f"{service}-db")):
            problems.append(f"databases.env: {service}-restore-from={origin} is not a cluster of {service}")
        if when is not None:
            if not TARGET_TIME.fullmatch(when):
                problems.append(
                    f"databases.env: {service}-restore-target-time={when} is not "
                    "`YYYY-MM-DD HH:MM:SS[.ffffff]+00` (UTC)"
                )
            elif datetime.fromisoformat(when.replace(" ", "T")) > datetime.now().astimezone():
                problems.append(f"databases.env: {service}-restore-target-time={when} is in the future")
    return problems


__all__ = [
    "BASE_PLACEHOLDERS",
    "DEVELOPMENT_DIGESTS",
    "POSTGRES_MAJOR",
    "check_databases",
    "check_images",
    "check_site",
    "read_env",
    "read_site_lists",
    "required_site_keys",
    "required_site_lists",
]
