"""deploy/k8s, validated offline: every overlay renders (kustomize), every built-in object validates strictly against
the Kubernetes schemas (kubernetes-validate), every custom resource against the JSON schemas in deploy/k8s/schemas
(an unknown kind or field fails), kube-score finds nothing, the generated files are current, and each workload's
environment is made of real settings of its process, complete enough for those settings to load.

overlays/prod does not render as committed: its site values (overlays/prod/site.env) are the operator's, and the
render fails until each is set (tests/deploy/test_k8s_site.py). Everything here renders an operator's checkout:
a copy of deploy/k8s with SITE written into that file.

The tools are pinned and installed by `make k8s-tools` (tools/devstack/scripts/ensure-k8s-tools.sh); a missing one
fails these tests, it never skips them.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote_plus, urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from prizeflow_contracts.topics import topic_named
from prizeflow_devstack import k8s
from prizeflow_devstack.devenv import stand_in_env
from prizeflow_runtime.topics import ProvisionSettings, topic_plan

pytestmark = pytest.mark.k8s

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
TOOLS = ROOT / ".devstack" / "tools" / "go" / "bin"
OVERLAYS = ("dev", "prod", "all-rails")
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())  # the oldest supported, the newest known
BUILTIN_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1", "autoscaling/v2"}
SERVICES = k8s.SERVICES  # on Kafka and PostgreSQL
DEPLOYMENTS = k8s.DEPLOYMENTS  # those and the console
# The platform's own Deployments beside them: the egress proxy (Squid) and the Kubernetes API probe (the ops image's
# `prizeflow-ops api-probe`); neither calls a provider nor reads a service's settings.
PLATFORM_DEPLOYMENTS = ("egress-proxy", "kubernetes-api-probe")

Doc = dict[str, Any]


def tool(name: str) -> str:
    path = TOOLS / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make k8s-tools` (tools/devstack/scripts/ensure-k8s-tools.sh)")
    return str(path)


# An operator's site values for overlays/prod (site.env): hosts under the reserved `.test` domain, digests that name
# nothing, a private HSM address and the API server's address as seen from the pods.
SITE = {
    "object-store-host": "s3.backups.prizeflow.test",
    "postgres-image": "registry.prizeflow.test/cloudnative-pg/postgresql:15.18-standard-bookworm@sha256:" + "1" * 64,
    "hsm-client-image": "registry.prizeflow.test/hsm/luna-client:10.7@sha256:" + "2" * 64,
    "hsm-address": "10.40.0.12/32",
    "hsm-port": "1792",
    "identity-issuer": "https://login.prizeflow.test/",
    "identity-jwks-url": "https://login.prizeflow.test/oauth/keys",
    "identity-discovery-url": "https://login.prizeflow.test/.well-known/openid-configuration",
    "console-host": "console.prizeflow.test",
    "webhooks-host": "hooks.prizeflow.test",
    "topup-success-url": "https://play.prizeflow.test/top-up/success?session_id={CHECKOUT_SESSION_ID}",
    "topup-cancel-url": "https://play.prizeflow.test/top-up/cancelled",
    "soroban-rpc-url": "https://soroban.prizeflow.test",
    "payout-source-account": "GDVEU3DD4KOFECV66VIHWEZOYX4ZKR3WV27L464SIIPOU2IUI3JCZA57",
}


def site_env(values: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


# The site values that are lists (overlays/prod/site-lists.yaml): the API server's addresses as seen from the pods, one
# per control-plane node.
SITE_LISTS: dict[str, Any] = {
    "kubernetes-api": [{"ipBlock": {"cidr": f"172.20.0.{n}/32"}} for n in (10, 11, 12)],
}


def site_lists(values: Mapping[str, Any]) -> str:
    """overlays/prod/site-lists.yaml holding `values`."""
    doc = {
        "apiVersion": "prizeflow.io/v1",
        "kind": "SiteValues",
        "metadata": {"name": "prizeflow-site-lists", "annotations": {"config.kubernetes.io/local-config": "true"}},
        "spec": dict(values),
    }
    return yaml.safe_dump(doc, sort_keys=False)


@cache
def checkout() -> Path:
    """A copy of deploy/k8s as an operator holds it: overlays/prod/site.env filled in with SITE, site-lists.yaml
    with SITE_LISTS."""
    scratch = Path(tempfile.mkdtemp(prefix="prizeflow-k8s-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    copy = scratch / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("schemas"))
    (copy / "overlays" / "prod" / "site.env").write_text(site_env(SITE))
    (copy / "overlays" / "prod" / "site-lists.yaml").write_text(site_lists(SITE_LISTS))
    return copy


def build(path: Path) -> tuple[Doc, ...]:
    out = subprocess.run([tool("kustomize"), "build", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"kustomize build {path} failed:\n{out.stderr}"
    return tuple(d for d in yaml.load_all(out.stdout, Loader=Strings) if d)


class Strings(yaml.SafeLoader):
    """YAML 1.2 as Kubernetes reads it: an unquoted timestamp is a string (kustomize drops the quotes)."""


Strings.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@cache
def rendered(overlay: str) -> tuple[Doc, ...]:
    return build(checkout() / "overlays" / overlay)


def of_kind(docs: tuple[Doc, ...], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


# --- schemas ---------------------------------------------------------------------------------------------------


def schema_path(doc: Doc) -> Path:
    return K8S / "schemas" / f"{doc['apiVersion'].replace('/', '_')}_{doc['kind']}.json"


def validate(doc: Doc) -> None:
    """Strict validation of one object, whatever its kind; raises on anything it cannot vouch for."""
    if doc.get("apiVersion") in BUILTIN_GROUPS:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        return
    path = schema_path(doc)
    if not path.is_file():
        raise LookupError(f"{doc.get('apiVersion')} {doc.get('kind')}: no schema in deploy/k8s/schemas (unknown kind)")
    jsonschema.Draft202012Validator(json.loads(path.read_text())).validate(doc)


def _migrations_env_names() -> set[str]:
    """What the migrations (prizeflow_runtime.migrations, every service's env.py) read from their environment."""
    import prizeflow_runtime.migrations as migrations

    source = Path(migrations.__file__).read_text()
    return {"DATABASE_URL"} | set(re.findall(r"\"(MIGRATIONS_[A-Z_]+)\"", source))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_strictly(overlay: str) -> None:
    problems = []
    for doc in rendered(overlay):
        try:
            validate(doc)
        except (LookupError, jsonschema.ValidationError, kubernetes_validate.ValidationError) as err:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {getattr(err, 'message', err)}")
        except kubernetes_validate.SchemaNotFoundError as err:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: no Kubernetes schema: {err}")
    assert not problems, "\n".join(problems)


def test_the_schemas_are_valid_json_schemas() -> None:
    for path in sorted((K8S / "schemas").glob("*.json")):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def _a(kind: str, overlay: str = "prod") -> Doc:
    doc = of_kind(rendered(overlay), kind)[0]
    copy: Doc = json.loads(json.dumps(doc))  # a deep copy to break
    return copy


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("KafkaTopic", ("spec",)),
        ("KafkaUser", ("spec", "authorization", "acls", 0)),
        ("Cluster", ("spec", "bootstrap", "initdb")),
        ("ScaledObject", ("spec", "triggers", 0, "metadata")),
        ("ServiceMonitor", ("spec", "endpoints", 0)),
        ("PrometheusRule", ("spec", "groups", 0, "rules", 0)),
        ("ExternalSecret", ("spec", "target")),
        ("Deployment", ("spec", "template", "spec", "containers", 0)),
        ("NetworkPolicy", ("spec",)),
    ],
)
def test_an_unknown_field_fails(kind: str, path: tuple[str | int, ...]) -> None:
    doc = _a(kind)
    validate(doc)
    node: Any = doc
    for part in path:
        node = node[part]
    node["replicasTypo"] = "1"
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        validate(doc)


