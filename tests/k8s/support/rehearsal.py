"""The rehearsal's operator: a checkout of the release as an operator holds it (deploy/k8s with its site values), the
release step that pushes and pins its images, the secret store its ExternalSecrets read, and the documentation's
`k8s:<step>` blocks run line by line as written, in bash, from the checkout's deploy/k8s (placeholders filled, nothing
else changed).

The site values are the rehearsal's: its simulated internet's names (internet.py), the node's registry, the
Kubernetes API's address, and the overlay swapped for one node (components/one-node, components/signer-hot-key,
components/private-ca: what docs/deploy.md "The rehearsal" says is not rehearsed).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from runbook_docs import fill, parse
from runbook_shell import UV_SHIM  # `uv run [--frozen]` steps aside: the checkout's environment is this one

from prizeflow_devstack.cluster import versions as cluster_versions
from prizeflow_devstack.cluster.images import REGISTRY_HOST
from prizeflow_devstack.cluster.kube import Kube
from prizeflow_devstack.cluster.paths import ClusterPaths

ROOT = Path(__file__).resolve().parents[3]
NAMESPACE = "prizeflow"
LINE_DEFAULT_S = 600.0
LINE_CAP_S = 900.0


@dataclass(frozen=True)
class Ran:
    line: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float


class StepFailed(AssertionError):
    """A documented command failed on the cluster: the doc, the step, the line and what it printed."""


@dataclass
class Operator:
    """Runs the documentation's commands against the cluster, from a checkout's deploy/k8s."""

    kube: Kube
    workdir: Path
    log: list[Ran] = field(default_factory=list)
    steps: list[tuple[str, str]] = field(default_factory=list)  # (doc, step) of every block run to its end

    def env(self, checkout: Path) -> dict[str, str]:
        paths = self.kube.paths
        shim = self.workdir / "bin"
        shim.mkdir(parents=True, exist_ok=True)
        (shim / "uv").write_text(UV_SHIM)
        (shim / "uv").chmod(0o755)
        tools = [shim, paths.bin / "kubernetes", paths.bin / "cloudnative-pg", Path(sys.executable).parent]
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PRIZEFLOW_", "KUBECONFIG"))},
            "KUBECONFIG": str(paths.admin_kubeconfig),
            "PATH": os.pathsep.join([*map(str, tools), os.environ.get("PATH", "")]),
            "PRIZEFLOW_ROOT": str(ROOT),
            "NO_COLOR": "1",
            "HOME": os.environ.get("HOME", "/root"),
            "RELEASE_CHECKOUT": str(checkout),
        }

    def sh(self, line: str, checkout: Path, *, timeout: float | None = None, extra_env: Mapping[str, str] = {}) -> Ran:
        """One line in bash; a line that outlives its bound (line_bound) is killed with its children, and fails as
        exit 124 with what it printed so far (a hang reports itself, never the test's own timeout)."""
        bound = line_bound(line) if timeout is None else timeout
        started = time.monotonic()
        proc = subprocess.Popen(
            ["bash", "-c", f"set -euo pipefail\n{line}"],
            cwd=checkout / "deploy" / "k8s",
            env={**self.env(checkout), **extra_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=bound)
            returncode = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            stderr += f"\n(the rehearsal killed this line after {bound:.0f} s: its bound, see line_bound)"
            returncode = 124
        ran = Ran(line, returncode, stdout, stderr, time.monotonic() - started)
        self.log.append(ran)
        return ran

    def step(
        self,
        doc: str,
        step: str,
        checkout: Path,
        values: Mapping[str, str] = {},
        *,
        extra_env: Mapping[str, str] = {},
    ) -> list[Ran]:
        """Every command of the doc's ```bash k8s:<step>``` block, in order; the first that fails raises."""
        block = k8s_block(ROOT / doc, step)
        done = []
        for line in block:
            ran = self.sh(fill(line, values), checkout, extra_env=extra_env)
            done.append(ran)
            if ran.returncode != 0:
                raise StepFailed(
                    f"{doc} k8s:{step}: `{ran.line}` exited {ran.returncode} after {ran.seconds:.0f} s\n"
                    f"--- stdout ---\n{ran.stdout[-4000:]}\n--- stderr ---\n{ran.stderr[-4000:]}\n"
                    f"--- the cluster ---\n{self.diagnose()}"
                )
        self.steps.append((doc, step))
        return done

    def diagnose(self) -> str:
        """What an operator looks at when a step fails: pods, the operators' objects and their conditions, backups
        that failed and why, the namespace's last events."""
        kinds = ",".join(
            [
                *("kafka", "kafkanodepool", "kafkauser", "kafkatopic", "externalsecret", "jobs"),
                *("cluster.postgresql.cnpg.io", "backups.postgresql.cnpg.io"),
            ]
        )
        pods = self.kube.run("get", "pods", "-A", "-o", "wide", check=False)
        objects = self.kube.run("-n", NAMESPACE, "get", kinds, "-o", "wide", check=False)
        conditions = self.kube.run(
            "-n", NAMESPACE, "get", kinds, "-o",
            "jsonpath={range .items[*]}{.kind}/{.metadata.name}: {.status.phase} {.status.error} "
            "{range .status.conditions[?(@.status!='True')]}[{.type}={.status} {.reason}: {.message}] {end}\n{end}",
            check=False,
        )  # fmt: skip
        events = self.kube.run("-n", NAMESPACE, "get", "events", "--sort-by=.lastTimestamp", check=False)
        # last, where a cut report still shows it: the node (a taint keeps every pod off it) and the disk under it
        node = self.kube.run(
            "get", "nodes", "-o",
            "jsonpath={range .items[*]}node {.metadata.name}: taints [{range .spec.taints[*]}{.key}:{.effect} {end}] "
            "{range .status.conditions[*]}{.type}={.status} {end}\n{end}",
            check=False,
        )  # fmt: skip
        usage = shutil.disk_usage(ROOT)
        disk = f"disk of {ROOT}: {usage.free / 1e9:.1f} GB free of {usage.total / 1e9:.0f} GB"
        return f"{pods}\n{objects}\n{conditions}\n{events[-4000:]}\n{node}\n{disk}"

    def last_lines(self, count: int = 25) -> str:
        """The last documented lines run, with exit codes and times (all of them: .results/k8s-rehearsal.log)."""
        return "\n".join(f"{r.seconds:7.1f} s  rc={r.returncode}  {r.line}" for r in self.log[-count:])


def line_bound(line: str) -> float:
    """How long the rehearsal lets one documented line run: its own longest `--timeout=` and a minute, at most
    LINE_CAP_S (a 60-minute backup wait that hangs on a failed backup must fail the rehearsal with the cluster's
    state, inside CI's time), LINE_DEFAULT_S for a line that bounds nothing itself."""
    units = {"s": 1, "m": 60, "h": 3600}
    own = [float(n) * units[u] for n, u in re.findall(r"--timeout[= ](\d+)([smh])\b", line)]
    if not own:
        return LINE_DEFAULT_S
    return min(LINE_CAP_S, max(own) + 60)


def k8s_blocks() -> list[tuple[str, str]]:
    """(doc, step) of every `k8s:<step>` block of the documentation (docs/ and deploy/k8s/README.md)."""
    found = []
    for path in (*sorted((ROOT / "docs").rglob("*.md")), ROOT / "deploy" / "k8s" / "README.md"):
        if "k8s:" not in path.read_text(encoding="utf-8"):
            continue
        runbook = parse(path)
        for block in runbook.blocks:
            step = re.search(r"\bk8s:(?P<name>[a-z-]+)", block.info)
            if step:
                found.append((str(path.relative_to(ROOT)), step.group("name")))
    return found


def k8s_block(doc: Path, step: str) -> list[str]:
    """The command lines of the one ```bash k8s:<step>``` block of `doc`."""
    runbook = parse(doc) if doc.suffix == ".md" else None
    assert runbook is not None
    found = [b for b in runbook.blocks if re.search(rf"\bk8s:{re.escape(step)}\b", b.info)]
    assert len(found) == 1, f"{doc.name}: {len(found)} blocks tagged k8s:{step}"
    return found[0].command_lines()


# ---- the release: a checkout as the operator holds it --------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """The rehearsal's site values (overlays/prod/site.env and site-lists.yaml)."""

    values: Mapping[str, str]
    api_addresses: tuple[str, ...]
    source_account: str
    hot_key_seed: str


def site_env(values: Mapping[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())


def checkout(workdir: Path, name: str) -> Path:
    """A copy of the repository's deploy/k8s (as committed or not: what this run tests) under `workdir/name`."""
    target = workdir / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ROOT / "deploy" / "k8s", target / "deploy" / "k8s", ignore=shutil.ignore_patterns("schemas"))
    return target


def make_site(release: Path, site: Site) -> None:
    """The operator's own changes to overlays/prod: the site values, and one node's components in place of the
    production sizing and the HSM (a change an operator would commit in their copy)."""
    prod = release / "deploy" / "k8s" / "overlays" / "prod"
    (prod / "site.env").write_text(site_env(site.values))
    lists = yaml.safe_load((prod / "site-lists.yaml").read_text()) or {}
    lists["spec"] = {"kubernetes-api": [{"ipBlock": {"cidr": a}} for a in site.api_addresses]}
    (prod / "site-lists.yaml").write_text(yaml.safe_dump(lists, sort_keys=False))
    kustomization = prod / "kustomization.yaml"
    text = kustomization.read_text()
    for old, new in (
        ("  - ../../components/production-size\n", "  - ../../components/one-node\n"),
        ("  - ../../components/signer-hsm\n", "  - ../../components/signer-hot-key\n  - ../../components/private-ca\n"),
    ):
        assert old in text, f"overlays/prod lists no {old.strip()}"
        text = text.replace(old, new)
    kustomization.write_text(text)


def edit_kustomization(release: Path, *, images: Mapping[str, str]) -> None:
    """Image references of overlays/prod (`images:`), as an operator edits the file (literals: set_literals)."""
    path = release / "deploy" / "k8s" / "overlays" / "prod" / "kustomization.yaml"
    doc = yaml.safe_load(path.read_text())
    for name, ref in images.items():
        image, digest = ref.split("@", 1)
        new_name = image.rsplit(":", 1)[0]
        entries = [i for i in doc.get("images", []) if i["name"] != name]
        doc["images"] = [*entries, {"name": name, "newName": new_name, "digest": digest}]
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=200))


