"""docker_infra's decisions that need no engine: podman detection, the broker settings it starts Kafka with, and when
the devstack uses it at all (tests/containers/test_compose_docker.py checks the last with an engine answering)."""

from __future__ import annotations

import pytest

from prizeflow_devstack import docker_infra, infra

# `GET /version` as podman 4.3.1 (this machine) and Docker Engine answer it (trimmed).
PODMAN_4_3 = {
    "Platform": {"Name": "linux/amd64/debian-12"},
    "Components": [{"Name": "Podman Engine", "Version": "4.3.1"}, {"Name": "Conmon"}],
}
DOCKER = {"Platform": {"Name": "Docker Engine - Community"}, "Components": [{"Name": "Engine"}]}


def test_podman_is_recognised_by_its_components_even_when_the_platform_names_the_distribution() -> None:
    assert docker_infra._is_podman(PODMAN_4_3)
    assert not docker_infra._is_podman(DOCKER)
    assert not docker_infra._is_podman({})


def test_the_broker_advertises_its_host_listener_only_once_the_mapped_port_is_known() -> None:
    env = docker_infra.KAFKA_ENV
    assert "KAFKA_ADVERTISED_LISTENERS" not in env  # written into the container after start, with the mapped port
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    assert listeners == {"PLAINTEXT": ":9092", "CONTROLLER": ":9093", "EXTERNAL": f":{docker_infra._EXTERNAL_PORT}"}
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols) == set(listeners)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert all(key.startswith("KAFKA_") or key == "CLUSTER_ID" for key in env)


def test_testcontainers_are_used_only_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIZEFLOW_DEVSTACK_INFRA", raising=False)
    assert infra.infra_source() == "local"
    for value, source in (("", "local"), ("local", "local"), ("docker", "docker"), (" docker ", "docker")):
        monkeypatch.setenv("PRIZEFLOW_DEVSTACK_INFRA", value)
        assert infra.infra_source() == source, value
    for wrong in ("testcontainers", "Docker", "podman", "1"):
        monkeypatch.setenv("PRIZEFLOW_DEVSTACK_INFRA", wrong)
        with pytest.raises(infra.InfraError, match="PRIZEFLOW_DEVSTACK_INFRA"):
            infra.infra_source()