def test_an_unknown_kind_fails() -> None:
    doc = _a("KafkaTopic")
    doc["kind"] = "KafkaTopicz"
    with pytest.raises(LookupError, match="unknown kind"):
        validate(doc)
    builtin = _a("Deployment")
    builtin["kind"] = "Deploymentz"
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate(builtin)


def test_a_kafka_trigger_with_an_unknown_parameter_fails() -> None:
    doc = _a("ScaledObject")
    doc["spec"]["triggers"][0]["metadata"]["lagTreshold"] = "10"
    with pytest.raises(jsonschema.ValidationError, match="lagTreshold"):
        validate(doc)


# --- lint ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kube_score_finds_nothing(overlay: str) -> None:
    text = yaml.safe_dump_all(rendered(overlay))
    out = subprocess.run(
        [tool("kube-score"), "score", "--kubernetes-version", "v1.30", "--exit-one-on-warning", "-o", "ci", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    findings = [line for line in out.stdout.splitlines() if line and not line.startswith(("[OK]", "[SKIPPED]"))]
    assert not findings, "\n".join(findings)
    assert out.returncode == 0, out.stderr


def test_every_kube_score_exception_is_justified_inline() -> None:
    """An ignored check carries a YAML comment right above it saying why."""
    bare = []
    for path in sorted(K8S.rglob("*.yaml")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if "kube-score/ignore" in line:
                above = [x.strip() for x in lines[:i] if x.strip()]
                if not above or not above[-1].startswith("#"):
                    bare.append(f"{path.relative_to(ROOT)}:{i + 1}")
    assert not bare, f"kube-score/ignore without a comment saying why: {bare}"


# --- generated files -------------------------------------------------------------------------------------------


def test_generated_manifests_are_current() -> None:
    stale = k8s.stale(ROOT)
    assert not stale, f"stale: {[str(p.relative_to(ROOT)) for p in stale]}: run `uv run --frozen prizeflow-k8s`"


def test_kafka_topics_are_the_contracts_topics_and_their_dlqs() -> None:
    for overlay in OVERLAYS:
        topics = {d["spec"]["topicName"]: d["spec"] for d in of_kind(rendered(overlay), "KafkaTopic")}
        expected = {s.name: s for s in topic_plan(k8s.PRODUCTION_TOPICS)}
        assert set(topics) == set(expected)
        for name, spec in topics.items():
            assert spec["partitions"] == expected[name].partitions == topic_named(name).partitions
    prod = {d["spec"]["topicName"]: d["spec"] for d in of_kind(rendered("prod"), "KafkaTopic")}
    assert {(s["replicas"], s["config"]["min.insync.replicas"]) for s in prod.values()} == {(3, "2")}


def _acls(docs: tuple[Doc, ...], user: str) -> set[tuple[str, str, tuple[str, ...]]]:
    spec = named(docs, "KafkaUser", user)["spec"]
    return {
        (a["resource"]["type"], a["resource"]["name"], tuple(a["operations"])) for a in spec["authorization"]["acls"]
    }


def test_the_signer_reads_only_signer_requests_and_writes_only_signer_results_and_its_dlq() -> None:
    assert _acls(rendered("prod"), "signer") == {
        ("topic", "prizeflow.signer.requests.v1", ("Read", "Describe", "DescribeConfigs")),
        ("group", "signer", ("Read",)),
        ("topic", "prizeflow.signer.results.v1", ("Write", "Describe")),
        ("topic", "prizeflow.signer.requests.v1.dlq", ("Write", "Describe")),
    }


def test_each_service_user_has_exactly_the_topics_and_groups_its_code_uses() -> None:
    """Read, Describe and DescribeConfigs on what it consumes (start-up reads each consumed topic's retention to hold
    it within the inbox's dedup horizon, ADR 0008: without DescribeConfigs no service ever became ready on the first
    real cluster, tests/k8s), Write and Describe on what it produces, Read on its groups."""
    docs = rendered("prod")
    for service in SERVICES:
        usage = k8s.kafka_usage(service, ROOT)
        acls = _acls(docs, service)
        assert {n for t, n, ops in acls if ops == ("Read", "Describe", "DescribeConfigs")} == set(usage.reads)
        assert {n for t, n, ops in acls if ops == ("Write", "Describe")} == set(usage.writes)
        assert {n for t, n, ops in acls if t == "group"} == set(usage.consumes)
        every = [a for d in of_kind(docs, "KafkaUser") for a in d["spec"]["authorization"]["acls"]]
        assert all(a["resource"]["patternType"] == "literal" for a in every), "no ACL by prefix"
        assert all(a["resource"]["type"] in {"topic", "group"} for a in every), "no cluster-wide ACL"


# --- autoscaling -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_consumer_scales_on_lag_capped_at_its_partitions(overlay: str) -> None:
    docs = rendered(overlay)
    partitions = {d["spec"]["topicName"]: d["spec"]["partitions"] for d in of_kind(docs, "KafkaTopic")}
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d["spec"] for d in of_kind(docs, "ScaledObject")}
    consumers = {s for s in SERVICES if k8s.kafka_usage(s, ROOT).consumes}
    assert set(scaled) == consumers
    for service, spec in scaled.items():
        named(docs, "Deployment", service)
        usage = k8s.kafka_usage(service, ROOT)
        triggers = {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in spec["triggers"]}
        assert triggers == {(g, t) for g, topics in usage.consumes.items() for t in topics}
        assert spec["maxReplicaCount"] <= min(partitions[t] for _, t in triggers), service
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    hpas = {d["spec"]["scaleTargetRef"]["name"] for d in of_kind(docs, "HorizontalPodAutoscaler")}
    assert hpas == {"webhooks"} == set(SERVICES) - consumers


# --- workloads -------------------------------------------------------------------------------------------------


def _container(doc: Doc) -> Doc:
    containers = doc["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _config(docs: tuple[Doc, ...], container: Doc) -> dict[str, str]:
    """Literal env of a container: its envFrom ConfigMaps, then its env values and the ConfigMap keys it reads one
    by one (a rail's ConfigMap), each resolved in the rendered ConfigMaps (secret refs excluded)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, "secrets are referenced key by key, never with envFrom"
        env.update(named(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "configMapKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["configMapKeyRef"]
            assert not ref.get("optional"), f"{e['name']}: a rail's setting is never optional"
            data = named(docs, "ConfigMap", ref["name"])["data"]  # a hashed name: generated in this namespace
            assert ref["key"] in data, f"{e['name']}: ConfigMap {ref['name']} has no key {ref['key']}"
            env[e["name"]] = data[ref["key"]]
    return env


def _secret_refs(container: Doc) -> dict[str, tuple[str, str]]:
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_are_hardened_probed_and_sized(overlay: str) -> None:
    docs = rendered(overlay)
    for doc in of_kind(docs, "Deployment") + of_kind(docs, "Job"):
        pod = doc["spec"]["template"]["spec"]
        c = _container(doc)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        assert {"tmp"} <= {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        assert {"cpu", "memory"} <= set(c["resources"]["requests"])
        assert {"cpu", "memory"} <= set(c["resources"]["limits"])
        assert re.fullmatch(r"[^:@]+(:[\w.-]+|@sha256:[0-9a-f]{64})", c["image"]), c["image"]
        assert not c["image"].startswith("prizeflow/"), "every overlay retags the images"
    for service in DEPLOYMENTS:
        doc = named(docs, "Deployment", service)
        c = _container(doc)
        assert c["command"] == ["python", "-m", f"prizeflow_{service}"]
        port = int(_config(docs, c)["HTTP_PORT"])
        assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        assert c["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        assert _config(docs, c)["HTTP_HOST"] == "0.0.0.0"
        pdb = named(docs, "PodDisruptionBudget", service)
        assert pdb["spec"]["selector"]["matchLabels"] == doc["spec"]["selector"]["matchLabels"]
        monitors = [
            d for d in docs if d["kind"] in {"ServiceMonitor", "PodMonitor"} and d["metadata"]["name"] == service
        ]
        assert len(monitors) == 1


def _matches(selector: Doc, labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels, matchExpressions with In/NotIn/Exists/DoesNotExist) selects these labels."""
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False

    def holds(e: Doc) -> bool:
        present = (
            e["key"] in labels if e["operator"] in {"Exists", "DoesNotExist"} else labels.get(e["key"]) in e["values"]
        )
        return present == (e["operator"] in {"Exists", "In"})

    return all(holds(e) for e in selector.get("matchExpressions", []))


def _pod_labels(docs: tuple[Doc, ...], deployment: str) -> dict[str, str]:
    return dict(named(docs, "Deployment", deployment)["spec"]["template"]["metadata"]["labels"])


def _policies_of(docs: tuple[Doc, ...], labels: Mapping[str, str]) -> list[Doc]:
    """The NetworkPolicies (of this namespace) that select pods with these labels."""
    return [p for p in of_kind(docs, "NetworkPolicy") if _matches(p["spec"]["podSelector"], labels)]


def test_the_signer_has_no_service_and_only_prometheus_may_reach_it() -> None:
    docs = rendered("prod")
    signer_labels = _pod_labels(docs, "signer")
    for svc in of_kind(docs, "Service"):
        selector = svc["spec"]["selector"]
        assert not all(signer_labels.get(k) == v for k, v in selector.items()), f"Service {svc['metadata']['name']}"

    policies = _policies_of(docs, signer_labels)
    ingress = [r for p in policies for r in p["spec"].get("ingress", [])]
    assert [peer["namespaceSelector"]["matchLabels"] for r in ingress for peer in r["from"]] == [
        {"kubernetes.io/metadata.name": "monitoring"}
    ]
    egress_names = sorted(p["metadata"]["name"] for p in policies if p["spec"].get("egress"))
    assert egress_names == ["allow-dns", "kafka-clients-to-kafka", "signer-to-hsm", "signer-to-postgres"]
    assert "default-deny" in {p["metadata"]["name"] for p in policies}


# --- the console -----------------------------------------------------------------------------------------------

APIS = ("settlement", "rewards", "payouts", "webhooks")
PROXY = {
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "egress-proxy", "app.kubernetes.io/component": "proxy"}}
}
# Read by the processes' HTTP clients (httpx, and what is built on it), not by their settings: the egress proxy.
PROXY_ENV = {"HTTPS_PROXY", "NO_PROXY"}
# Read by the HSM vendor's PKCS#11 library inside the signer, not by its settings: where the client's configuration
# is (components/signer-hsm/signer-pkcs11-module.yaml; Thales Luna's variable).
HSM_CLIENT_ENV = {"ChrystokiConfigurationPath"}
CALLERS = (*APIS, "console")  # the Deployments that call out through the proxy


def _peers(rule: Doc, side: str) -> list[Doc]:
    return list(rule.get(side, []))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_reaches_the_four_apis_the_identity_provider_and_its_own_database_only(overlay: str) -> None:
    """No Kafka, no other service's database, not the signer: its pods carry no Kafka client label, mount no secret
    file, and the policies selecting them let out DNS, the four APIs' HTTP port, its sessions' database and the
    egress proxy (the identity provider) only; in, the ingress controller and Prometheus only. Each API admits
    the console on its HTTP port."""
    docs = rendered(overlay)
    labels = _pod_labels(docs, "console")
    assert "prizeflow.io/kafka-client" not in labels
    deployment = named(docs, "Deployment", "console")
    assert [v["name"] for v in docs_volumes(deployment)] == ["tmp"]
    assert "KAFKA_BOOTSTRAP_SERVERS" not in _config(docs, _container(deployment))
    assert not [d for d in of_kind(docs, "KafkaUser") if d["metadata"]["name"] == "console"]

    policies = _policies_of(docs, labels)
    assert "default-deny" in {p["metadata"]["name"] for p in policies}
    ingress_from = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in policies
        for rule in p["spec"].get("ingress", [])
        for peer in _peers(rule, "from")
    ]
    assert sorted(ingress_from) == ["ingress-nginx", "monitoring"]
    egress = {p["metadata"]["name"]: p["spec"]["egress"] for p in policies if p["spec"].get("egress")}
    assert set(egress) == {"allow-dns", "console-to-apis", "console-to-postgres", "identity-provider-egress"}
    [to_db] = egress["console-to-postgres"]
    assert to_db["to"] == [{"podSelector": {"matchLabels": {"cnpg.io/cluster": "console-db"}}}]
    [to_apis] = egress["console-to-apis"]
    assert [port["port"] for port in to_apis["ports"]] == ["http"]
    [peer] = to_apis["to"]
    assert set(peer) == {"podSelector"}, "the APIs of this namespace, nothing else"
    reached = {d for d in DEPLOYMENTS if _matches(peer["podSelector"], _pod_labels(docs, d))}
    assert reached == set(APIS)
    [to_idp] = egress["identity-provider-egress"]
    assert [port["port"] for port in to_idp["ports"]] == [3128]
    assert to_idp["to"] == [PROXY]

    for api in APIS:  # the other side of the flow, and every API reaches the identity provider for its JWKS
        admitted = [
            rule
            for p in _policies_of(docs, _pod_labels(docs, api))
            for rule in p["spec"].get("ingress", [])
            if any("podSelector" in peer and _matches(peer["podSelector"], labels) for peer in _peers(rule, "from"))
        ]
        assert [[port["port"] for port in rule["ports"]] for rule in admitted] == [["http"]], api
        names = {p["metadata"]["name"] for p in _policies_of(docs, _pod_labels(docs, api))}
        assert "identity-provider-egress" in names, api


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_is_wired_to_the_services_the_identity_provider_and_its_ingress(overlay: str) -> None:
    """Its service URLs are the APIs' Services in this namespace; its OIDC issuer is the issuer the services accept
    (JWT_ISSUER), over https; its Ingress serves CONSOLE_PUBLIC_URL with TLS; its session key comes from the Secret
    console-secrets (in prod an ExternalSecret), the client secret only if that Secret has one; and it shares
    prizeflow-common's process settings without taking its Kafka and JWT ones."""
    docs = rendered(overlay)
    container = _container(named(docs, "Deployment", "console"))
    env = _config(docs, container)
    [common_ref, _] = _container(named(docs, "Deployment", "settlement"))["envFrom"]
    assert common_ref["configMapRef"]["name"].startswith("prizeflow-common-")  # kustomize's name + content hash
    common = named(docs, "ConfigMap", common_ref["configMapRef"]["name"])["data"]
    namespace = named(docs, "Deployment", "console")["metadata"]["namespace"]
    for key in ("PRIZEFLOW_PROFILE", "HTTP_HOST", "HTTP_PORT", "LOG_JSON", "LOG_LEVEL"):
        assert env[key] == common[key], key

    for api in APIS:
        url = urlsplit(env[f"{api.upper()}_URL"])
        assert (url.scheme, url.hostname, url.port, url.path) == ("http", f"{api}.{namespace}.svc", None, "")
        service = named(docs, "Service", api)
        assert {"port": 80, "targetPort": "http"}.items() <= service["spec"]["ports"][0].items()
        assert _matches({"matchLabels": service["spec"]["selector"]}, _pod_labels(docs, api))

    assert env["OIDC_ISSUER"] == common["JWT_ISSUER"]
    assert env["OIDC_DISCOVERY_URL"].startswith("https://")
    assert env["OIDC_DISCOVERY_URL"].endswith("/.well-known/openid-configuration")
    assert urlsplit(env["OIDC_DISCOVERY_URL"]).hostname == urlsplit(common["JWT_JWKS_URL"]).hostname

    public = urlsplit(env["CONSOLE_PUBLIC_URL"])
    assert public.scheme == "https"
    ingress = named(docs, "Ingress", "console")["spec"]
    assert ingress["tls"] == [{"hosts": [public.hostname], "secretName": "console-tls"}]
    [rule] = ingress["rules"]
    assert rule["host"] == public.hostname
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    assert path["backend"]["service"] == {"name": "console", "port": {"name": "http"}}

    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs["CONSOLE_SESSION_SECRET"] == {"name": "console-secrets", "key": "CONSOLE_SESSION_SECRET"}
    assert refs["OIDC_CLIENT_SECRET"] == {"name": "console-secrets", "key": "OIDC_CLIENT_SECRET", "optional": True}
    assert refs["DATABASE_URL"] == {"name": "console-db-runtime", "key": "uri"}  # its sessions, as the runtime role
    assert set(refs) == {"CONSOLE_SESSION_SECRET", "OIDC_CLIENT_SECRET", "DATABASE_URL"}
    if overlay == "prod":
        secret = named(docs, "ExternalSecret", "console-secrets")["spec"]
        assert secret["target"]["name"] == "console-secrets"
        assert [d["secretKey"] for d in secret["data"]] == ["CONSOLE_SESSION_SECRET"]
        assert named(docs, "Deployment", "console")["spec"]["replicas"] == 2