def release_images(root: Path, release: Path, registry_port: int, tag: str) -> str:
    """The release step as docs/deploy.md "Images" gives it: build, push, pin overlays/prod by digest (pushed through
    this machine's address of the registry, pinned under the name the cluster pulls by). Its output."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "prizeflow-dev"), "images",
            "--push", f"127.0.0.1:{registry_port}/prizeflow",
            "--insecure", "--tag", tag, "--pin", str(release / "deploy" / "k8s" / "overlays" / "prod"),
            "--pin-repository", f"{REGISTRY_HOST}/prizeflow",
        ],
        cwd=root, capture_output=True, text=True, check=False, timeout=3600,
    )  # fmt: skip
    assert result.returncode == 0, f"the release step failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "pinned" in result.stdout, f"the release step pinned nothing:\n{result.stdout[-3000:]}"
    return result.stdout


def secret_store(kube: Kube, values: Mapping[str, Mapping[str, str]]) -> None:
    """The site's secret store the ExternalSecrets read: external-secrets' Fake provider holding each key's JSON
    document (`prizeflow/payouts` → {"STRIPE_API_KEY": ...}); a property is a field of it."""
    data = [{"key": key, "value": json.dumps(fields)} for key, fields in values.items()]
    kube.apply(
        [
            {
                "apiVersion": "external-secrets.io/v1",
                "kind": "ClusterSecretStore",
                "metadata": {"name": "prizeflow"},
                "spec": {"provider": {"fake": {"data": data}}},
            }
        ]
    )


def store_values(rendered: list[dict[str, Any]], known: Mapping[tuple[str, str], str]) -> dict[str, dict[str, str]]:
    """A value for every (key, property) the rendered ExternalSecrets read: `known` ones as given, the rest random
    (passwords, keys of rails that are not called)."""
    out: dict[str, dict[str, str]] = {}
    for doc in rendered:
        if doc["kind"] != "ExternalSecret":
            continue
        for item in doc["spec"].get("data", []):
            ref = item["remoteRef"]
            key, prop = ref["key"], ref["property"]
            default = secrets.token_urlsafe(24)
            if prop.startswith("STRIPE_API_KEY"):
                default = "sk_test_" + secrets.token_hex(16)
            elif prop.startswith("STRIPE_WEBHOOK_SECRET"):
                default = "whsec_" + secrets.token_hex(16)
            out.setdefault(key, {})[prop] = known.get((key, prop), default)
    return out


def render(release: Path) -> list[dict[str, Any]]:
    kustomize = ROOT / ".devstack" / "tools" / "go" / "bin" / "kustomize"
    out = subprocess.run(
        [str(kustomize), "build", str(release / "deploy" / "k8s" / "overlays" / "prod")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def node_api_addresses() -> tuple[str, ...]:
    return (f"{cluster_versions.NODE_IP}/32",)


def paths(root: Path) -> ClusterPaths:
    return ClusterPaths(root)


def the_next_release(release: Path) -> list[str]:
    """Release B: release A and one commit that changes, as releases do, what the platform stage applies and the apps
    read: a line of payouts' ConfigMap (hash-named: a new ConfigMap), a rail enabled (the UPI component: new
    Secret keys written by the ExternalSecrets from the store, a providers part, an egress allow-list part), and
    an ACL (payouts' KafkaUser may now describe its own groups). What it changed, as the commit's message would."""
    k8s = release / "deploy" / "k8s"
    payouts_env = k8s / "base" / "platform" / "config" / "payouts.env"
    payouts_env.write_text(payouts_env.read_text() + "PAYOUTS_MAX_ATTEMPTS=6\n")
    kustomization = k8s / "overlays" / "prod" / "kustomization.yaml"
    doc = yaml.safe_load(kustomization.read_text())
    doc["components"].append("../../components/rails/upi")
    kustomization.write_text(yaml.safe_dump(doc, sort_keys=False, width=200))
    users = k8s / "base" / "platform" / "kafka-users.yaml"
    docs = [d for d in yaml.safe_load_all(users.read_text()) if d]
    [payouts] = [d for d in docs if d["kind"] == "KafkaUser" and d["metadata"]["name"] == "payouts"]
    for acl in payouts["spec"]["authorization"]["acls"]:
        if acl["resource"]["type"] == "group":
            acl["operations"] = [*acl["operations"], "Describe"]
    users.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return [
        "payouts.env: PAYOUTS_MAX_ATTEMPTS=6",
        "components/rails/upi enabled",
        "KafkaUser payouts: Describe on its groups",
    ]


# ---- the rehearsal's state: one cluster, two releases, the store, what each step left for the next ------------------


@dataclass
class Rehearsal:
    """What the steps hand each other (tests/k8s/test_rehearsal.py runs them in order)."""

    root: Path
    workdir: Path
    kube: Kube
    operator: Operator
    registry_port: int
    failed: str | None = None
    refs: dict[str, str] = field(default_factory=dict)  # the cluster's images (tools, operators, PostgreSQL)
    internet: Any = None  # internet.Internet
    source_seed: str = ""
    releases: dict[str, Path] = field(default_factory=dict)
    store: dict[str, dict[str, str]] = field(default_factory=dict)
    rounds: list[Any] = field(default_factory=list)  # round.PaidRound / round.Round, in the order they were played
    timings: dict[str, float] = field(default_factory=dict)
    old_upgrade: str = ""  # how the upgrade runbook of before 89543cd4 stalled on release B

    def ops_image(self, release: str) -> str:
        return pinned(self.releases[release], "prizeflow/ops")

    def write_log(self) -> None:
        """Every documented command run, with its exit code and time (.results/k8s-rehearsal.log)."""
        out = self.root / ".results" / "k8s-rehearsal.log"
        out.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{r.seconds:7.1f} s  rc={r.returncode}  {r.line}" for r in self.operator.log]
        lines += [f"{name}: {seconds:.0f} s" for name, seconds in self.timings.items()]
        if self.old_upgrade:
            lines += ["the upgrade runbook of before 89543cd4, on release B:", self.old_upgrade]
        out.write_text("\n".join(lines) + "\n")


def start(workdir: Path) -> Rehearsal:
    """The node (built, started, operators installed) with none of the platform's objects: `prizeflow-cluster wipe`
    then `up`, as a fresh cluster is."""
    from prizeflow_devstack.cluster import node

    started = time.monotonic()
    cli = str(Path(sys.executable).parent / "prizeflow-cluster")
    for command in ("wipe", "up"):
        done = subprocess.run([cli, command], cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
        assert done.returncode == 0, (
            f"prizeflow-cluster {command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
    state = node.load_state(ClusterPaths(ROOT))
    assert state.registry_port is not None
    kube = Kube(ROOT)
    from prizeflow_devstack.cluster.images import load_refs

    rehearsal = Rehearsal(
        root=ROOT,
        workdir=workdir,
        kube=kube,
        operator=Operator(kube, workdir),
        registry_port=state.registry_port,
        refs=load_refs(ROOT),
    )
    rehearsal.timings["cluster up (wipe, up)"] = time.monotonic() - started
    return rehearsal


def pinned(release: Path, name: str) -> str:
    """The reference overlays/prod pins for image `name` (`newName@digest`)."""
    doc = yaml.safe_load((release / "deploy" / "k8s" / "overlays" / "prod" / "kustomization.yaml").read_text())
    [entry] = [i for i in doc["images"] if i["name"] == name]
    return f"{entry['newName']}@{entry['digest']}"


def ca_bundle(extra_pem: bytes) -> bytes:
    """The site's CA bundle as components/private-ca asks: the public CAs (Debian's), then the site's own."""
    public = Path("/etc/ssl/certs/ca-certificates.crt")
    return (public.read_bytes() if public.exists() else b"") + extra_pem


