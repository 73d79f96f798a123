"""deploy/k8s never loses the ledger (issue 33), checked offline on the rendered overlays: every database archives
its WAL and is backed up on a schedule with retention, commits wait for a standby on every database, instances and
pods spread over zones, PostgreSQL's parameters add up (JIT off; every connection the services can open fits in
max_connections), the Kafka cluster is in the bundle with replication 3 / min ISR 2 / racks in prod and its CA where
the clients mount it, the game servers may produce rounds and nothing else, only the egress proxy reaches public
addresses, and the restore example renders and validates. The CRD schemas these validate against are converted
from the operators' own CRDs (tools/devstack/src/prizeflow_devstack/crd_schemas.py), checked here too.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from k8s_helpers import k8s_helpers

from prizeflow_devstack import crd_schemas, k8s

H = k8s_helpers()
Doc = dict[str, Any]
CALLERS, DEPLOYMENTS, K8S, OVERLAYS, PROXY = H.CALLERS, H.DEPLOYMENTS, H.K8S, H.OVERLAYS, H.PROXY
RAILS, ROOT, SERVICES = H.RAILS, H.ROOT, H.SERVICES
_acl_hosts, _acls, _allowlist, _config, _container, _load = (
    H._acl_hosts,
    H._acls,
    H._allowlist,
    H._config,
    H._container,
    H._load,
)
_matches, _pod_labels, _policies_of, docs_volumes, named, of_kind = (
    H._matches,
    H._pod_labels,
    H._policies_of,
    H.docs_volumes,
    H.named,
    H.of_kind,
)
rendered, rendered_with, tool, validate = H.rendered, H.rendered_with, H.tool, H.validate

pytestmark = pytest.mark.k8s

DATABASES = (*SERVICES, "console")  # every service's own cluster, `<service>-db`
MONEY = ("settlement", "rewards", "payouts", "signer", "webhooks")
BARMAN = "barman-cloud.cloudnative-pg.io"
ZONE, HOST = "topology.kubernetes.io/zone", "kubernetes.io/hostname"


def _clusters(docs: tuple[Doc, ...]) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in of_kind(docs, "Cluster")}


# --- backups ---------------------------------------------------------------------------------------------------


def test_every_production_database_archives_its_wal_and_is_backed_up_nightly_with_retention() -> None:
    """The barman-cloud plugin is each cluster's WAL archiver, into its service's ObjectStore (its own prefix of the
    bucket, its own credentials, a retention policy); a ScheduledBackup per cluster through the same plugin, taking
    the first base backup at once; nothing uses the deprecated in-tree barmanObjectStore."""
    docs = rendered("prod")
    clusters = _clusters(docs)
    assert set(clusters) == {f"{d}-db" for d in DATABASES}
    stores = {d["metadata"]["name"]: d["spec"] for d in of_kind(docs, "ObjectStore")}
    assert set(stores) == {f"{d}-backups" for d in DATABASES}
    for service in DATABASES:
        name, spec = f"{service}-db", clusters[f"{service}-db"]["spec"]
        assert "backup" not in spec, f"{name}: the in-tree barmanObjectStore is deprecated: the plugin archives"
        [archiver] = [p for p in spec["plugins"] if p.get("isWALArchiver")]
        assert archiver["name"] == BARMAN, name
        assert archiver.get("enabled", True), name
        assert archiver["parameters"] == {"barmanObjectName": f"{service}-backups"}, "a folder of its own name"
        store = stores[f"{service}-backups"]
        assert re.fullmatch(r"[1-9][0-9]*[dwm]", store["retentionPolicy"]), name
        config = store["configuration"]
        assert re.fullmatch(rf"s3://[a-z0-9.-]+/{service}/", config["destinationPath"]), config["destinationPath"]
        credentials = config["s3Credentials"]
        assert {credentials[k]["name"] for k in ("accessKeyId", "secretAccessKey")} == {f"{service}-backups-s3"}
        secret = named(docs, "ExternalSecret", f"{service}-backups-s3")["spec"]
        assert {d["secretKey"] for d in secret["data"]} == {"ACCESS_KEY_ID", "ACCESS_SECRET_KEY"}
        assert {d["remoteRef"]["key"] for d in secret["data"]} == {f"prizeflow/backups/{service}"}
        [scheduled] = [d["spec"] for d in of_kind(docs, "ScheduledBackup") if d["spec"]["cluster"]["name"] == name]
        assert (scheduled["method"], scheduled["pluginConfiguration"]["name"]) == ("plugin", BARMAN), name
        assert len(scheduled["schedule"].split()) == 6, "CNPG's cron has a seconds field"
        assert scheduled["immediate"] is True, "a cluster is backed up from its first minute"
        assert not scheduled.get("suspend")
    assert not [d for d in of_kind(docs, "ExternalSecret") if d["metadata"]["name"] == "postgres-backups-s3"]


def test_no_two_databases_share_a_backup_key_or_a_prefix() -> None:
    """One S3 key with delete rights for every cluster let a compromised instance of one database delete another's
    backups: each service's store has a prefix and a Secret no other store uses, and the key's policy
    (deploy/k8s/backup/iam-policy.json) reaches that prefix only."""
    stores = [d["spec"]["configuration"] for d in of_kind(rendered("prod"), "ObjectStore")]
    prefixes = [c["destinationPath"] for c in stores]
    secrets = [c["s3Credentials"]["accessKeyId"]["name"] for c in stores]
    assert len(set(prefixes)) == len(set(secrets)) == len(stores) == len(DATABASES)
    assert not [a for a in prefixes for b in prefixes if a != b and a.startswith(b)], "no prefix inside another"
    policy = json.loads((K8S / "backup" / "iam-policy.json").read_text())
    allowed = {
        a for st in policy["Statement"] for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    }
    assert all(st["Effect"] == "Allow" for st in policy["Statement"])
    assert "s3:DeleteObject" in allowed, "retention prunes what is older than the recovery window"
    # Objects and listing only: no wildcard, no version deletion, no bucket or lock configuration, no bypass.
    assert allowed <= {
        "s3:ListBucket",
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    }, allowed
    for statement in policy["Statement"]:
        if statement["Action"] == "s3:ListBucket":
            assert statement["Resource"] == "arn:aws:s3:::<bucket>"
            assert statement["Condition"]["StringLikeIfExists"]["s3:prefix"] == ["<service>/", "<service>/*"]
        else:
            assert statement["Resource"] == "arn:aws:s3:::<bucket>/<service>/*"


def test_the_bucket_keeps_every_version_longer_than_the_recovery_window() -> None:
    """Versioning and object lock (deploy/k8s/backup): what the plugin's retention, or a stolen key, deletes stays
    as a locked version for longer than the 30-day window a restore may reach into, then expires."""
    windows = {int(d["spec"]["retentionPolicy"].removesuffix("d")) for d in of_kind(rendered("prod"), "ObjectStore")}
    lock = json.loads((K8S / "backup" / "object-lock.json").read_text())
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert lock["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE", "GOVERNANCE can be bypassed with a permission"
    assert lock["Rule"]["DefaultRetention"]["Days"] > max(windows)
    [rule] = json.loads((K8S / "backup" / "lifecycle.json").read_text())["Rules"]
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] > lock["Rule"]["DefaultRetention"]["Days"]
    assert "Expiration" not in rule or set(rule["Expiration"]) == {"ExpiredObjectDeleteMarker"}, "current versions stay"


@pytest.mark.parametrize("overlay", ["dev", "all-rails"])
def test_a_development_cluster_archives_nothing_to_a_store_that_does_not_exist(overlay: str) -> None:
    """A WAL archiver that cannot reach its store keeps every segment until the volume is full: dev has no object
    store, so no cluster archives, nothing is backed up, and no ObjectStore names a placeholder endpoint."""
    docs = rendered(overlay)
    for name, cluster in _clusters(docs).items():
        assert not cluster["spec"].get("plugins"), name
    assert not of_kind(docs, "ObjectStore")
    assert not of_kind(docs, "ScheduledBackup")


# --- failover --------------------------------------------------------------------------------------------------


def test_a_commit_waits_for_a_standby_on_every_money_database_in_prod() -> None:
    """Quorum synchronous replication (any 1 standby, dataDurability required) on three instances: a committed
    transaction is on two instances; with the failover quorum the operator promotes only a standby that provably
    has every acknowledged commit (the primary and the one standby that had the last commit lost together: no
    automatic promotion), so no failover loses one."""
    clusters = _clusters(rendered("prod"))
    for service in MONEY:
        spec = clusters[f"{service}-db"]["spec"]
        assert spec["instances"] == 3, service
        assert spec["postgresql"]["synchronous"] == {
            "method": "any",
            "number": 1,
            "dataDurability": "required",
            "failoverQuorum": True,  # never promote a standby that may lack an acknowledged commit
        }
        assert not {"minSyncReplicas", "maxSyncReplicas"} & set(spec), "the legacy knobs: one mechanism"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_synchronous_replication_never_waits_for_a_standby_that_cannot_exist(overlay: str) -> None:
    """With dataDurability required, a cluster asking for more synchronous standbys than it has instances minus
    the primary would never commit: dev's single instances have no synchronous section at all."""
    for name, cluster in _clusters(rendered(overlay)).items():
        spec = cluster["spec"]
        sync = spec["postgresql"].get("synchronous")
        if spec["instances"] == 1:
            assert sync is None, name
        else:
            assert sync is not None, name
            assert 1 <= sync["number"] <= spec["instances"] - 1, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_database_instances_are_kept_in_different_zones(overlay: str) -> None:
    for name, cluster in _clusters(rendered(overlay)).items():
        affinity = cluster["spec"]["affinity"]
        assert affinity.get("enablePodAntiAffinity", True) is True, name
        assert (affinity["topologyKey"], affinity["podAntiAffinityType"]) == (ZONE, "required"), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_spreads_over_zones_and_nodes(overlay: str) -> None:
    docs = rendered(overlay)
    for doc in of_kind(docs, "Deployment"):
        pod = doc["spec"]["template"]
        constraints = pod["spec"]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in constraints} == {ZONE, HOST}, doc["metadata"]["name"]
        for c in constraints:
            assert c["maxSkew"] == 1
            assert _matches(c["labelSelector"], pod["metadata"]["labels"]), "it counts its own pods"


