"""What Strimzi makes of a `Kafka`, its `KafkaNodePool`s, `KafkaTopic`s and `KafkaUser`s, as plain data (no I/O).

Strimzi's conventions the bundle and its runbooks rely on are kept: pods `<cluster>-<pool>-<id>` (node ids from the
pool's `strimzi.io/next-node-ids` range), the Services `<cluster>-kafka-bootstrap` and `<cluster>-kafka-brokers`,
the cluster CA Secret `<cluster>-cluster-ca-cert` (key `ca.crt`), one Secret per SCRAM user named after it (keys
`password` and `sasl.jaas.config`), Strimzi's pod labels (`strimzi.io/cluster`, `strimzi.io/kind`,
`strimzi.io/pool-name`, `strimzi.io/broker-role`, ...), listener names `<NAME>-<port>`, the internal control-plane
(9090) and replication (9091) listeners on mutual TLS, `StandardAuthorizer` with the cluster's own identities as
super users, and the NetworkPolicy Strimzi writes from each listener's `networkPolicyPeers`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OPERATOR_PRINCIPAL = "CN=cluster-operator,O=io.strimzi"
CONTROL_PLANE_PORT = 9090
REPLICATION_PORT = 9091
FINAL_CONDITION = "Ready"

# Options Strimzi manages itself and refuses in `spec.kafka.config` (its KafkaConfiguration's forbidden prefixes).
_FORBIDDEN = re.compile(
    r"^(listeners|advertised\.|broker\.|listener\.|host\.name|port|inter\.broker\.listener\.name|sasl\.|ssl\.|"
    r"security\.|password\.|log\.dir|zookeeper\.|authorizer\.|super\.user|cruise\.control\.metrics|node\.id|"
    r"process\.roles|controller\.|metadata\.log\.dir|principal\.builder\.class)"
)
_RANGE = re.compile(r"\[(\d+)(?:-(\d+))?\]")


@dataclass(frozen=True)
class Listener:
    name: str
    port: int
    tls: bool
    scram: bool
    peers: tuple[Mapping[str, Any], ...]

    @property
    def key(self) -> str:
        """Strimzi's name for it in the broker's configuration: `TLS-9093`."""
        return f"{self.name.upper()}-{self.port}"


@dataclass(frozen=True)
class Node:
    pool: str
    node_id: int
    broker: bool
    controller: bool

    def pod(self, cluster: str) -> str:
        return f"{cluster}-{self.pool}-{self.node_id}"


def listeners(kafka: Mapping[str, Any]) -> list[Listener]:
    out = []
    for item in kafka["spec"]["kafka"]["listeners"]:
        auth = (item.get("authentication") or {}).get("type")
        if auth not in (None, "scram-sha-512"):
            raise ValueError(f"listener {item['name']}: authentication {auth} is not supported by the stand-in")
        out.append(
            Listener(
                item["name"],
                int(item["port"]),
                bool(item.get("tls")),
                auth == "scram-sha-512",
                tuple(item.get("networkPolicyPeers") or ()),
            )
        )
    return out


def node_ids(pool: Mapping[str, Any]) -> list[int]:
    """The pool's ids: `replicas` of them from its `strimzi.io/next-node-ids` range (Strimzi's default: from 0)."""
    replicas = int(pool["spec"]["replicas"])
    annotation = (pool["metadata"].get("annotations") or {}).get("strimzi.io/next-node-ids", "[0]")
    match = _RANGE.search(annotation)
    start = int(match.group(1)) if match else 0
    return list(range(start, start + replicas))


def nodes(pools: Iterable[Mapping[str, Any]]) -> list[Node]:
    out = []
    for pool in sorted(pools, key=lambda p: p["metadata"]["name"]):
        roles = set(pool["spec"]["roles"])
        out += [Node(pool["metadata"]["name"], i, "broker" in roles, "controller" in roles) for i in node_ids(pool)]
    ids = [n.node_id for n in out]
    if len(ids) != len(set(ids)):
        raise ValueError(f"node pools give node ids twice: {sorted(ids)}")
    return out


def brokers_service(cluster: str) -> str:
    return f"{cluster}-kafka-brokers"


def bootstrap_service(cluster: str) -> str:
    return f"{cluster}-kafka-bootstrap"


def node_host(cluster: str, namespace: str, node: Node) -> str:
    return f"{node.pod(cluster)}.{brokers_service(cluster)}.{namespace}.svc"


def node_sans(cluster: str, namespace: str, node: Node) -> list[str]:
    """The names a node's certificate holds: its own and the bootstrap Service's, short and qualified."""
    names = [
        node.pod(cluster),
        node_host(cluster, namespace, node),
        f"{node_host(cluster, namespace, node)}.cluster.local",
    ]
    for service in (bootstrap_service(cluster), brokers_service(cluster)):
        names += [
            service,
            f"{service}.{namespace}",
            f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.cluster.local",
        ]
    return names


def _value(raw: object) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def server_properties(
    cluster: str, namespace: str, node: Node, all_nodes: Sequence[Node], kafka: Mapping[str, Any]
) -> str:
    """The node's server.properties: Strimzi's managed options, then the user's `spec.kafka.config` (filtered)."""
    spec = kafka["spec"]["kafka"]
    lst = listeners(kafka)
    controllers = [n for n in all_nodes if n.controller]
    voters = ",".join(f"{n.node_id}@{node_host(cluster, namespace, n)}:{CONTROL_PLANE_PORT}" for n in controllers)
    roles = ",".join(r for r, on in (("broker", node.broker), ("controller", node.controller)) if on)
    cert = f"/opt/kafka/certs/{node.pod(cluster)}.pem"
    props: dict[str, str] = {
        "node.id": str(node.node_id),
        "process.roles": roles,
        "controller.quorum.voters": voters,
        "controller.listener.names": f"CONTROLPLANE-{CONTROL_PLANE_PORT}",
        "metadata.log.dir": "/var/lib/kafka/data-0/kafka-log",
        "log.dirs": "/var/lib/kafka/data-0/kafka-log",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:CN={cluster}-kafka,O=io.strimzi;User:{OPERATOR_PRINCIPAL}",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": cert,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": "/opt/kafka/certs/ca.crt",
        "ssl.endpoint.identification.algorithm": "HTTPS",
    }
    # A controller listens on the control plane; a broker only names it (to reach the controllers).
    listener_names = [f"CONTROLPLANE-{CONTROL_PLANE_PORT}"] if node.controller else []
    protocol_map = [f"CONTROLPLANE-{CONTROL_PLANE_PORT}:SSL"]
    props[f"listener.name.controlplane-{CONTROL_PLANE_PORT}.ssl.client.auth"] = "required"
    if node.broker:
        host = node_host(cluster, namespace, node)
        listener_names.append(f"REPLICATION-{REPLICATION_PORT}")
        protocol_map.append(f"REPLICATION-{REPLICATION_PORT}:SSL")
        props[f"listener.name.replication-{REPLICATION_PORT}.ssl.client.auth"] = "required"
        props["inter.broker.listener.name"] = f"REPLICATION-{REPLICATION_PORT}"
        advertised = [f"REPLICATION-{REPLICATION_PORT}://{host}:{REPLICATION_PORT}"]
        for item in lst:
            listener_names.append(item.key)
            protocol = (
                ("SASL_SSL" if item.tls else "SASL_PLAINTEXT") if item.scram else ("SSL" if item.tls else "PLAINTEXT")
            )
            protocol_map.append(f"{item.key}:{protocol}")
            advertised.append(f"{item.key}://{host}:{item.port}")
            if item.scram:
                prefix = f"listener.name.{item.key.lower()}"
                props[f"{prefix}.sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
                props[f"{prefix}.scram-sha-512.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
        props["advertised.listeners"] = ",".join(advertised)
    props["listeners"] = ",".join(f"{name}://0.0.0.0:{name.rsplit('-', 1)[1]}" for name in listener_names)
    props["listener.security.protocol.map"] = ",".join(protocol_map)
    for key, raw in sorted((spec.get("config") or {}).items()):
        if not _FORBIDDEN.match(key):
            props[key] = _value(raw)
    return "".join(f"{k}={val}\n" for k, val in props.items())


def config_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def pod_labels(cluster: str, node: Node) -> dict[str, str]:
    return {
        "strimzi.io/cluster": cluster,
        "strimzi.io/kind": "Kafka",
        "strimzi.io/name": f"{cluster}-kafka",
        "strimzi.io/component-type": "kafka",
        "strimzi.io/pool-name": node.pool,
        "strimzi.io/broker-role": _value(node.broker),
        "strimzi.io/controller-role": _value(node.controller),
        "strimzi.io/pod-name": node.pod(cluster),
        "app.kubernetes.io/name": "kafka",
        "app.kubernetes.io/instance": cluster,
        "app.kubernetes.io/part-of": f"strimzi-{cluster}",
        "app.kubernetes.io/managed-by": "strimzi-cluster-operator",
    }


def network_policy(cluster: str, namespace: str, kafka: Mapping[str, Any], operator_namespace: str) -> dict[str, Any]:
    """`<cluster>-network-policy-kafka`, as Strimzi writes it: the control plane and replication listeners for the
    cluster's own pods and the operator; each listener for its `networkPolicyPeers` (anyone when it names none)."""
    own = {"podSelector": {"matchLabels": {"strimzi.io/cluster": cluster, "strimzi.io/kind": "Kafka"}}}
    operator = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": operator_namespace}},
        "podSelector": {"matchLabels": {"strimzi.io/kind": "cluster-operator"}},
    }
    ingress: list[dict[str, Any]] = [
        {"ports": [{"port": CONTROL_PLANE_PORT, "protocol": "TCP"}], "from": [own, operator]},
        {"ports": [{"port": REPLICATION_PORT, "protocol": "TCP"}], "from": [own, operator]},
    ]
    for item in listeners(kafka):
        rule: dict[str, Any] = {"ports": [{"port": item.port, "protocol": "TCP"}]}
        if item.peers:
            rule["from"] = [dict(peer) for peer in item.peers]
        ingress.append(rule)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"{cluster}-network-policy-kafka",
            "namespace": namespace,
            "labels": {"strimzi.io/cluster": cluster},
        },
        "spec": {
            "podSelector": {"matchLabels": {"strimzi.io/cluster": cluster, "strimzi.io/name": f"{cluster}-kafka"}},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def jaas(user: str, password: str) -> str:
    return f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" password="{password}";'


@dataclass(frozen=True, order=True)
class Acl:
    """One simple ACL as Kafka stores it: (resource type, name, pattern, operation, host, permission)."""

    resource_type: str  # TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID
    name: str
    pattern: str  # LITERAL, PREFIXED
    operation: str  # READ, WRITE, DESCRIBE, ... (Kafka's AclOperation names)
    host: str
    permission: str  # ALLOW, DENY


_OPERATIONS = {
    "Read": "READ",
    "Write": "WRITE",
    "Create": "CREATE",
    "Delete": "DELETE",
    "Alter": "ALTER",
    "Describe": "DESCRIBE",
    "ClusterAction": "CLUSTER_ACTION",
    "AlterConfigs": "ALTER_CONFIGS",
    "DescribeConfigs": "DESCRIBE_CONFIGS",
    "IdempotentWrite": "IDEMPOTENT_WRITE",
    "All": "ALL",
}


def acls(user: Mapping[str, Any]) -> set[Acl]:
    """A KafkaUser's `spec.authorization.acls` as the ACLs Strimzi's User Operator creates for `User:<name>`."""
    authorization = user["spec"].get("authorization") or {}
    if not authorization:
        return set()
    if authorization.get("type") != "simple":
        raise ValueError(f"authorization {authorization.get('type')} is not supported by the stand-in")
    out = set()
    for rule in authorization.get("acls", []):
        resource = rule["resource"]
        kind = {"topic": "TOPIC", "group": "GROUP", "cluster": "CLUSTER", "transactionalId": "TRANSACTIONAL_ID"}[
            resource["type"]
        ]
        name = "kafka-cluster" if kind == "CLUSTER" else resource["name"]
        pattern = "PREFIXED" if resource.get("patternType") == "prefix" else "LITERAL"
        permission = "DENY" if rule.get("type") == "deny" else "ALLOW"
        for operation in rule.get("operations") or [rule["operation"]]:
            out.add(Acl(kind, name, pattern, _OPERATIONS[operation], rule.get("host", "*"), permission))
    return out


def topic_name(topic: Mapping[str, Any]) -> str:
    return str(topic["spec"].get("topicName") or topic["metadata"]["name"])


def topic_config(topic: Mapping[str, Any]) -> dict[str, str]:
    return {k: _value(val) for k, val in (topic["spec"].get("config") or {}).items()}


def condition(status: str, reason: str = "", message: str = "", *, now: str) -> dict[str, str]:
    doc = {"type": FINAL_CONDITION, "status": status, "lastTransitionTime": now}
    if reason:
        doc["reason"] = reason
    if message:
        doc["message"] = message
    return doc


__all__ = [
    "CONTROL_PLANE_PORT",
    "OPERATOR_PRINCIPAL",
    "REPLICATION_PORT",
    "Acl",
    "Listener",
    "Node",
    "acls",
    "bootstrap_service",
    "brokers_service",
    "condition",
    "config_hash",
    "jaas",
    "listeners",
    "network_policy",
    "node_host",
    "node_ids",
    "node_sans",
    "nodes",
    "pod_labels",
    "server_properties",
    "topic_config",
    "topic_name",
]