def test_databases_are_the_services_own_and_feed_database_url() -> None:
    docs = rendered("prod")
    for service in (*SERVICES, "console"):  # the console keeps its sessions in a database of its own
        declared = tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())
        database = declared["tool"]["prizeflow"]["service"]["database"]
        cluster = named(docs, "Cluster", f"{service}-db")
        assert cluster["spec"]["bootstrap"]["initdb"]["database"] == database
        owner = cluster["spec"]["bootstrap"]["initdb"]["owner"]
        # The service logs in as the runtime role (a managed role, its password the Secret the Deployment reads);
        # only the migrations Job logs in as the owner (CNPG's `<cluster>-app`), and grants the runtime role.
        [role] = cluster["spec"]["managed"]["roles"]
        assert role["name"] == f"prizeflow_{service}_app" != owner
        assert role["ensure"] == "present"
        assert role["login"] is True
        assert set(role) == {"name", "ensure", "login", "passwordSecret"}  # no superuser, createdb, inRoles...
        deployment = _container(named(docs, "Deployment", service))
        assert _secret_refs(deployment)["DATABASE_URL"] == (role["passwordSecret"]["name"], "uri")
        assert role["passwordSecret"]["name"] == f"{service}-db-runtime"
        assert "MIGRATIONS_RUNTIME_ROLE" not in _config(docs, deployment)
        job = _container(named(docs, "Job", f"{service}-migrate"))
        assert _secret_refs(job)["DATABASE_URL"] == (f"{service}-db-app", "uri")
        assert _config(docs, job)["MIGRATIONS_RUNTIME_ROLE"] == role["name"]
        runtime_secret = named(docs, "ExternalSecret", f"{service}-db-runtime")["spec"]["target"]["template"]
        assert runtime_secret["type"] == "kubernetes.io/basic-auth"
        assert runtime_secret["data"]["username"] == role["name"]
        assert runtime_secret["data"]["uri"].startswith(f"postgresql://{role['name']}:")
        assert job["command"] == ["alembic", "-c", "/app/alembic.ini", "upgrade", "head"]
        assert job["workingDir"] == "/app"