# --- PostgreSQL image and metrics ------------------------------------------------------------------------------

# CloudNativePG reads a cluster's major from its image's tag (machinery v0.5.0 pkg/image/reference: a reference
# with a digest and no tag has no tag, and the Cluster is refused): a tag starting with the major, then the digest.
CNPG_IMAGE = re.compile(r"(?P<name>[^:@]+):(?P<major>\d+)(\.\d+)?[-._\w]*(?P<digest>@sha256:[0-9a-f]{64})?")


def _major(image: str) -> int:
    match = CNPG_IMAGE.fullmatch(image)
    assert match, f"{image}: CloudNativePG cannot read a PostgreSQL major from its tag"
    return int(match.group("major"))


def _postgres_majors_the_tests_run() -> set[int]:
    """The PostgreSQL every test runs: the devstack's server binaries, the compose stack's image, the container
    tier's stand-in."""
    from prizeflow_devstack import images
    from prizeflow_devstack.postgres import find_bin_dir

    version = subprocess.run(
        [str(find_bin_dir() / "postgres"), "--version"], capture_output=True, text=True, check=True
    )
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["postgres"]["image"]
    found = {int(re.search(r"\) (\d+)\.", version.stdout).group(1))}  # type: ignore[union-attr]
    found.add(int(re.search(r":(\d+)", compose).group(1)))  # type: ignore[union-attr]
    found.add(int(re.search(r":(\d+)", images.POSTGRES_IMAGE).group(1)))  # type: ignore[union-attr]
    found |= {
        int(p.removeprefix("postgresql-")) for p in images.ROOTFS_PACKAGES["infra"] if p.startswith("postgresql-")
    }
    return found


