"""Kafka's Admin API, as the Topic and User Operators use it: topics (create, grow, configure), SCRAM-SHA-512
credentials and simple ACLs. The stand-in connects on the replication listener with the operator's certificate,
a super user of the cluster (model.OPERATOR_PRINCIPAL)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import admin as _confluent_admin

from prizeflow_strimzi_standin.model import Acl

# confluent-kafka's stubs type its admin classes narrowly (filters without wildcards, one alteration class) and
# leave half of them unexported: the Admin API is used through this one untyped name.
ck: Any = _confluent_admin


_TIMEOUT_S = 30
_RESOURCE = {"TOPIC": ck.ResourceType.TOPIC, "GROUP": ck.ResourceType.GROUP, "CLUSTER": ck.ResourceType.BROKER}
_RESOURCE_BACK = {v: k for k, v in _RESOURCE.items()}
if hasattr(ck.ResourceType, "TRANSACTIONAL_ID"):
    _RESOURCE["TRANSACTIONAL_ID"] = ck.ResourceType.TRANSACTIONAL_ID
    _RESOURCE_BACK[ck.ResourceType.TRANSACTIONAL_ID] = "TRANSACTIONAL_ID"


def _binding(principal: str, acl: Acl) -> Any:
    return ck.AclBinding(
        _RESOURCE[acl.resource_type],
        acl.name,
        ck.ResourcePatternType[acl.pattern],
        principal,
        acl.host,
        ck.AclOperation[acl.operation],
        ck.AclPermissionType[acl.permission],
    )


class KafkaAdmin:
    def __init__(self, bootstrap: str, certs: Path) -> None:
        self.client = ck.AdminClient(
            {
                "bootstrap.servers": bootstrap,
                "security.protocol": "SSL",
                "ssl.ca.location": str(certs / "ca.crt"),
                "ssl.certificate.location": str(certs / "tls.crt"),
                "ssl.key.location": str(certs / "tls.key"),
                "socket.timeout.ms": 10000,
            }
        )
        self._passwords: dict[str, str] = {}  # user → hash of the password this process set

    # ---- topics ------------------------------------------------------------------------------------------------

    def topics(self) -> dict[str, int]:
        """Every topic and its partition count."""
        metadata = self.client.list_topics(timeout=_TIMEOUT_S)
        return {name: len(t.partitions) for name, t in metadata.topics.items()}

    def ensure_topic(
        self, name: str, partitions: int, replicas: int, config: Mapping[str, str], current: int | None
    ) -> str | None:
        """Create the topic, grow its partitions, set its configuration; a message when the spec cannot be met."""
        if current is None:
            futures = self.client.create_topics([ck.NewTopic(name, partitions, replicas, config=dict(config))])
            futures[name].result(_TIMEOUT_S)
            return None
        if partitions > current:
            self.client.create_partitions([ck.NewPartitions(name, partitions)])[name].result(_TIMEOUT_S)
        resource = ck.ConfigResource(ck.ResourceType.TOPIC, name)
        described = self.client.describe_configs([resource])[resource].result(_TIMEOUT_S)
        changes = [
            ck.ConfigEntry(key, value, incremental_operation=ck.AlterConfigOpType.SET)
            for key, value in config.items()
            if key not in described or described[key].value != value
        ]
        if changes:
            target = ck.ConfigResource(ck.ResourceType.TOPIC, name, incremental_configs=changes)
            self.client.incremental_alter_configs([target])[target].result(_TIMEOUT_S)
        if partitions < current:
            return f"the topic has {current} partitions; decreasing them to {partitions} is not supported"
        return None

    # ---- users -------------------------------------------------------------------------------------------------

    def ensure_scram(self, user: str, password: str) -> None:
        digest = hashlib.sha256(password.encode()).hexdigest()
        if self._passwords.get(user) == digest:
            return
        info = ck.ScramCredentialInfo(ck.ScramMechanism.SCRAM_SHA_512, 4096)
        upsert = ck.UserScramCredentialUpsertion(user, info, password.encode())
        self.client.alter_user_scram_credentials([upsert])[user].result(_TIMEOUT_S)
        self._passwords[user] = digest

    def _current_acls(self, principal: str | None) -> dict[Acl, Any]:
        wanted = ck.AclBindingFilter(
            ck.ResourceType.ANY,
            None,
            ck.ResourcePatternType.ANY,
            principal,
            None,
            ck.AclOperation.ANY,
            ck.AclPermissionType.ANY,
        )
        found = self.client.describe_acls(wanted).result(_TIMEOUT_S)
        out: dict[Acl, Any] = {}
        for binding in found:
            kind = _RESOURCE_BACK.get(binding.restype)
            if kind is None:
                continue
            pattern, operation, permission = (
                binding.resource_pattern_type.name,
                binding.operation.name,
                binding.permission_type.name,
            )
            acl = Acl(kind, binding.name, pattern, operation, binding.host, permission)
            out[acl] = binding
        return out

    def ensure_acls(self, principal: str, wanted: set[Acl]) -> None:
        current = self._current_acls(principal)
        missing = [_binding(principal, a) for a in sorted(wanted - set(current))]
        if missing:
            for future in self.client.create_acls(missing).values():
                future.result(_TIMEOUT_S)
        extra = [current[a] for a in current if a not in wanted]
        self._delete(extra)

    def _delete(self, bindings: list[Any]) -> None:
        if not bindings:
            return
        filters = [
            ck.AclBindingFilter(
                b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type
            )
            for b in bindings
        ]
        for future in self.client.delete_acls(filters).values():
            future.result(_TIMEOUT_S)

    def forget_users_except(self, users: set[str]) -> None:
        """A KafkaUser that is gone loses its credentials and its ACLs (what the User Operator does on deletion)."""
        described = self.client.describe_user_scram_credentials().result(_TIMEOUT_S)
        for user, description in described.items():
            if user in users:
                continue
            deletions = [
                ck.UserScramCredentialDeletion(user, info.mechanism) for info in description.scram_credential_infos
            ]
            if deletions:
                for future in self.client.alter_user_scram_credentials(deletions).values():
                    future.result(_TIMEOUT_S)
            self._passwords.pop(user, None)
        stale = [
            b
            for a, b in self._current_acls(None).items()
            if b.principal.startswith("User:") and b.principal[5:] not in users and "CN=" not in b.principal
        ]
        self._delete(stale)


__all__ = ["KafkaAdmin"]
