"""The Kubernetes procedures of the documentation as data, and a cluster simulated over the rendered bundle.

A document's fenced ```` ```bash k8s:<step> ```` blocks are what an operator types (and what the rehearsal on a real
cluster runs, line by line): each line one command, a `# <test node>` comment above it. `commands()` reads them as
the shell would: placeholders filled, a one-line `for x in a b; do ...; done` unrolled, `db="$(sed -n "s/^<key>=//p"
<file>)"` evaluated against the checkout the step runs in, the words up to a pipe.

`Cluster` plays those commands against renders of the bundle: what `kubectl apply -k <path> -l <selector>` applies,
what a delete removes, what a Job left running when it was deleted without waiting for its pods. After each apply it
checks every Deployment and Job the apply created or changed: each object it reads (a ConfigMap, hash-named or not,
with the keys it reads; a Secret, with its keys, and whatever writes it: an ExternalSecret, a Strimzi KafkaUser in
this render's version, the Kafka cluster's CA, a CloudNativePG cluster's owner; a ServiceAccount; a claim) is in the
cluster, applied at or before it. Pure: the renders are given to it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook_docs import fill, parse

Doc = dict[str, Any]
Key = tuple[str, str]  # (kind, name)
NAMESPACE = "prizeflow"


@dataclass(frozen=True)
class Command:
    step: str
    line: str  # the line as written, placeholders filled
    argv: tuple[str, ...]  # one command of it (a loop's body, once per value), words up to a pipe
    checked_by: str  # the comment above the line


# -- reading ----------------------------------------------------------------------------------------------------------


def _split_top(text: str, separators: tuple[str, ...] = (";",)) -> list[str]:
    """`text` split on the shell's command separators (`;`, and with `&` in `separators` also `&&` and a background
    `&`, not a redirection's `>&`) outside quotes and `$( )`."""
    parts, current, depth, quote = [], "", 0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            current += ch
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "\"'":
            quote = ch
            current += ch
        elif text.startswith("$(", i):
            depth += 1
            current += "$("
            i += 2
            continue
        elif ch == ")" and depth:
            depth -= 1
            current += ch
        elif not depth and ch == ";" and ";" in separators:
            parts.append(current.strip())
            current = ""
        elif not depth and ch == "&" and "&" in separators and not current.endswith(">"):
            parts.append(current.strip())
            current = ""
            if text.startswith("&&", i):
                i += 1
        else:
            current += ch
        i += 1
    if current.strip():
        parts.append(current.strip())
    return [part for part in parts if part]


_LOOP = re.compile(r"for (?P<var>\w+) in (?P<values>[^;]+); do (?P<body>.+); done")
# `db="$(sed -n "s/^<key>=//p" <file>)"`: a value of an env file of the checkout.
_FROM_ENV_FILE = re.compile(r'(?P<var>\w+)="\$\(sed -n "s/\^(?P<key>[\w$-]+)=//p" (?P<file>[\w/.-]+)\)"')