def database_now(kube: Kube, cluster: str, database: str) -> str:
    """The database's clock (`2026-11-25 14:53:41.190312+00`): a restore target on the clock the WAL carries."""
    pod = kube.run(
        "-n", NAMESPACE, "get", "pod", "-l", f"cnpg.io/cluster={cluster},cnpg.io/instanceRole=primary",
        "-o", "jsonpath={.items[0].metadata.name}",
    )  # fmt: skip
    return kube.run(
        "-n", NAMESPACE, "exec", pod, "-c", "postgres", "--", "psql", "-d", database, "-tAc", "SELECT now()"
    ).strip()


def set_literals(release: Path, generator: str, literals: Mapping[str, str | None]) -> None:
    """Add, change (a value) or remove (None) literals of overlays/prod's `generator`, as an operator edits the file."""
    path = release / "deploy" / "k8s" / "overlays" / "prod" / "kustomization.yaml"
    doc = yaml.safe_load(path.read_text())
    generators = doc.setdefault("configMapGenerator", [])
    entry = next((g for g in generators if g["name"] == generator), None)
    if entry is None:
        entry = {"name": generator, "behavior": "merge", "literals": []}
        generators.append(entry)
    kept = [x for x in entry.get("literals", []) if x.split("=", 1)[0] not in literals]
    entry["literals"] = kept + [f"{k}={v}" for k, v in literals.items() if v is not None]
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=200))