# external-secrets' template engine v2 (pkg/template/v2/template.go): Go's text/template, its builtins and sprig's
# text functions. The ones the runtime URI templates use, as each defines it.
_TEMPLATE_FUNCTIONS: Mapping[str, Any] = {
    "urlquery": lambda value: quote_plus(value, safe=""),  # text/template: url.QueryEscape (a space as `+`)
    "replace": lambda old, new, value: value.replace(old, new),  # sprig: strings.Replace(src, old, new, -1)
}


def render_template(template: str, data: Mapping[str, str]) -> str:
    """`{{ .key | fn args | ... }}` as text/template pipes it (the last argument is the piped value)."""

    def action(found: re.Match[str]) -> str:
        first, *stages = (part.strip() for part in found.group(1).split("|"))
        value = data[first.removeprefix(".")]
        for stage in stages:
            name, *args = shlex.split(stage)
            value = _TEMPLATE_FUNCTIONS[name](*args, value)
        return value

    return re.sub(r"\{\{(.*?)\}\}", action, template)


@pytest.mark.parametrize("password", ["plain-Pa55word", "p@ss:w/rd", "100%+sure", "a b?c#d", "é&=;[]"])
def test_the_runtime_uri_carries_any_password_intact(password: str) -> None:
    """The runtime Secret's `uri` (each service's DATABASE_URL) is made from the stored password by the
    ExternalSecret's template: a password with a character a URL reads as a delimiter, put in raw, would be cut or
    misread; escaped, SQLAlchemy (the services' engine) reads back exactly the password CloudNativePG sets."""
    from sqlalchemy.engine import make_url

    docs = rendered("prod")
    for service in (*SERVICES, "console"):
        template = named(docs, "ExternalSecret", f"{service}-db-runtime")["spec"]["target"]["template"]["data"]
        assert template["password"] == "{{ .password }}", "CloudNativePG's copy: as stored"
        url = make_url(render_template(template["uri"], {"password": password}))
        assert (url.password, url.username, url.host) == (password, template["username"], f"{service}-db-rw")