def _read_env(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def expand(line: str, checkout: Path) -> list[str]:
    """The commands a line runs: a loop unrolled (its variable and its assignments substituted), else the line."""
    loop = _LOOP.fullmatch(line)
    if loop is None:
        return _split_top(line, (";", "&"))
    out: list[str] = []
    for value in loop.group("values").split():
        variables = {loop.group("var"): value}
        for written in _split_top(loop.group("body")):
            part = written
            for name, bound in variables.items():
                part = re.sub(rf"\$\{{?{name}\}}?", bound, part)
            assignment = _FROM_ENV_FILE.fullmatch(part)
            if assignment:
                values = _read_env(checkout / assignment.group("file"))
                variables[assignment.group("var")] = values[assignment.group("key")]
                continue
            out.append(part)
    return out


def blocks(path: Path) -> Iterator[tuple[str, str, str]]:
    """(step, line, the comment above it) of every `k8s:<step>` block of a document."""
    for block in parse(path).blocks:
        found = re.search(r"\bk8s:(?P<name>[a-z0-9-]+)", block.info)
        if found is None:
            continue
        comment = ""
        for raw in block.text.splitlines():
            line = raw.strip()
            if line.startswith("#"):
                comment = line.lstrip("# ").strip()
            elif line:
                yield found.group("name"), line, comment
                comment = ""


def steps(path: Path) -> list[str]:
    return list(dict.fromkeys(step for step, _, _ in blocks(path)))


def commands(path: Path, step: str, checkout: Path, values: Mapping[str, str] | None = None) -> list[Command]:
    """The commands of `path`'s k8s:<step> blocks, as run from `checkout` (a deploy/k8s)."""
    out = []
    for name, line, comment in blocks(path):
        if name != step:
            continue
        filled = fill(line, values or {})
        for command in expand(filled, checkout):
            words = shlex.split(command)
            words = words[: words.index("|")] if "|" in words else words
            argv = tuple(w for w in words if not re.match(r"\d*>", w))  # redirections are not arguments
            out.append(Command(step, filled, argv, comment))
    if not out:
        raise LookupError(f"{path.name} has no k8s:{step} block")
    return out


def option(argv: Sequence[str], *names: str) -> str | None:
    """`--name value` or `--name=value`."""
    for i, word in enumerate(argv):
        if word in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if name.startswith("--") and word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def selects(selector: str | None, labels: Mapping[str, str]) -> bool:
    """`-l key=value,key!=value` (the terms the documents use) matches these labels."""
    if selector is None:
        return True
    for term in selector.split(","):
        found = re.fullmatch(r"\s*([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)\s*", term)
        assert found, f"selector {selector!r}: only key=value and key!=value terms are understood here"
        if (labels.get(found.group(1)) == found.group(3)) != (found.group(2) != "!="):
            return False
    return True


def labels_of(doc: Doc) -> dict[str, str]:
    return dict(doc.get("metadata", {}).get("labels") or {})


def pod_labels(doc: Doc) -> dict[str, str]:
    return dict(doc.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {})


# -- what a workload reads --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    kind: str  # ConfigMap, Secret, ServiceAccount, PersistentVolumeClaim
    name: str
    keys: frozenset[str] = frozenset()  # the keys it reads (none listed: the whole object)
    optional: bool = False


def references(workload: Doc) -> list[Reference]:
    """Everything a Deployment's or Job's pods read from the cluster by name."""
    pod = workload["spec"]["template"]["spec"]
    out: list[Reference] = []
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        for source in container.get("envFrom", []):
            for kind, field_ in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if field_ in source:
                    ref = source[field_]
                    out.append(Reference(kind, ref["name"], optional=bool(ref.get("optional"))))
        for env in container.get("env", []):
            source = env.get("valueFrom", {})
            for kind, field_ in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if field_ in source:
                    ref = source[field_]
                    out.append(Reference(kind, ref["name"], frozenset({ref["key"]}), bool(ref.get("optional"))))
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            ref = volume["configMap"]
            keys = frozenset(i["key"] for i in ref.get("items", []))
            out.append(Reference("ConfigMap", ref["name"], keys, bool(ref.get("optional"))))
        if "secret" in volume:
            ref = volume["secret"]
            keys = frozenset(i["key"] for i in ref.get("items", []))
            out.append(Reference("Secret", ref["secretName"], keys, bool(ref.get("optional"))))
        if "persistentVolumeClaim" in volume:
            out.append(Reference("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
        for source in volume.get("projected", {}).get("sources", []):
            for kind, field_ in (("ConfigMap", "configMap"), ("Secret", "secret")):
                if field_ in source:
                    ref = source[field_]
                    keys = frozenset(i["key"] for i in ref.get("items", []))
                    out.append(Reference(kind, ref["name"], keys, bool(ref.get("optional"))))
    if (account := pod.get("serviceAccountName")) and account != "default":
        out.append(Reference("ServiceAccount", account))
    out += [Reference("Secret", s["name"]) for s in pod.get("imagePullSecrets", [])]
    return out


# -- the cluster ------------------------------------------------------------------------------------------------------


def _acls(user: Doc) -> set[tuple[str, str, str, str]]:
    """A KafkaUser's ACLs, one per (resource type, name, pattern, operation)."""
    return {
        (a["resource"]["type"], a["resource"].get("name", ""), a["resource"].get("patternType", "literal"), op)
        for a in user["spec"].get("authorization", {}).get("acls", [])
        for op in a.get("operations", [a.get("operation", "")])
    }


_WAITED = {
    "kafka": "Kafka",
    "kafkauser": "KafkaUser",
    "kafkatopic": "KafkaTopic",
    "externalsecret": "ExternalSecret",
    "cluster": "Cluster",
    "cluster.postgresql.cnpg.io": "Cluster",
    "job": "Job",
    "deployment": "Deployment",
    "backups.postgresql.cnpg.io": "Backup",
}


def _wait_target(words: Sequence[str]) -> tuple[str, str | None]:
    [target] = [w for w in words if not w.startswith("-")][:1] or [""]
    kind, _, name = target.partition("/")
    return _WAITED[kind.lower()], name or None


@dataclass
class Cluster:
    """What `kubectl` has made of the namespace: every object applied (by kind and name, the version last applied),
    and the pods of deleted Jobs that may still run."""

    objects: dict[Key, Doc] = field(default_factory=dict)
    running_pods: dict[str, dict[str, str]] = field(default_factory=dict)  # Job name -> its pods' labels
    backups: set[str] = field(default_factory=set)  # Backups `kubectl cnpg backup` asked for
    problems: list[str] = field(default_factory=list)
    waits: list[str] = field(default_factory=list)  # waits for something nothing made

    def apply(self, docs: Sequence[Doc], render: Sequence[Doc], where: str) -> None:
        """Apply `docs` (a selection of `render`), then check every workload it created or changed."""
        changed = []
        for doc in docs:
            key = (doc["kind"], doc["metadata"]["name"])
            if doc["kind"] == "Job":
                if key in self.objects:
                    self.problems.append(
                        f"{where}: Job {key[1]} exists from an earlier run: a Job's template is immutable (delete it "
                        "first)"
                    )
                if key[1] in self.running_pods:
                    self.problems.append(
                        f"{where}: Job {key[1]}'s previous run may still be running (deleted without waiting for its "
                        "pods): two runs would overlap"
                    )
            if self.objects.get(key) != doc:
                changed.append(doc)
            self.objects[key] = doc
        for doc in changed:
            if doc["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
                self.problems += [f"{where}: {p}" for p in self.missing(doc, render)]

    def apply_all(self, render: Sequence[Doc]) -> None:
        """A release installed as its procedure does it (its own test checks how): every object of `render`."""
        for doc in render:
            self.objects[(doc["kind"], doc["metadata"]["name"])] = doc

    def delete(self, kind: str, selector: str | None, names: Sequence[str], *, cascade: str) -> None:
        for key in [k for k in self.objects if k[0] == kind]:
            doc = self.objects[key]
            if (names and key[1] in names) or (not names and selects(selector, labels_of(doc))):
                del self.objects[key]
                if kind == "Job" and cascade != "foreground":
                    self.running_pods[key[1]] = pod_labels(doc)

    def pods_gone(self, selector: str | None) -> None:
        """`kubectl wait --for=delete pod -l <selector>`: the pods it selects are gone."""
        for job, labels in list(self.running_pods.items()):
            if selects(selector, labels):
                del self.running_pods[job]

    def waits_for_nothing(self, words: Sequence[str], selector: str | None) -> str | None:
        """Why a wait (or `rollout status`) could never end, or None: it names what the procedure applied (a Backup:
        one `kubectl cnpg backup` asked for, or one CloudNativePG takes at once for an applied `immediate`
        ScheduledBackup)."""
        kind, name = _wait_target(words)
        if kind == "Backup":
            if name is not None:
                return None if name in self.backups else f"no step asked for Backup {name}"
            terms = dict(t.split("=", 1) for t in (selector or "").split(",") if "=" in t)
            immediate = [
                d
                for (k, _), d in self.objects.items()
                if k == "ScheduledBackup"
                and d["spec"].get("immediate")
                and terms.get("cnpg.io/cluster", d["spec"]["cluster"]["name"]) == d["spec"]["cluster"]["name"]
            ]
            if terms.get("cnpg.io/immediateBackup") == "true" and immediate:
                return None
            return f"waits for Backups {selector or '--all'}: only this procedure's (by name, or the immediate ones)"
        present = [d for (k, _), d in self.objects.items() if k == kind]
        if name is not None:
            return None if any(d["metadata"]["name"] == name for d in present) else f"no {kind} {name} is applied"
        if any(selects(selector, labels_of(d)) for d in present):
            return None
        return f"no {kind} {selector or ''} is applied"

    def _writer_keys(self, secret: str, render: Sequence[Doc]) -> tuple[str, frozenset[str]] | None:
        """Who writes the Secret `secret` in this cluster and the keys it holds, or None: nobody."""
        wanted = {(d["kind"], d["metadata"]["name"]): d for d in render}
        if ("Secret", secret) in self.objects:
            return f"Secret {secret}", frozenset((self.objects[("Secret", secret)].get("data") or {}).keys())
        for (kind, name), doc in self.objects.items():
            if kind == "ExternalSecret" and doc["spec"]["target"].get("name", name) == secret:
                keys = {d["secretKey"] for d in doc["spec"].get("data", [])}
                keys |= set(doc["spec"]["target"].get("template", {}).get("data", {}))
                return f"ExternalSecret {name}", frozenset(keys)
        if ("KafkaUser", secret) in self.objects:
            applied = self.objects[("KafkaUser", secret)]
            if ("KafkaUser", secret) in wanted and not _acls(wanted[("KafkaUser", secret)]) <= _acls(applied):
                return None  # the user exists without some ACL this release's process needs
            return f"KafkaUser {secret}", frozenset({"password", "sasl.jaas.config"})
        for kind, name in self.objects:
            if kind == "Kafka" and secret == f"{name}-cluster-ca-cert":
                return f"Kafka {name} (its cluster CA)", frozenset({"ca.crt", "ca.p12", "ca.password"})
            if kind == "Cluster" and secret == f"{name}-app":
                return f"Cluster {name} (its owner)", frozenset({"uri", "username", "password", "host", "port"})
        return None

    def missing(self, workload: Doc, render: Sequence[Doc]) -> list[str]:
        """What `workload` reads that is not in the cluster (or not with the keys it reads)."""
        name = f"{workload['kind']} {workload['metadata']['name']}"
        out = []
        for ref in references(workload):
            if ref.optional:
                continue
            if ref.kind == "Secret":
                writer = self._writer_keys(ref.name, render)
                if writer is None:
                    why = "written by nothing applied yet"
                    if ("KafkaUser", ref.name) in self.objects:
                        why = "its KafkaUser lacks ACLs this release needs: the platform stage was not applied"
                    out.append(f"{name} reads Secret {ref.name}, {why}")
                elif ref.keys - writer[1]:
                    out.append(
                        f"{name} reads Secret {ref.name} keys {sorted(ref.keys - writer[1])}: {writer[0]} has not"
                    )
                continue
            applied = self.objects.get((ref.kind, ref.name))
            if applied is None:
                out.append(f"{name} reads {ref.kind} {ref.name}, which is not applied yet")
            elif ref.kind == "ConfigMap" and ref.keys - set(applied.get("data") or {}):
                out.append(f"{name} reads ConfigMap {ref.name} keys {sorted(ref.keys - set(applied['data']))}")
        return out


def play(
    cluster: Cluster,
    commands_: Sequence[Command],
    render: Callable[[str], Sequence[Doc]],
    where: str,
) -> None:
    """Run the commands that change what is applied (`apply -k`, `delete`, `wait --for=delete pod`) on `cluster`;
    `render(path)` is `kustomize build <checkout>/<path>`."""
    for command in commands_:
        argv = command.argv
        if argv[:1] != ("kubectl",):
            continue
        words = [w for w in argv[1:] if w not in {"-n", NAMESPACE, "--namespace"}]
        verb = words[0] if words else ""
        at = f"{where} k8s:{command.step} `{command.line}`"
        path = option(argv, "-k", "--kustomize")
        selector = option(argv, "-l", "--selector")
        if verb == "apply" and path is not None:
            docs = render(path)
            cluster.apply([d for d in docs if selects(selector, labels_of(d))], docs, at)
        elif verb == "delete" and path is not None:
            for doc in render(path):
                cluster.objects.pop((doc["kind"], doc["metadata"]["name"]), None)
        elif verb == "delete":
            kind, names = _kind_and_names(words[1:])
            cluster.delete(kind, selector, names, cascade=option(argv, "--cascade") or "background")
        elif verb == "wait" and option(argv, "--for") == "delete":
            if words[1:2] in (["pod"], ["pods"]):
                cluster.pods_gone(selector)
        elif verb == "cnpg" and words[1:2] == ["backup"]:
            cluster.backups.add(str(option(argv, "--backup-name")))
        elif verb == "wait" or words[:2] == ["rollout", "status"]:
            waited = words[2:] if verb == "rollout" else words[1:]
            nothing = cluster.waits_for_nothing(waited, selector)
            cluster.waits += [f"{at}: {nothing}"] if nothing else []


_KINDS = {
    "job": "Job",
    "jobs": "Job",
    "cluster": "Cluster",
    "cluster.postgresql.cnpg.io": "Cluster",
    "scheduledbackup": "ScheduledBackup",
    "networkpolicy": "NetworkPolicy",
    "pod": "Pod",
    "pods": "Pod",
    "backups.postgresql.cnpg.io": "Backup",
}


def _kind_and_names(words: Sequence[str]) -> tuple[str, list[str]]:
    """`job -l ...` → (Job, []); `cluster settlement-db` → (Cluster, [settlement-db]); `job/a` → (Job, [a])."""
    positional = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word.startswith("-"):
            skip = "=" not in word and word in {"-l", "--selector", "--timeout", "--cascade", "-o"}
            continue
        positional.append(word)
    first, _, named = positional[0].partition("/")
    kind = _KINDS[first.lower()]
    return kind, ([named] if named else positional[1:])


__all__ = [
    "Cluster",
    "Command",
    "Reference",
    "blocks",
    "commands",
    "expand",
    "labels_of",
    "option",
    "play",
    "pod_labels",
    "references",
    "selects",
    "steps",
]