def test_one_postgresql_major_everywhere_and_production_names_it_by_digest() -> None:
    """Every cluster of every overlay runs the major every test runs (15); production names the image by digest with
    its tag kept (the operator's site value: a tag alone lets a registry change what runs without a commit)."""
    majors = _postgres_majors_the_tests_run()
    assert len(majors) == 1, majors
    for overlay in OVERLAYS:
        for name, cluster in _clusters(rendered(overlay)).items():
            assert _major(cluster["spec"]["imageName"]) in majors, (overlay, name, cluster["spec"]["imageName"])
    for cluster in _clusters(rendered("prod")).values():
        match = CNPG_IMAGE.fullmatch(cluster["spec"]["imageName"])
        assert match, cluster["spec"]["imageName"]
        assert match.group("digest"), cluster["spec"]["imageName"]
    assert _major("ghcr.io/cloudnative-pg/postgresql:15.18-standard-bookworm@sha256:" + "a" * 64) == 15
    with pytest.raises(AssertionError, match="cannot read a PostgreSQL major"):
        _major("ghcr.io/cloudnative-pg/postgresql@sha256:" + "a" * 64)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_database_instance_is_scraped_by_a_pod_monitor_not_the_deprecated_switch(overlay: str) -> None:
    """`monitoring.enablePodMonitor` is deprecated in CloudNativePG 1.30: one PodMonitor selects every instance of
    every cluster (a restored one too) and labels each series with its cluster, which the alerts group by."""
    docs = rendered(overlay)
    for name, cluster in _clusters(docs).items():
        assert "enablePodMonitor" not in cluster["spec"].get("monitoring", {}), name
    [monitor] = [m for m in of_kind(docs, "PodMonitor") if m["metadata"]["name"] == "postgres"]
    for name in (*_clusters(docs), "settlement-db-r1"):
        assert _matches(monitor["spec"]["selector"], {"cnpg.io/cluster": name, "cnpg.io/podRole": "instance"}), name
    assert not _matches(monitor["spec"]["selector"], {"cnpg.io/cluster": "x", "cnpg.io/podRole": "pooler"})
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_cnpg_io_cluster"], "targetLabel": "cluster"} in endpoint[
        "relabelings"
    ]


# --- PostgreSQL parameters -------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_jit_is_off_on_every_database(overlay: str) -> None:
    """The relay's poll (a few rows) was JIT-compiled for ~15 ms each time: no query of ours is big enough."""
    for name, cluster in _clusters(rendered(overlay)).items():
        assert cluster["spec"]["postgresql"]["parameters"]["jit"] == "off", name


# What a process opens besides its SQLAlchemy pool (pool_size + max_overflow, libs/runtime db.create_engine):
RELAY_CONNECTIONS = 2  # the outbox relay's LISTEN/poll connection and its VACUUM connection (runtime outbox.py)
PROCESSES_PER_POD = 1  # `python -m prizeflow_<service>`: one process, HTTP, consumers and relay on one event loop
MIGRATIONS_JOB = 1  # alembic upgrades on one connection (runtime migrations.py), alongside a rollout's pods
# CloudNativePG's own sessions on the primary, outside superuser_reserved_connections: the instance manager, the
# metrics exporter (one per database it queries), the barman-cloud plugin's backup session, with room to spare.
# Streaming replication does not count (walsenders have their own max_wal_senders since PostgreSQL 12).
CNPG_MARGIN = 10
CONSOLE_POOL = re.compile(r"create_engine\(settings\.database_url, pool_size=(\d+)[,)]")