def test_a_raw_password_in_the_uri_is_caught() -> None:
    """What the templates did before: the password as it is, a `%` decoded, a `/` ending the host part."""
    from sqlalchemy.engine import make_url

    raw = "postgresql://prizeflow_payouts_app:{{ .password }}@payouts-db-rw:5432/prizeflow_payouts"
    assert make_url(render_template(raw, {"password": "a%41b"})).password == "aAb", "a `%41` read as an escape"
    with pytest.raises(ValueError, match="invalid literal"):  # `p@ss:w/rd`: the port read as `w`
        make_url(render_template(raw, {"password": "p@ss:w/rd"}))


# --- settings --------------------------------------------------------------------------------------------------

_PLACEHOLDERS = {
    "STRIPE_API_KEY": "sk_test_placeholderplaceholder",
    "DATABASE_URL": "postgresql://u:p@db:5432/d",
    "CONSOLE_SESSION_SECRET": "placeholder-session-secret-of-at-least-32-bytes",
}


@cache
def _placeholders() -> dict[str, str]:
    """A value of the shape each setting checks: the base's, and those each rail's `rail.yaml` asks for."""
    made = stand_in_env(ROOT)  # what the emulators make for the local stack (a certificate to pin, ...)
    rails = {
        key: made[key] if shape == "stand-in" else shape
        for rail in RAILS.values()
        for key, shape in rail.placeholders.items()
    }
    return _PLACEHOLDERS | rails


def _settings_env_names(cls: type[Any]) -> set[str]:
    """Every environment variable a pydantic settings class reads: fields (and aliases) under its prefix, and
    those of nested settings models under theirs."""
    from pydantic_settings import BaseSettings

    prefix = cls.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        names.add((prefix + (field.alias or name)).upper())
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseSettings):
            names |= _settings_env_names(nested)
    return names


def _providers_env(doc: Any) -> set[str]:
    """Environment variables a providers file (or part) names (secrets, confirm.api_key / api_key_id, *_env options)."""
    names: set[str] = set()

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and (key in {"secrets", "api_key", "api_key_id"} or key.endswith("_env")):
            names.add(node)
        if key == "secrets" and isinstance(node, dict):
            names.update(v for v in node.values() if isinstance(v, str))

    walk(doc)
    return names


def _providers_parts(docs: tuple[Doc, ...], service: str) -> dict[str, str]:
    """The parts of a service's providers directory: the keys of the ConfigMap its `providers` volume mounts."""
    [volume] = [v for v in docs_volumes(named(docs, "Deployment", service)) if v["name"] == "providers"]
    return dict(named(docs, "ConfigMap", volume["configMap"]["name"])["data"])


def _workloads(docs: tuple[Doc, ...]) -> Iterator[tuple[str, Doc, set[str]]]:
    """(workload name, container, env names its process reads)."""
    for service in DEPLOYMENTS:
        names = _settings_env_names(k8s.settings_class(service))
        if service in CALLERS:
            names |= PROXY_ENV
        if service == "signer":
            names |= HSM_CLIENT_ENV
        if service == "payouts":
            from prizeflow_payouts.adapters.stellar.settings import StellarEnv

            names |= _settings_env_names(StellarEnv)
        if service in {"payouts", "webhooks"}:
            for part in _providers_parts(docs, service).values():
                names |= _providers_env(yaml.safe_load(part))
        yield service, _container(named(docs, "Deployment", service)), names
        if service in SERVICES:
            job = _container(named(docs, "Job", f"{service}-migrate"))
            yield f"{service}-migrate", job, _migrations_env_names()
    yield "topics-check", _container(named(docs, "Job", "topics-check")), _settings_env_names(ProvisionSettings)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_env_var_is_a_real_setting_of_its_process(overlay: str) -> None:
    docs = rendered(overlay)
    unknown = []
    for workload, container, names in _workloads(docs):
        set_here = set(_config(docs, container)) | set(_secret_refs(container))
        unknown += [f"{workload}: {env}" for env in sorted(set_here - names)]
    assert not unknown, f"set but read by nothing: {unknown}"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", DEPLOYMENTS)
