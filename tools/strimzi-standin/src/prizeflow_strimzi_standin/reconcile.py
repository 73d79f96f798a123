"""The stand-in's control loop: every few seconds, each `Kafka` of the watched namespace is brought to what its spec
and node pools say (CA, certificates, Services, NetworkPolicy, one pod and volume per node, rolled one at a time when
its configuration changes), then, once every node is ready, its KafkaTopics and KafkaUsers are made true in Kafka
through the Admin API (as the Topic and User Operators do), and each object's status says so."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from prizeflow_strimzi_standin import model
from prizeflow_strimzi_standin.admin import KafkaAdmin
from prizeflow_strimzi_standin.pki import KeyPair, dns_names_of, issue, new_ca, signed_by

log = logging.getLogger("strimzi-standin")
GROUP, VERSION = "kafka.strimzi.io", "v1"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(data: str) -> bytes:
    return base64.b64decode(data)


class Reconciler:
    def __init__(self, namespace: str, operator_namespace: str, images: Mapping[str, str]) -> None:
        self.ns = namespace
        self.operator_ns = operator_namespace
        self.images = dict(images)  # Kafka version → image
        # The generated client's models are typed; the stand-in speaks plain dicts to it, so its APIs are `Any` here.
        self.core: Any = client.CoreV1Api()
        self.net: Any = client.NetworkingV1Api()
        self.custom: Any = client.CustomObjectsApi()
        self._admins: dict[str, KafkaAdmin] = {}
        self._workdir = Path(tempfile.mkdtemp(prefix="standin-"))

    # ---- small API helpers -----------------------------------------------------------------------------------

    def _list(self, plural: str) -> list[dict[str, Any]]:
        return list(self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, plural)["items"])

    def _status(self, plural: str, obj: Mapping[str, Any], status: dict[str, Any]) -> None:
        status["observedGeneration"] = obj["metadata"].get("generation", 1)
        old = obj.get("status") or {}
        previous = {c["type"]: c for c in old.get("conditions", [])}
        for cond in status.get("conditions", []):
            before = previous.get(cond["type"])
            if before and before.get("status") == cond["status"]:
                cond["lastTransitionTime"] = before.get("lastTransitionTime", cond["lastTransitionTime"])
        if dict(old) == status:
            return
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.ns, plural, obj["metadata"]["name"], {"status": status}
        )

    def _secret(self, name: str) -> dict[str, bytes] | None:
        try:
            found = self.core.read_namespaced_secret(name, self.ns)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return {k: _unb64(v) for k, v in (found.data or {}).items()}

    def _put(self, kind: str, body: dict[str, Any]) -> None:
        """Create, or replace what differs (a merge patch of the whole body)."""
        name = body["metadata"]["name"]
        create, patch = {
            "Secret": (self.core.create_namespaced_secret, self.core.patch_namespaced_secret),
            "Service": (self.core.create_namespaced_service, self.core.patch_namespaced_service),
            "ConfigMap": (self.core.create_namespaced_config_map, self.core.patch_namespaced_config_map),
            "NetworkPolicy": (self.net.create_namespaced_network_policy, self.net.patch_namespaced_network_policy),
        }[kind]
        try:
            create(self.ns, body)
        except ApiException as err:
            if err.status != 409:
                raise
            patch(name, self.ns, body)

    @staticmethod
    def _owner(kafka: Mapping[str, Any]) -> list[dict[str, Any]]:
        meta = kafka["metadata"]
        return [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Kafka",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
            }
        ]

    # ---- the cluster ------------------------------------------------------------------------------------------

    def _ca(self, kafka: Mapping[str, Any]) -> KeyPair:
        cluster = kafka["metadata"]["name"]
        cert, key = self._secret(f"{cluster}-cluster-ca-cert"), self._secret(f"{cluster}-cluster-ca")
        if cert and key and "ca.crt" in cert and "ca.key" in key:
            return KeyPair(cert["ca.crt"], key["ca.key"])
        ca = new_ca(cluster)
        labels = {"strimzi.io/cluster": cluster, "strimzi.io/kind": "Kafka"}
        for name, data in (
            (f"{cluster}-cluster-ca-cert", {"ca.crt": ca.cert}),
            (f"{cluster}-cluster-ca", {"ca.key": ca.key}),
        ):
            self._put(
                "Secret",
                {
                    "metadata": {"name": name, "labels": labels, "ownerReferences": self._owner(kafka)},
                    "data": {k: _b64(v) for k, v in data.items()},
                },
            )
        return ca

    def _node_certs(self, kafka: Mapping[str, Any], ca: KeyPair, nodes: list[model.Node]) -> None:
        cluster = kafka["metadata"]["name"]
        name = f"{cluster}-kafka-brokers"
        have = self._secret(name) or {}
        data: dict[str, bytes] = {"ca.crt": ca.cert}
        for node in nodes:
            pod = node.pod(cluster)
            sans = model.node_sans(cluster, self.ns, node)
            current = have.get(f"{pod}.crt")
            if current and set(sans) == dns_names_of(current) and signed_by(current, ca.cert) and f"{pod}.key" in have:
                pair = KeyPair(current, have[f"{pod}.key"])
            else:
                pair = issue(ca, f"{cluster}-kafka", "io.strimzi", sans)
            data.update({f"{pod}.crt": pair.cert, f"{pod}.key": pair.key, f"{pod}.pem": pair.pem})
        if data != have:
            self._put(
                "Secret",
                {
                    "metadata": {
                        "name": name,
                        "labels": {"strimzi.io/cluster": cluster},
                        "ownerReferences": self._owner(kafka),
                    },
                    "data": {k: _b64(v) for k, v in data.items()},
                },
            )
        operator = self._secret(f"{cluster}-cluster-operator-certs") or {}
        if not (operator.get("tls.crt") and signed_by(operator["tls.crt"], ca.cert)):
            pair = issue(ca, "cluster-operator", "io.strimzi")
            self._put(
                "Secret",
                {
                    "metadata": {"name": f"{cluster}-cluster-operator-certs", "ownerReferences": self._owner(kafka)},
                    "data": {"tls.crt": _b64(pair.cert), "tls.key": _b64(pair.key), "ca.crt": _b64(ca.cert)},
                },
            )

    def _services(self, kafka: Mapping[str, Any]) -> None:
        cluster = kafka["metadata"]["name"]
        listeners = model.listeners(kafka)
        ports = [{"name": "tcp-replication", "port": model.REPLICATION_PORT, "targetPort": model.REPLICATION_PORT}]
        ports += [{"name": f"tcp-{item.name}", "port": item.port, "targetPort": item.port} for item in listeners]
        labels = {"strimzi.io/cluster": cluster, "strimzi.io/kind": "Kafka", "strimzi.io/name": f"{cluster}-kafka"}
        self._put(
            "Service",
            {
                "metadata": {
                    "name": model.bootstrap_service(cluster),
                    "labels": labels,
                    "ownerReferences": self._owner(kafka),
                },
                "spec": {"selector": {**labels, "strimzi.io/broker-role": "true"}, "ports": ports},
            },
        )
        headless = [
            {"name": "tcp-ctrlplane", "port": model.CONTROL_PLANE_PORT, "targetPort": model.CONTROL_PLANE_PORT},
            *ports,
        ]
        self._put(
            "Service",
            {
                "metadata": {
                    "name": model.brokers_service(cluster),
                    "labels": labels,
                    "ownerReferences": self._owner(kafka),
                },
                "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": labels, "ports": headless},
            },
        )

    @staticmethod
    def _cluster_id(kafka: Mapping[str, Any]) -> str:
        """The KRaft cluster id, from the Kafka object's uid: the same on every pass, new for a new cluster."""
        import uuid

        encoded = base64.urlsafe_b64encode(uuid.UUID(kafka["metadata"]["uid"]).bytes).decode().rstrip("=")
        return "A" + encoded[1:] if encoded.startswith("-") else encoded  # the storage tool reads "-..." as an option

    def _pod(
        self, kafka: Mapping[str, Any], pool: Mapping[str, Any], node: model.Node, props: str, cluster_id: str
    ) -> dict[str, Any]:
        cluster = kafka["metadata"]["name"]
        pod_name = node.pod(cluster)
        version = str(kafka["spec"]["kafka"].get("version", ""))
        if version not in self.images:
            raise ValueError(f"Kafka {version} is not supported (images for: {', '.join(sorted(self.images))})")
        template = ((pool["spec"].get("template") or {}).get("pod")) or {}
        resources = pool["spec"].get("resources") or {}
        memory = (resources.get("limits") or {}).get("memory") or (resources.get("requests") or {}).get("memory")
        heap = "-Xms256m -Xmx512m" if not memory else f"-Xms256m -Xmx{_heap(memory)}"
        probe_port = model.REPLICATION_PORT if node.broker else model.CONTROL_PLANE_PORT
        script = (
            "set -e\n"
            "cp /opt/kafka/custom-config/server.properties /tmp/server.properties\n"
            f"/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id {cluster_id} "
            "--config /tmp/server.properties\n"
            "exec /opt/kafka/bin/kafka-server-start.sh /tmp/server.properties\n"
        )
        spec: dict[str, Any] = {
            "hostname": pod_name,
            "subdomain": model.brokers_service(cluster),
            "securityContext": {
                "fsGroup": 1001,
                "runAsUser": 1001,
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "terminationGracePeriodSeconds": 60,
            "containers": [
                {
                    "name": "kafka",
                    "image": self.images[version],
                    "command": ["/bin/bash", "-c", script],
                    "env": [{"name": "KAFKA_HEAP_OPTS", "value": heap}],
                    "ports": [
                        {"name": "tcp-ctrlplane", "containerPort": model.CONTROL_PLANE_PORT},
                        {"name": "tcp-replication", "containerPort": model.REPLICATION_PORT},
                        *[{"name": f"tcp-{item.name}", "containerPort": item.port} for item in model.listeners(kafka)],
                    ],
                    "readinessProbe": {"tcpSocket": {"port": probe_port}, "periodSeconds": 5, "initialDelaySeconds": 5},
                    "resources": resources,
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [
                        {"name": "data-0", "mountPath": "/var/lib/kafka/data-0"},
                        {"name": "certs", "mountPath": "/opt/kafka/certs", "readOnly": True},
                        {"name": "config", "mountPath": "/opt/kafka/custom-config", "readOnly": True},
                        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own emptyDir
                    ],
                }
            ],
            "volumes": [
                {"name": "data-0", "persistentVolumeClaim": {"claimName": f"data-0-{pod_name}"}},
                {
                    "name": "certs",
                    "secret": {
                        "secretName": f"{cluster}-kafka-brokers",
                        "items": [
                            {"key": "ca.crt", "path": "ca.crt"},
                            {"key": f"{pod_name}.pem", "path": f"{pod_name}.pem"},
                        ],
                    },
                },
                {"name": "config", "configMap": {"name": pod_name}},
                {"name": "tmp", "emptyDir": {}},
            ],
        }
        for key in ("affinity", "tolerations", "topologySpreadConstraints", "priorityClassName"):
            if key in template:
                spec[key] = template[key]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "labels": model.pod_labels(cluster, node),
                "annotations": {
                    "standin.prizeflow.io/revision": model.config_hash(props, self.images[version], str(resources))
                },
                "ownerReferences": self._owner(kafka),
            },
            "spec": spec,
        }

    def _volume(self, kafka: Mapping[str, Any], pool: Mapping[str, Any], node: model.Node) -> None:
        cluster = kafka["metadata"]["name"]
        volumes = pool["spec"]["storage"].get("volumes") or [pool["spec"]["storage"]]
        size = volumes[0].get("size", "1Gi")
        claim = f"data-0-{node.pod(cluster)}"
        try:
            self.core.read_namespaced_persistent_volume_claim(claim, self.ns)
        except ApiException as err:
            if err.status != 404:
                raise
            self.core.create_namespaced_persistent_volume_claim(
                self.ns,
                {
                    "metadata": {"name": claim, "labels": model.pod_labels(cluster, node)},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
                },
            )

    def _pod_ready(self, name: str) -> bool | None:
        """True: ready; False: exists, not ready; None: absent."""
        try:
            pod = self.core.read_namespaced_pod(name, self.ns)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        if pod.metadata.deletion_timestamp:
            return False
        return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))

    def reconcile_kafka(self, kafka: dict[str, Any]) -> bool:
        """Bring one cluster's objects and pods to its spec; True once every node is ready."""
        cluster = kafka["metadata"]["name"]
        pools = [
            p
            for p in self._list("kafkanodepools")
            if (p["metadata"].get("labels") or {}).get("strimzi.io/cluster") == cluster
        ]
        nodes = model.nodes(pools)
        by_pool = {p["metadata"]["name"]: p for p in pools}
        ca = self._ca(kafka)
        self._node_certs(kafka, ca, nodes)
        self._services(kafka)
        self._put("NetworkPolicy", model.network_policy(cluster, self.ns, kafka, self.operator_ns))
        cluster_id = self._cluster_id(kafka)
        ready = bool(nodes)
        rolled = False
        for node in nodes:
            props = model.server_properties(cluster, self.ns, node, nodes, kafka)
            pod_name = node.pod(cluster)
            self._put(
                "ConfigMap",
                {
                    "metadata": {"name": pod_name, "ownerReferences": self._owner(kafka)},
                    "data": {"server.properties": props},
                },
            )
            self._volume(kafka, by_pool[node.pool], node)
            desired = self._pod(kafka, by_pool[node.pool], node, props, cluster_id)
            state = self._pod_ready(pod_name)
            if state is None:
                self.core.create_namespaced_pod(self.ns, desired)
                ready = False
                continue
            current = self.core.read_namespaced_pod(pod_name, self.ns)
            revision = (current.metadata.annotations or {}).get("standin.prizeflow.io/revision")
            if revision != desired["metadata"]["annotations"]["standin.prizeflow.io/revision"] and not rolled:
                log.info("rolling %s: its configuration changed", pod_name)
                self.core.delete_namespaced_pod(pod_name, self.ns)
                rolled, ready = True, False  # one pod at a time, as Strimzi rolls
                continue
            ready = ready and bool(state)
        status: dict[str, Any] = {
            "conditions": [model.condition("True" if ready else "False", "" if ready else "NodesNotReady", now=_now())],
            "clusterId": cluster_id,
            "kafkaVersion": kafka["spec"]["kafka"].get("version"),
            "kafkaMetadataVersion": kafka["spec"]["kafka"].get("metadataVersion"),
            "kafkaNodePools": [{"name": n} for n in sorted(by_pool)],
            "listeners": [
                {
                    "name": item.name,
                    "bootstrapServers": f"{model.bootstrap_service(cluster)}.{self.ns}.svc:{item.port}",
                    "certificates": [ca.cert.decode()],
                }
                for item in model.listeners(kafka)
            ],
            "operatorLastSuccessfulVersion": "standin",
        }
        self._status("kafkas", kafka, status)
        for name, pool in by_pool.items():
            ids = [n.node_id for n in nodes if n.pool == name]
            pool_status = {
                "nodeIds": ids,
                "clusterId": cluster_id,
                "roles": pool["spec"]["roles"],
                "replicas": len(ids),
            }
            self._status("kafkanodepools", pool, pool_status)
        return ready

    # ---- topics and users -------------------------------------------------------------------------------------

    def _admin(self, cluster: str) -> KafkaAdmin:
        if cluster not in self._admins:
            certs = self._secret(f"{cluster}-cluster-operator-certs")
            if not certs:
                raise RuntimeError("the operator's certificate is not written yet")
            folder = self._workdir / cluster
            folder.mkdir(exist_ok=True)
            for name, data in certs.items():
                (folder / name).write_bytes(data)
            bootstrap = f"{model.bootstrap_service(cluster)}.{self.ns}.svc:{model.REPLICATION_PORT}"
            self._admins[cluster] = KafkaAdmin(bootstrap, folder)
        return self._admins[cluster]

    def reconcile_topics(self, cluster: str) -> None:
        admin = self._admin(cluster)
        existing = admin.topics()
        for topic in self._list("kafkatopics"):
            if (topic["metadata"].get("labels") or {}).get("strimzi.io/cluster") != cluster:
                continue
            name = model.topic_name(topic)
            try:
                message = admin.ensure_topic(
                    name,
                    int(topic["spec"].get("partitions", 1)),
                    int(topic["spec"].get("replicas", 1)),
                    model.topic_config(topic),
                    existing.get(name),
                )
                ok, reason = message is None, "" if message is None else "NotSupported"
            except Exception as err:  # noqa: BLE001 - the object's status says what failed, the loop goes on
                ok, reason, message = False, type(err).__name__, str(err)
            cond = model.condition("True" if ok else "False", reason, message or "", now=_now())
            self._status("kafkatopics", topic, {"conditions": [cond], "topicName": name})

    def reconcile_users(self, cluster: str) -> None:
        admin = self._admin(cluster)
        wanted: dict[str, set[model.Acl]] = {}
        for user in self._list("kafkausers"):
            if (user["metadata"].get("labels") or {}).get("strimzi.io/cluster") != cluster:
                continue
            name = user["metadata"]["name"]
            try:
                wanted[name] = model.acls(user)
                password = self._user_secret(user)
                admin.ensure_scram(name, password)
                admin.ensure_acls(f"User:{name}", wanted[name])
                cond = model.condition("True", now=_now())
            except Exception as err:  # noqa: BLE001 - reported on the object, the loop goes on
                log.warning("KafkaUser %s: %s", name, err)
                cond = model.condition("False", type(err).__name__, str(err), now=_now())
            self._status("kafkausers", user, {"conditions": [cond], "username": name, "secret": name})
        admin.forget_users_except(set(wanted))

    def _user_secret(self, user: Mapping[str, Any]) -> str:
        name = user["metadata"]["name"]
        authentication = user["spec"].get("authentication") or {}
        if authentication.get("type") != "scram-sha-512":
            raise ValueError(f"authentication {authentication.get('type')} is not supported by the stand-in")
        current = self._secret(name)
        if current and "password" in current:
            password = current["password"].decode()
        else:
            import secrets

            password = secrets.token_urlsafe(24)
        meta = user["metadata"]
        owner = [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "KafkaUser",
                "name": name,
                "uid": meta["uid"],
                "controller": True,
            }
        ]
        body = {
            "metadata": {
                "name": name,
                "labels": {"strimzi.io/cluster": meta["labels"]["strimzi.io/cluster"], "strimzi.io/kind": "KafkaUser"},
                "ownerReferences": owner,
            },
            "data": {
                "password": _b64(password.encode()),
                "sasl.jaas.config": _b64(model.jaas(name, password).encode()),
            },
        }
        if current is None or current.get("sasl.jaas.config") != model.jaas(name, password).encode():
            self._put("Secret", body)
        return password

    def run_once(self) -> None:
        for kafka in self._list("kafkas"):
            cluster = kafka["metadata"]["name"]
            try:
                if self.reconcile_kafka(kafka):
                    self.reconcile_topics(cluster)
                    self.reconcile_users(cluster)
            except Exception:
                log.exception("reconciling Kafka %s", cluster)
                self._admins.pop(cluster, None)

    def run(self, every_s: float) -> None:
        while True:
            started = time.monotonic()
            self.run_once()
            time.sleep(max(0.5, every_s - (time.monotonic() - started)))


def _heap(memory: str) -> str:
    """Half the container's memory for the JVM heap, as Strimzi sizes it by default."""
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "M": 1, "G": 1000}
    for suffix, factor in units.items():
        if memory.endswith(suffix):
            return f"{int(float(memory[: -len(suffix)]) * factor / 2)}m"
    return f"{int(int(memory) / 1024 / 1024 / 2)}m"


__all__ = ["Reconciler"]