def restore_change(release: Path, service: str, new_cluster: str, origin: str, target: str) -> None:
    """docs/runbooks/restore.md Mitigation step 1's change in git: databases.env's line, the restore component after
    the databases component."""
    prod = release / "deploy" / "k8s" / "overlays" / "prod"
    env = prod / "databases.env"
    lines = [x for x in env.read_text().splitlines() if not x.startswith(f"{service}=")]
    lines += [f"{service}={new_cluster}", f"{service}-restore-from={origin}", f"{service}-restore-target-time={target}"]
    env.write_text("\n".join(lines) + "\n")
    kustomization = prod / "kustomization.yaml"
    doc = yaml.safe_load(kustomization.read_text())
    components = doc["components"]
    components.insert(components.index("../../components/databases") + 1, f"../../components/restore/{service}")
    kustomization.write_text(yaml.safe_dump(doc, sort_keys=False, width=200))


__all__ = [
    "Operator",
    "Ran",
    "Rehearsal",
    "Site",
    "StepFailed",
    "b64",
    "ca_bundle",
    "checkout",
    "database_now",
    "edit_kustomization",
    "k8s_block",
    "k8s_blocks",
    "line_bound",
    "make_site",
    "node_api_addresses",
    "pinned",
    "release_images",
    "render",
    "restore_change",
    "secret_store",
    "set_literals",
    "start",
    "store_values",
    "the_next_release",
]