def test_the_settings_load_from_what_the_manifests_set(overlay: str, service: str, tmp_path: Path) -> None:
    """Every required setting is set: the service's settings (and its providers file, for payouts and webhooks)
    load from exactly the manifest's environment, secrets standing in as placeholders."""
    _load(rendered(overlay), service, tmp_path)


def _env(docs: tuple[Doc, ...], service: str) -> dict[str, str]:
    """The environment the manifests give a service's container, secrets standing in as placeholders."""
    container = _container(named(docs, "Deployment", service))
    env = _config(docs, container)
    given = _placeholders()
    return env | {name: given.get(name, "placeholder-secret-0123456789") for name in _secret_refs(container)}


def _load(docs: tuple[Doc, ...], service: str, tmp: Path, **override: str) -> Any:
    """What the service does with that environment at start-up, as far as configuration goes: its settings, then
    (payouts, webhooks) the providers directory as mounted, read by the service's own loader, and (signer) its TON
    policy. Returns the settings, or the providers configuration; raises what the service would refuse with."""
    env = _env(docs, service) | override
    with mock.patch.dict(os.environ, env, clear=True):
        settings: Any = k8s.settings_class(service)()
        assert settings.prizeflow_profile.value == "production"
        if service == "signer":
            from prizeflow_signer.bootstrap import ton_policy

            ton_policy(settings)
        if service in {"payouts", "webhooks"}:
            container = _container(named(docs, "Deployment", service))
            [mount] = [m for m in container["volumeMounts"] if m["name"] == "providers"]
            assert Path(env[f"{service.upper()}_PROVIDERS_FILE"]) == Path(mount["mountPath"]) == MOUNTED_PROVIDERS
            return _load_providers(service, _mounted(tmp / service, _providers_parts(docs, service)), env, settings)
        return settings


def _mounted(directory: Path, data: Mapping[str, str]) -> Path:
    """A ConfigMap's keys laid out as kubelet mounts them: a timestamped directory, `..data` pointing at it, each
    key a link through `..data` (the loader must skip the dot entries)."""
    real = directory / "..2026_01_01_00_00_00.000000001"
    real.mkdir(parents=True)
    (directory / "..data").symlink_to(real.name)
    for key, text in data.items():
        (real / key).write_text(text)
        (directory / key).symlink_to(Path("..data") / key)
    return directory


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_kafka_client_authenticates_as_its_own_user_with_strimzis_secrets(overlay: str) -> None:
    """SASL_SSL as the process's own KafkaUser: the password file is that user's Strimzi Secret (key `password`), the
    CA file the cluster CA; the network policy admits only the TLS listener."""
    docs = rendered(overlay)
    users = {d["metadata"]["name"]: d["spec"] for d in of_kind(docs, "KafkaUser")}
    assert {u["authentication"]["type"] for u in users.values()} == {"scram-sha-512"}
    clients = [(s, named(docs, "Deployment", s)) for s in SERVICES]
    clients.append(("prizeflow-topics", named(docs, "Job", "topics-check")))
    for user, workload in clients:
        container = _container(workload)
        env = _config(docs, container)
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["KAFKA_SASL_USERNAME"] == user
        assert user in users
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == k8s.KAFKA_BOOTSTRAP_TLS
        assert not {"KAFKA_SASL_PASSWORD", "KAFKA_ALLOW_PLAINTEXT"} & (set(env) | set(_secret_refs(container)))
        mounted: dict[str, tuple[str, str]] = {}
        volumes = {v["name"]: v for v in docs_volumes(workload)}
        for mount in container["volumeMounts"]:
            secret: Doc = volumes[mount["name"]].get("secret") or {}
            for item in secret.get("items", []):
                mounted[f"{mount['mountPath']}/{item['path']}"] = (secret["secretName"], item["key"])
        assert mounted[env["KAFKA_SASL_PASSWORD_FILE"]] == (user, "password"), user
        assert mounted[env["KAFKA_SSL_CAFILE"]] == ("prizeflow-cluster-ca-cert", "ca.crt"), user
    policy = named(docs, "NetworkPolicy", "kafka-clients-to-kafka")
    assert [p["port"] for r in policy["spec"]["egress"] for p in r["ports"]] == [9093]


def docs_volumes(doc: Doc) -> list[Doc]:
    return list(doc["spec"]["template"]["spec"].get("volumes", []))


MOUNTED_PROVIDERS = Path("/etc/prizeflow/providers")


def _load_providers(service: str, directory: Path, env: Mapping[str, str], settings: Any) -> Any:
    if service == "webhooks":
        from prizeflow_contracts.kyc import VerificationVendor
        from prizeflow_webhooks.adapters.config import load_config

        hooks = load_config(directory, dev=False, env=env)
        rails = {name for name, p in hooks.providers.items() if not isinstance(p.type, VerificationVendor)}
        assert set(hooks.confirm) == rails, (
            "every payout rail confirms outside dev (a KYC vendor is read back by payouts)"
        )
        return hooks
    from prizeflow_payouts.bootstrap import load_config as load_payouts
    from prizeflow_payouts.bootstrap import provider_context

    config = load_payouts(directory, provider_context(settings), env=env)
    assert {e.name for e in config.registry} >= {"stellar", "stripe"}
    return config


# --- payout rails (deploy/k8s/components/rails) ---------------------------------------------------------------

RAILS_DIR = K8S / "components" / "rails"


@dataclass(frozen=True)
class Rail:
    callers: frozenset[str]  # the Deployments that call the provider (through the egress proxy)
    secrets: Mapping[str, frozenset[str]]  # Secret name -> the keys it must hold (each read as the env var of its name)
    hosts: frozenset[str]  # its API's hosts: its part of the egress proxy's allow-list
    placeholders: Mapping[str, str]  # key -> a value of the shape its settings check (`stand-in`: its emulator's)
    provider: str  # its payouts provider's name: a persistent key (payouts rows, the rail's books)


def _rails() -> dict[str, Rail]:
    """Each component under components/rails, by its directory's name (the provider type it enables), with what its
    `rail.yaml` says enabling it adds: no list of rails is kept here."""
    found = {}
    for path in sorted(p for p in RAILS_DIR.iterdir() if p.is_dir()):
        doc = yaml.safe_load((path / "rail.yaml").read_text())
        found[path.name] = Rail(
            frozenset(doc["callers"]),
            {secret: frozenset(keys) for secret, keys in doc["secrets"].items()},
            frozenset(doc["hosts"]),
            doc.get("placeholders", {}),
            doc["provider"],
        )
    return found