def _max_pods(docs: tuple[Doc, ...], deployment: str) -> int:
    """The most pods a Deployment can run at once: its autoscaler's maximum (or its fixed replicas) plus a rolling
    update's surge."""
    doc = named(docs, "Deployment", deployment)
    scaled = [
        d["spec"]["maxReplicaCount"]
        for d in of_kind(docs, "ScaledObject")
        if d["spec"]["scaleTargetRef"]["name"] == deployment
    ]
    hpa = [
        d["spec"]["maxReplicas"]
        for d in of_kind(docs, "HorizontalPodAutoscaler")
        if d["spec"]["scaleTargetRef"]["name"] == deployment
    ]
    [replicas] = scaled + hpa or [doc["spec"]["replicas"]]
    surge = doc["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    if isinstance(surge, str):
        surge = math.ceil(replicas * int(surge.rstrip("%")) / 100)
    return int(replicas) + int(surge)


def _adapters_own_connections(docs: tuple[Doc, ...], tmp: Path) -> int:
    """Connections payouts' providers open beside the service's pool: none for a provider that keeps its books in
    the service's database (bootstrap hands it the runtime's engine: the rail's `database` part), else its own
    engine (`_OWN_POOL_SIZE`, twice with the overflow) or pool (`_pool_size`)."""
    config = _load(docs, "payouts", tmp, PAYOUTS_LIVE_EXECUTION="true")
    extra = 0
    for entry in config.registry:
        if entry.rail.database is not None:
            continue
        own = int(getattr(sys.modules[type(entry.provider).__module__], "_OWN_POOL_SIZE", 0))
        extra += 2 * own + int(getattr(entry.provider, "_pool_size", 0))
    return extra


def _connections(docs: tuple[Doc, ...], service: str, tmp: Path) -> int:
    container = _container(named(docs, "Deployment", service))
    assert container["command"] == ["python", "-m", f"prizeflow_{service}"], "one process per pod"
    if service == "console":
        [size] = CONSOLE_POOL.findall((ROOT / "services/console/src/prizeflow_console/bootstrap.py").read_text())
        pool, relay = int(size), 0
    else:
        default = k8s.settings_class(service).model_fields["database_pool_size"].default
        pool, relay = int(_config(docs, container).get("DATABASE_POOL_SIZE", default)), RELAY_CONNECTIONS
    per_process = 2 * pool + relay  # max_overflow = pool_size
    if service == "payouts":
        per_process += _adapters_own_connections(docs, tmp)
    return _max_pods(docs, service) * PROCESSES_PER_POD * per_process + MIGRATIONS_JOB


@pytest.mark.parametrize("overlay", OVERLAYS)  # all-rails: every rail's adapters
def test_every_connection_the_services_can_open_fits_in_max_connections(overlay: str, tmp_path: Path) -> None:
    """Each database's clients at their worst (every pod at the autoscaler's maximum plus a rollout's surge, each
    process's pool and overflow, the relay, the adapters' own engines, the migrations Job) stay within
    max_connections minus the superuser's reserve minus CNPG's own: no service is refused a connection at peak."""
    docs = rendered(overlay)
    clusters = _clusters(docs)
    for service in DATABASES:
        parameters = clusters[f"{service}-db"]["spec"]["postgresql"]["parameters"]
        budget = int(parameters["max_connections"]) - int(parameters["superuser_reserved_connections"]) - CNPG_MARGIN
        needed = _connections(docs, service, tmp_path)
        assert needed <= budget, f"{service}-db: up to {needed} connections, room for {budget}"


def test_the_connection_count_sees_what_it_counts(tmp_path: Path) -> None:
    """The computation is not vacuous: payouts at 6+1 pods of (10+10) + relay 2, plus the migrations Job; with the
    default max_connections of CloudNativePG (100) it would not fit."""
    docs = rendered("prod")
    assert _max_pods(docs, "payouts") == 7
    assert _connections(docs, "payouts", tmp_path) == 7 * (2 * 10 + 2) + 1
    assert 100 - 3 - CNPG_MARGIN < 7 * 22 + 1


# --- Kafka -----------------------------------------------------------------------------------------------------


def _kafka(docs: tuple[Doc, ...]) -> Doc:
    [kafka] = of_kind(docs, "Kafka")
    return dict(kafka)


def _pools(docs: tuple[Doc, ...], role: str) -> list[Doc]:
    return [p for p in of_kind(docs, "KafkaNodePool") if role in p["spec"]["roles"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_kafka_cluster_is_kraft_with_node_pools_and_the_listener_the_clients_use(overlay: str) -> None:
    docs = rendered(overlay)
    kafka = _kafka(docs)
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1"
    assert kafka["metadata"]["annotations"] == {"strimzi.io/kraft": "enabled", "strimzi.io/node-pools": "enabled"}
    name, namespace = kafka["metadata"]["name"], kafka["metadata"]["namespace"]
    assert name == k8s.KAFKA_CLUSTER
    for pool in of_kind(docs, "KafkaNodePool"):
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == name
    # The services' listener: what every client's ConfigMap says (bootstrap host and port, SASL_SSL, SCRAM-SHA-512).
    listeners = {item["name"]: item for item in kafka["spec"]["kafka"]["listeners"]}
    assert set(listeners) == {"tls", "games"}
    listener = listeners["tls"]
    assert (listener["type"], listener["tls"], listener["authentication"]) == (
        "internal",
        True,
        {"type": "scram-sha-512"},
    )
    assert kafka["spec"]["kafka"]["authorization"] == {"type": "simple"}
    for service in SERVICES:
        env = _config(docs, _container(named(docs, "Deployment", service)))
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"{name}-kafka-bootstrap.{namespace}.svc:{listener['port']}"
        assert (env["KAFKA_SECURITY_PROTOCOL"], env["KAFKA_SASL_MECHANISM"]) == ("SASL_SSL", "SCRAM-SHA-512")
    for user in of_kind(docs, "KafkaUser"):
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert user["spec"]["authorization"]["type"] == "simple"
    # Only our clients and KEDA reach the listener (Strimzi writes the NetworkPolicy from networkPolicyPeers).
    peers = listener["networkPolicyPeers"]
    assert {"podSelector": {"matchLabels": {"prizeflow.io/kafka-client": "true"}}} in peers
    for service in SERVICES:
        assert any(_matches(p["podSelector"], _pod_labels(docs, service)) for p in peers if "podSelector" in p)
    for other in listeners.values():
        assert (other["tls"], other["authentication"]) == (True, {"type": "scram-sha-512"}), "no plain listener"


def test_prod_kafka_has_three_brokers_three_controllers_replication_3_min_isr_2_and_racks() -> None:
    docs = rendered("prod")
    kafka = _kafka(docs)["spec"]["kafka"]
    assert sum(p["spec"]["replicas"] for p in _pools(docs, "broker")) == 3
    assert sum(p["spec"]["replicas"] for p in _pools(docs, "controller")) == 3
    assert all(p["spec"]["roles"] in (["broker"], ["controller"]) for p in of_kind(docs, "KafkaNodePool"))
    config = kafka["config"]
    assert (config["default.replication.factor"], config["min.insync.replicas"]) == (3, 2)
    assert (config["offsets.topic.replication.factor"], config["transaction.state.log.min.isr"]) == (3, 2)
    assert config["unclean.leader.election.enable"] is False
    assert kafka["rack"] == {"topologyKey": ZONE}
    for pool in of_kind(docs, "KafkaNodePool"):
        keys = {c["topologyKey"] for c in pool["spec"]["template"]["pod"]["topologySpreadConstraints"]}
        assert keys == {ZONE, HOST}, pool["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics_fit_the_brokers_and_survive_one(overlay: str) -> None:
    """No topic asks for more replicas than there are brokers; in prod every topic keeps accepting acks=all writes
    with one broker gone (min ISR below replicas); dev's one broker has replication 1 everywhere."""
    docs = rendered(overlay)
    brokers = sum(p["spec"]["replicas"] for p in _pools(docs, "broker"))
    config = _kafka(docs)["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] <= brokers
    for topic in of_kind(docs, "KafkaTopic"):
        spec = topic["spec"]
        assert spec["replicas"] <= brokers
        assert int(spec["config"]["min.insync.replicas"]) <= spec["replicas"]
        if brokers >= 3:
            assert (spec["replicas"], spec["config"]["min.insync.replicas"]) == (3, "2")
    if overlay == "dev":
        assert brokers == 1
        assert {
            (t["spec"]["replicas"], t["spec"]["config"]["min.insync.replicas"]) for t in of_kind(docs, "KafkaTopic")
        } == {(1, "1")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_cluster_ca_is_where_the_clients_mount_it(overlay: str) -> None:
    """The Kafka runs in the clients' namespace, so Strimzi's CA Secret `<cluster>-cluster-ca-cert` is created
    where every client (and KEDA's TriggerAuthentication) reads it; the Topic and User Operators watch their own
    namespace, where the KafkaTopics and KafkaUsers are."""
    docs = rendered(overlay)
    kafka = _kafka(docs)
    namespace, ca = kafka["metadata"]["namespace"], f"{kafka['metadata']['name']}-cluster-ca-cert"
    operators = kafka["spec"]["entityOperator"]
    assert operators["topicOperator"].get("watchedNamespace", namespace) == namespace
    assert operators["userOperator"].get("watchedNamespace", namespace) == namespace
    for kind in ("KafkaTopic", "KafkaUser"):
        assert {d["metadata"]["namespace"] for d in of_kind(docs, kind)} == {namespace}
    mounted = []
    for doc in of_kind(docs, "Deployment") + of_kind(docs, "Job"):
        for volume in docs_volumes(doc):
            if volume["name"] == "kafka-ca":
                assert doc["metadata"]["namespace"] == namespace
                mounted.append(volume["secret"]["secretName"])
    assert mounted
    assert set(mounted) == {ca}
    keda = named(docs, "TriggerAuthentication", "keda-kafka")["spec"]["secretTargetRef"]
    assert {ref["name"] for ref in keda if ref["parameter"] == "ca"} == {ca}


GAME_SERVERS = K8S / "game-servers"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_game_servers_outside_prizeflow_reach_a_listener_of_their_own(overlay: str) -> None:
    """The services' listener admits only Prizeflow's labelled pods and KEDA, so a game server in its own namespace
    was refused at the network while the README sent it there: the `games` listener (9094, TLS and SCRAM like every
    listener) admits the namespaces labelled prizeflow.io/game-servers=true, whose pods authenticate as the KafkaUser
    game-servers (rounds only). deploy/k8s/game-servers is such a namespace: its pods may reach that listener, on the
    brokers, and DNS, nothing else; and the README tells them that bootstrap."""
    docs = rendered(overlay)
    kafka = _kafka(docs)
    listeners = {item["name"]: item for item in kafka["spec"]["kafka"]["listeners"]}
    games, services = listeners["games"], listeners["tls"]
    assert games["port"] != services["port"]
    assert games["type"] == "internal"
    namespace_ = named(H.build(GAME_SERVERS), "Namespace", "prizeflow-game-servers")
    labels = namespace_["metadata"]["labels"] | {"kubernetes.io/metadata.name": "prizeflow-game-servers"}
    admitted = [p for p in games["networkPolicyPeers"] if set(p) == {"namespaceSelector"}]
    assert admitted
    assert all(_matches(p["namespaceSelector"], labels) for p in admitted)
    assert not any(
        "namespaceSelector" in p and _matches(p["namespaceSelector"], labels) for p in services["networkPolicyPeers"]
    )
    assert "game-servers" in {d["metadata"]["name"] for d in of_kind(docs, "KafkaUser")}
    policies = of_kind(H.build(GAME_SERVERS), "NetworkPolicy")
    outbound = [rule for p in policies for rule in p["spec"].get("egress", [])]
    to_kafka = [
        r
        for r in outbound
        if any("namespaceSelector" in peer for peer in r["to"]) and r["ports"][0]["port"] == games["port"]
    ]
    [rule] = to_kafka
    [peer] = rule["to"]
    assert _matches(peer["namespaceSelector"], {"kubernetes.io/metadata.name": kafka["metadata"]["namespace"]})
    assert _matches(
        peer["podSelector"], {"strimzi.io/cluster": kafka["metadata"]["name"], "strimzi.io/broker-role": "true"}
    )
    assert {p["metadata"]["name"] for p in policies} == {"default-deny", "allow-dns", "game-servers-to-kafka"}
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap.{kafka['metadata']['namespace']}.svc:{games['port']}"
    readme = (K8S / "README.md").read_text()
    assert bootstrap in readme


def test_the_game_servers_may_produce_rounds_and_nothing_else() -> None:
    """Write and Describe on prizeflow.game.rounds.v1: no read, no group, no other topic, nothing cluster-wide
    (their idempotent producer needs no IdempotentWrite since Kafka 3.0, KIP-679)."""
    docs = rendered("prod")
    assert _acls(docs, "game-servers") == {("topic", "prizeflow.game.rounds.v1", ("Write", "Describe"))}
    user = named(docs, "KafkaUser", "game-servers")["spec"]
    assert user["authentication"] == {"type": "scram-sha-512"}
    assert [a["resource"]["patternType"] for a in user["authorization"]["acls"]] == ["literal"]
    assert "prizeflow.game.rounds.v1" in k8s.kafka_usage("settlement", ROOT).reads, "the topic settlement consumes"


def test_kafka_is_scraped_and_its_partitions_and_lag_are_alerted() -> None:
    docs = rendered("prod")
    kafka = _kafka(docs)["spec"]
    ref = kafka["kafka"]["metricsConfig"]["valueFrom"]["configMapKeyRef"]
    assert ref["key"] in named(docs, "ConfigMap", ref["name"])["data"]
    assert "kafkaExporter" in kafka
    [monitor] = [m for m in of_kind(docs, "PodMonitor") if m["metadata"]["name"] == "kafka"]
    broker = {"strimzi.io/kind": "Kafka", "strimzi.io/cluster": k8s.KAFKA_CLUSTER, "strimzi.io/broker-role": "true"}
    assert _matches(monitor["spec"]["selector"], broker)
    rules = {
        r["alert"]: r["expr"]
        for g in named(docs, "PrometheusRule", "prizeflow")["spec"]["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    for alert, metric in {
        "PrizeflowKafkaUnderReplicatedPartitions": "kafka_server_replicamanager_underreplicatedpartitions",
        "PrizeflowKafkaUnderMinIsrPartitions": "kafka_server_replicamanager_underminisrpartitioncount",
        "PrizeflowKafkaOfflinePartitions": "kafka_controller_kafkacontroller_offlinepartitionscount",
        "PrizeflowConsumerLagGrowing": "prizeflow_consumer_lag_records",
    }.items():
        assert metric in rules[alert], alert
    # Strimzi's rules name every MBean kafka_<domain>_<type>_<name>, lowercased: the three metrics above.
    rules_config = yaml.safe_load(named(docs, "ConfigMap", ref["name"])["data"][ref["key"]])
    assert rules_config["lowercaseOutputName"] is True
    assert {
        "pattern": "kafka.(\\w+)<type=(.+), name=(.+)><>Value",
        "name": "kafka_$1_$2_$3",
        "type": "GAUGE",
    } in rules_config["rules"]


# --- egress ----------------------------------------------------------------------------------------------------

PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def _reaches_public_https(rule: Doc) -> bool:
    """An egress rule lets a pod open port 443 to a public address: its ports include 443 (or are all ports) and
    its peers include anything beyond the private ranges (no `to`, or an ipBlock wider than them)."""
    ports = rule.get("ports")
    if ports and not any(p.get("port") in (443, "https") or "port" not in p for p in ports):
        return False
    peers = rule.get("to")
    if not peers:
        return True
    for peer in peers:
        block = peer.get("ipBlock")
        if block and not any(ipaddress.ip_network(block["cidr"]).subnet_of(n) for n in PRIVATE):  # type: ignore[arg-type]
            return True
    return False


@pytest.mark.parametrize(
    ("overlay", "rail"), [(o, None) for o in OVERLAYS] + [(o, r) for o in ("dev", "prod") for r in RAILS]
)
def test_nothing_but_the_egress_proxy_reaches_public_addresses(overlay: str, rail: str | None) -> None:
    docs = rendered(overlay) if rail is None else rendered_with(overlay, rail)
    proxy_labels = _pod_labels(docs, "egress-proxy")
    open_ = [
        p["metadata"]["name"]
        for p in of_kind(docs, "NetworkPolicy")
        if any(_reaches_public_https(r) for r in p["spec"].get("egress", []))
    ]
    assert open_ == ["egress-proxy"]
    assert named(docs, "NetworkPolicy", "egress-proxy")["spec"]["podSelector"] == {"matchLabels": proxy_labels}


def _private_reach(docs: tuple[Doc, ...]) -> dict[str, set[str]]:
    """Policy name → the private address ranges (ipBlocks inside 10/8, 172.16/12, 192.168/16) its egress opens."""
    out: dict[str, set[str]] = {}
    for policy in of_kind(docs, "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                block = peer.get("ipBlock")
                if block and any(ipaddress.ip_network(block["cidr"]).subnet_of(n) for n in PRIVATE):  # type: ignore[arg-type]
                    out.setdefault(policy["metadata"]["name"], set()).add(block["cidr"])
    return out


# The pods that need the Kubernetes API, by the labels their operators give them (CloudNativePG 1.30: its instances
# and the Jobs it runs for a cluster; Strimzi 1.2: the brokers, the controllers, the entity operator); and the probe.
API_CLIENTS: dict[str, dict[str, str]] = {
    "a CloudNativePG instance": {"cnpg.io/cluster": "payouts-db", "cnpg.io/podRole": "instance"},
    "a CloudNativePG recovery Job": {"cnpg.io/cluster": "payouts-db-r1", "cnpg.io/jobRole": "full-recovery"},
    "a broker": {"strimzi.io/cluster": "prizeflow", "strimzi.io/kind": "Kafka", "strimzi.io/broker-role": "true"},
    "a controller": {
        "strimzi.io/cluster": "prizeflow",
        "strimzi.io/kind": "Kafka",
        "strimzi.io/controller-role": "true",
    },
    "the entity operator": {
        "strimzi.io/cluster": "prizeflow",
        "strimzi.io/kind": "Kafka",
        "strimzi.io/name": "prizeflow-entity-operator",
    },
}


def _api_egress(docs: tuple[Doc, ...], labels: dict[str, str]) -> set[str]:
    """The ranges these pods may reach on the API server's ports (443 and 6443, both)."""
    reached: set[str] = set()
    for policy in _policies_of(docs, labels):
        for rule in policy["spec"].get("egress", []):
            ports = {p.get("port") for p in rule.get("ports", [])}
            if {443, 6443} <= ports:
                reached |= {p["ipBlock"]["cidr"] for p in rule.get("to", []) if "ipBlock" in p}
    return reached


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_that_needs_the_api_reaches_every_address_of_it_and_the_probe_goes_the_same_way(overlay: str) -> None:
    """A standby takes the primary lease through the API before it promotes; one address of the API server missing
    from its egress is a failover that fails when that address answers. Every pod that needs the API (and the probe
    that alerts when it is unreachable) reaches the same ranges: in prod every range of the site's list, and no other
    private address (the HSM's is the signer's alone); elsewhere the private ranges."""
    docs = rendered(overlay)
    probe = _pod_labels(docs, "kubernetes-api-probe")
    expected = (
        {b["ipBlock"]["cidr"] for b in H.SITE_LISTS["kubernetes-api"]}
        if overlay == "prod"
        else {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
    )
    for who, labels in {**API_CLIENTS, "the API probe": probe}.items():
        assert _api_egress(docs, labels) == expected, who
    if overlay == "prod":
        api = set(expected)
        assert _private_reach(docs) == {
            "postgres-to-kubernetes-api-and-backups": api,
            "kafka-cluster": api,
            "kubernetes-api-probe": api,
            "signer-to-hsm": {H.SITE["hsm-address"]},
        }
        assert len(api) > 1, "a list, one range per control-plane address"


def test_the_public_egress_check_can_fail() -> None:
    """What the check above refuses: the old `providers-egress` (public addresses on 443), a rule without peers on
    443 (everywhere) or without ports; what it lets pass: private ranges (the Kubernetes API), a pod selector."""
    public = {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}
    https = [{"protocol": "TCP", "port": 443}]
    assert _reaches_public_https({"to": [public], "ports": https})
    assert _reaches_public_https({"ports": https})
    assert _reaches_public_https({"to": [public]})
    assert _reaches_public_https({"to": [{"ipBlock": {"cidr": "52.0.0.0/8"}}], "ports": https})
    assert not _reaches_public_https({"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": https})
    assert not _reaches_public_https({"to": [PROXY], "ports": https})
    assert not _reaches_public_https({"to": [public], "ports": [{"protocol": "TCP", "port": 5432}]})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_callers_and_the_backups_go_through_the_proxy_to_allow_listed_hosts(overlay: str) -> None:
    """The services that call out get HTTPS_PROXY (the proxy's services port, in-cluster names direct), reach it
    and nothing else public; the backup sidecar gets its database port and the object store's endpoint is the one
    host of its list. (Every host the services' settings name: tests/deploy/test_k8s_egress.py.)"""
    docs = rendered(overlay)
    service = named(docs, "Service", "egress-proxy")
    namespace = service["metadata"]["namespace"]
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    acls: dict[str, frozenset[str]] = {}
    for part in _allowlist(docs).values():
        for acl, hosts in _acl_hosts(part).items():
            acls[acl] = acls.get(acl, frozenset()) | hosts
    for caller in CALLERS:
        env = _config(docs, _container(named(docs, "Deployment", caller)))
        assert env["HTTPS_PROXY"] == f"http://egress-proxy.{namespace}.svc:{ports['services']}", caller
        assert {".svc", ".cluster.local"} <= set(env["NO_PROXY"].split(",")), caller
        assert "HTTP_PROXY" not in env, "plain http stays in the cluster"
        names = {p["metadata"]["name"] for p in _policies_of(docs, _pod_labels(docs, caller))}
        assert "identity-provider-egress" in names
    for service_ in ("rewards", "payouts", "webhooks"):
        egress = named(docs, "NetworkPolicy", "providers-egress")["spec"]
        assert _matches(egress["podSelector"], _pod_labels(docs, service_))
        assert egress["egress"] == [{"to": [PROXY], "ports": [{"protocol": "TCP", "port": ports["services"]}]}]
    assert "api.stripe.com" in acls["providers"]
    stores = of_kind(docs, "ObjectStore")
    assert stores or overlay != "prod"
    for store in stores:
        sidecar = {e["name"]: e["value"] for e in store["spec"]["instanceSidecarConfiguration"]["env"]}
        assert sidecar["HTTPS_PROXY"] == f"http://egress-proxy.{namespace}.svc:{ports['databases']}"
        assert acls["object_store"] == {urlsplit(store["spec"]["configuration"]["endpointURL"]).hostname}
    squid = named(docs, "ConfigMap", _proxy_volume(docs, "config"))["data"]["squid.conf"]
    assert "http_access allow services_port providers" in squid
    assert "http_access allow databases_port object_store" in squid
    assert squid.count("http_access allow") == 2
    assert "http_access deny all" in squid


def _proxy_volume(docs: tuple[Doc, ...], name: str) -> str:
    [volume] = [v for v in docs_volumes(named(docs, "Deployment", "egress-proxy")) if v["name"] == name]
    return str(volume["configMap"]["name"])


def test_the_proxy_image_is_a_public_one_at_a_fixed_tag() -> None:
    image = _container(named(rendered("prod"), "Deployment", "egress-proxy"))["image"]
    assert re.fullmatch(r"docker\.io/ubuntu/squid:\d+\.\d+-\d\d\.\d\d_\w+|.+@sha256:[0-9a-f]{64}", image), image


# --- on-demand backup -------------------------------------------------------------------------------------------


def test_the_on_demand_backup_example_validates_and_goes_through_the_plugin() -> None:
    """The Backup the README (and an upgrade) takes by hand: without `method: plugin` CNPG would pick the in-tree
    barmanObjectStore, which no cluster configures, and the backup would fail."""
    [backup] = [d for d in yaml.safe_load_all((K8S / "backup" / "on-demand.yaml").read_text()) if d]
    validate(backup)
    assert (backup["spec"]["method"], backup["spec"]["pluginConfiguration"]) == ("plugin", {"name": BARMAN})
    assert backup["spec"]["cluster"]["name"] in _clusters(rendered("prod"))


# --- schemas ---------------------------------------------------------------------------------------------------


def test_the_crd_schemas_are_the_operators_own_and_say_where_they_came_from() -> None:
    """Each converted schema names its repository, tag and file (as the converter's SOURCES list them); the
    hand-written subsets and the versions the operators no longer serve are gone."""
    schemas = K8S / "schemas"
    for source in crd_schemas.SOURCES:
        files = [
            p
            for p in schemas.glob("*.json")
            if f"github.com/{source.repo} {source.tag} {source.path} " in json.loads(p.read_text()).get("$comment", "")
        ]
        assert len(files) == 1, source
    assert not list(schemas.glob("external-secrets.io_v1beta1_*"))
    assert not list(schemas.glob("kafka.strimzi.io_v1beta2_*"))


def test_the_converter_closes_objects_but_not_free_form_ones() -> None:
    source = crd_schemas.Source("example/example", "v1", "crd.yaml", "v1")
    crd = {
        "spec": {
            "group": "example.io",
            "names": {"kind": "Thing"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "description": "dropped",
                                    "required": ["size"],
                                    "properties": {
                                        "size": {"x-kubernetes-int-or-string": True},
                                        "mode": {"type": "string", "enum": ["a", "b"]},
                                        "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                        "either": {
                                            "type": "object",
                                            "properties": {"x": {"type": "string"}},
                                            "oneOf": [{"required": ["x"]}],
                                        },
                                    },
                                }
                            },
                        }
                    },
                }
            ],
        }
    }
    import jsonschema

    schema = crd_schemas.convert(crd, source)
    check = jsonschema.Draft202012Validator(schema)
    good = {"apiVersion": "example.io/v1", "kind": "Thing", "metadata": {"name": "t"}}
    assert check.is_valid(good | {"spec": {"size": "50%", "mode": "a", "config": {"any": 1}, "either": {"x": "1"}}})
    assert check.is_valid(good | {"spec": {"size": 3}})
    for bad in ({"size": 3, "sizeTypo": 1}, {"mode": "a"}, {"size": 3, "mode": "c"}, {"size": 3, "either": {}}):
        assert not check.is_valid(good | {"spec": bad}), bad
    assert not check.is_valid(good | {"apiVersion": "example.io/v2"})
    assert not check.is_valid(good | {"metadata": {"name": "t", "nmespace": "x"}})
    assert "description" not in json.dumps(schema)
    with pytest.raises(ValueError, match="not served"):
        crd["spec"]["versions"][0]["served"] = False  # type: ignore[index]
        crd_schemas.convert(crd, source)


def test_every_deployment_is_named_in_the_tests() -> None:
    """The egress proxy and the Kubernetes API probe are the Deployments beside the services (neither runs a
    service)."""
    assert {d["metadata"]["name"] for d in of_kind(rendered("prod"), "Deployment")} == {
        *DEPLOYMENTS,
        *H.PLATFORM_DEPLOYMENTS,
    }