RAILS = _rails()


@cache
def rendered_with(overlay: str, *components: str) -> tuple[Doc, ...]:
    """An overlay with components enabled, as an operator's overlay would: `namespace`, the overlay, the components
    (`rails/<rail>` or a path under deploy/k8s/components; kustomize refuses absolute paths: relative ones from a
    scratch directory beside the checkout)."""
    root = checkout()
    with tempfile.TemporaryDirectory(dir=root.parent) as scratch:
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": "prizeflow",
            "resources": [os.path.relpath(root / "overlays" / overlay, scratch)],
            "components": [os.path.relpath(root / "components" / _component(c), scratch) for c in components],
        }
        (Path(scratch) / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        return build(Path(scratch))


def _component(name: str) -> str:
    return f"rails/{name}" if name in RAILS else name


def _parts_of(docs: tuple[Doc, ...], service: str) -> dict[str, Doc]:
    return {key: yaml.safe_load(text) for key, text in _providers_parts(docs, service).items()}


def _unset_provider_env(docs: tuple[Doc, ...]) -> list[str]:
    """Variables a providers part names (secrets, keys, *_env options) that the service's container does not get."""
    missing = []
    for service in ("payouts", "webhooks"):
        container = _container(named(docs, "Deployment", service))
        given = set(_config(docs, container)) | set(_secret_refs(container))
        for key, part in _parts_of(docs, service).items():
            missing += [f"{service} {key}: {env}" for env in sorted(_providers_env(part) - given)]
    return missing


def _unknown_env(docs: tuple[Doc, ...]) -> list[str]:
    unknown = []
    for workload, container, names in _workloads(docs):
        set_here = set(_config(docs, container)) | set(_secret_refs(container))
        unknown += [f"{workload}: {env}" for env in sorted(set_here - names)]
    return unknown


def _external_keys(docs: tuple[Doc, ...], secret: str) -> dict[str, str]:
    """The keys the ExternalSecret producing Secret `secret` gives it, each with the store path it comes from."""
    [spec] = [d["spec"] for d in of_kind(docs, "ExternalSecret") if d["spec"]["target"]["name"] == secret]
    keys = {d["secretKey"]: d["remoteRef"]["key"] for d in spec["data"]}
    return keys | dict.fromkeys(spec["target"].get("template", {}).get("data", {}), "template")


def test_every_rail_has_a_component_and_all_rails_enables_each() -> None:
    assert {p.name for p in RAILS_DIR.iterdir() if p.is_dir()} == set(RAILS)
    components = yaml.safe_load((K8S / "overlays" / "all-rails" / "kustomization.yaml").read_text())["components"]
    rails = [c for c in components if "components/rails/" in c]
    assert sorted(rails) == [f"../../components/rails/{r}" for r in RAILS]
    assert components.index("rail-settings") > max(components.index(r) for r in rails), "its values merge last"
    docs = rendered("all-rails")
    types = {p["type"] for part in _parts_of(docs, "payouts").values() for p in part.get("providers", [])}
    assert types == {"stellar", "stripe", "manual", *RAILS}
    hooks = {p["type"] for part in _parts_of(docs, "webhooks").values() for p in part["providers"]}
    assert hooks == {"stripe"} | {name for name, rail in RAILS.items() if "webhooks" in rail.callers}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
@pytest.mark.parametrize("rail", RAILS)
def test_a_rail_component_adds_its_part_secrets_and_egress(overlay: str, rail: str) -> None:
    """What enabling one rail changes in an overlay: its providers part (payouts, and webhooks for gift cards), its
    secrets read key by key from the services' Secrets (in prod, entries of their ExternalSecrets), its hosts in the
    egress proxy's allow-list. Every object it adds or changes validates strictly and carries a stage label
    (`kubectl apply -l` would skip it)."""
    spec, base, docs = RAILS[rail], rendered(overlay), rendered_with(overlay, rail)

    unchanged = {json.dumps(d, sort_keys=True) for d in base}
    changed = [d for d in docs if json.dumps(d, sort_keys=True) not in unchanged]
    assert changed
    for doc in changed:
        validate(doc)
        assert "prizeflow.io/stage" in doc["metadata"].get("labels", {}), f"{doc['kind']}/{doc['metadata']['name']}"

    for service in ("payouts", "webhooks"):
        before, after = _parts_of(base, service), _parts_of(docs, service)
        added = set(after) - set(before)
        assert {k: v for k, v in after.items() if k in before} == before, "the other parts are untouched"
        if service == "payouts" or "webhooks" in spec.callers:  # a rail whose provider's webhooks it confirms
            assert added == {f"rail-{rail}.yaml"}, service
            assert {p["type"] for p in after[f"rail-{rail}.yaml"]["providers"]} == {rail}
            if service == "payouts":
                assert [p["name"] for p in after[f"rail-{rail}.yaml"]["providers"]] == [spec.provider]
        else:
            assert not added, service
    assert not _unset_provider_env(docs), "every variable a part names is set"
    assert not _unknown_env(docs), "and nothing the processes do not read"

    for secret, keys in spec.secrets.items():
        service = secret.removesuffix("-secrets")
        refs = _secret_refs(_container(named(docs, "Deployment", service)))
        assert {env: refs[env] for env in keys} == {key: (secret, key) for key in keys}
        if overlay == "prod":
            given = _external_keys(docs, secret)
            assert {key: given.get(key) for key in keys} == dict.fromkeys(keys, f"prizeflow/{service}")
    assert not of_kind(docs, "ExternalSecret") or overlay == "prod"

    # Its way out: its hosts in the egress proxy's allow-list (a part of its own), reached through the proxy the
    # callers already reach; no NetworkPolicy of its own, and no public address opened to anyone.
    allowed_before, allowed = _allowlist(base), _allowlist(docs)
    assert {k: v for k, v in allowed.items() if k in allowed_before} == allowed_before, "the other parts are untouched"
    assert set(allowed) - set(allowed_before) == {f"rail-{rail}.conf"}
    assert _acl_hosts(allowed[f"rail-{rail}.conf"]) == {"providers": spec.hosts}
    assert {d["metadata"]["name"] for d in of_kind(docs, "NetworkPolicy")} == {
        d["metadata"]["name"] for d in of_kind(base, "NetworkPolicy")
    }
    for caller in spec.callers:
        names = {p["metadata"]["name"] for p in _policies_of(docs, _pod_labels(docs, caller))}
        assert "providers-egress" in names, caller


def _allowlist(docs: tuple[Doc, ...]) -> dict[str, str]:
    """The egress proxy's allow-list parts: the keys of the ConfigMap its `allowlist` volume mounts."""
    [volume] = [v for v in docs_volumes(named(docs, "Deployment", "egress-proxy")) if v["name"] == "allowlist"]
    return dict(named(docs, "ConfigMap", volume["configMap"]["name"])["data"])


def _acl_hosts(part: str) -> dict[str, frozenset[str]]:
    """Squid `acl <name> dstdomain -n <host>...` lines of one part: ACL name -> hosts."""
    hosts: dict[str, set[str]] = {}
    for line in part.splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            assert words[0] == "acl", line
            assert words[2:4] == ["dstdomain", "-n"], line  # names only, no lookups
            hosts.setdefault(words[1], set()).update(words[4:])
    return {name: frozenset(h) for name, h in hosts.items()}


# What each rail alone (its ConfigMap values empty, PAYOUTS_LIVE_EXECUTION false as in the base) is refused with, at
# start-up, naming the setting; then with the setting given (an override of the environment), what comes next.
_REFUSALS: dict[str, list[tuple[str, dict[str, str], str]]] = {
    "ton_wallet": [
        ("payouts", {}, "network mainnet needs PAYOUTS_LIVE_EXECUTION=true"),
        ("payouts", {"PAYOUTS_LIVE_EXECUTION": "true"}, "wallet_env names TON_WALLET_ADDRESS, which is not set"),
        ("signer", {}, "signer_ton_jettons"),
        ("signer", {"SIGNER_TON_JETTONS": "{}"}, "SIGNER_TON_WALLET"),
    ],
    "gift_card": [
        ("payouts", {"GIFTCARD_API_KEY": "PROD_placeholder-placeholder"}, "PAYOUTS_LIVE_EXECUTION is false"),
        (
            "payouts",
            {
                "GIFTCARD_API_KEY": "PROD_placeholder",
                "PAYOUTS_LIVE_EXECUTION": "true",
                "GIFTCARD_API_URL": "https://testflight.tremendous.com",
            },
            "only ever sent to https://api.tremendous.com",
        ),
        ("webhooks", {"GIFTCARD_API_URL": "http://giftcard-api:8080"}, "must start with https://"),  # an emulator
    ],
    "crypto_exchange": [("payouts", {}, "PAYOUTS_LIVE_EXECUTION is false")],
    "telegram_if_supported": [("payouts", {}, "PAYOUTS_LIVE_EXECUTION is false")],
}


@pytest.mark.parametrize(
    ("rail", "service", "override", "says"), [(r, *c) for r, cases in _REFUSALS.items() for c in cases]
)
def test_a_rail_is_refused_at_start_up_until_configured(
    rail: str, service: str, override: dict[str, str], says: str, tmp_path: Path
) -> None:
    """Fail closed: what the component leaves to the operator (the wallet, the decision to move real money) stops
    the service at start-up, naming it; nothing has a usable default."""
    with pytest.raises(ValueError, match=re.escape(says)):
        _load(rendered_with("prod", rail), service, tmp_path, **override)


@pytest.mark.parametrize("rail", ["gift_card", "crypto_exchange", "telegram_if_supported"])
def test_a_rail_loads_in_production_once_live_execution_is_decided(rail: str, tmp_path: Path) -> None:
    """The rails that need no value of the operator's but their secrets load from what the component sets, once
    PAYOUTS_LIVE_EXECUTION is true (gift cards: even without)."""
    docs = rendered_with("prod", rail)
    live = {} if rail == "gift_card" else {"PAYOUTS_LIVE_EXECUTION": "true"}
    config = _load(docs, "payouts", tmp_path, **live)
    assert rail in {e.type.value for e in config.registry}
    if rail == "gift_card":
        assert "giftcard" in _load(docs, "webhooks", tmp_path).providers


def test_all_rails_gives_payouts_and_the_signer_one_ton_wallet_and_one_gift_card_api(tmp_path: Path) -> None:
    """Settings read by two processes come from one ConfigMap key, and the signer's JSON view of the jettons says
    what payouts' variables say; both load (the signer with a TON policy for that wallet)."""
    from prizeflow_ton.addresses import canonical

    docs = rendered("all-rails")
    payouts, signer, webhooks = (_env(docs, s) for s in ("payouts", "signer", "webhooks"))
    assert canonical(payouts["TON_WALLET_ADDRESS"]) == canonical(signer["SIGNER_TON_WALLET"])
    assert json.loads(signer["SIGNER_TON_JETTONS"]) == {
        "USDT": {"master": payouts["TON_USDT_MASTER"], "wallet": payouts["TON_USDT_JETTON_WALLET"]}
    }
    assert payouts["GIFTCARD_API_URL"] == webhooks["GIFTCARD_API_URL"]
    from prizeflow_signer.bootstrap import ton_policy
    from prizeflow_signer.settings import SignerSettings

    with mock.patch.dict(os.environ, signer, clear=True):
        policy = ton_policy(SignerSettings())  # from the environment
    assert policy is not None
    assert policy.wallet == canonical(payouts["TON_WALLET_ADDRESS"])
    config = _load(docs, "payouts", tmp_path)
    assert {e.name for e in config.registry} == {"stellar", "stripe", "manual", *(r.provider for r in RAILS.values())}
    assert set(config.approvals.rules) >= {"XTR", "TON", "USDT"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_a_providers_part_names_is_set(overlay: str) -> None:
    assert not _unset_provider_env(rendered(overlay))


@pytest.mark.parametrize("rail", [None, *RAILS])
def test_every_secret_a_production_deployment_reads_is_materialised_by_an_external_secret(rail: str | None) -> None:
    """Every key a production Deployment reads from a Secret (an optional one aside: the console's client secret) is
    one an ExternalSecret writes, with a rail enabled or not."""
    docs = rendered("prod") if rail is None else rendered_with("prod", rail)
    missing = []
    for service in DEPLOYMENTS:
        for e in _container(named(docs, "Deployment", service)).get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional") and ref["key"] not in _external_keys(docs, ref["name"]):
                missing.append(f"{service} {e['name']}: {ref['name']}/{ref['key']}")
    assert not missing


# --- monitoring ------------------------------------------------------------------------------------------------


def test_the_prometheus_rule_is_the_rules_file() -> None:
    """The rules themselves (complete annotations, metrics that exist, promtool tests) are checked by
    tests/deploy/test_alert_rules.py; here, that the cluster gets exactly them."""
    rules_file = ROOT / "deploy" / "prometheus" / "rules" / "prizeflow.rules.yml"
    groups = yaml.safe_load(rules_file.read_text())["groups"]
    assert named(rendered("prod"), "PrometheusRule", "prizeflow")["spec"]["groups"] == groups
