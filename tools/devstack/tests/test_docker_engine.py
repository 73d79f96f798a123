"""docker_engine's decisions that need no engine: where the project's dockerd keeps its sockets, and which answering
engine counts as Docker's own (tests/containers/test_compose_docker.py runs the engine itself)."""

from __future__ import annotations

from pathlib import Path

import pytest

from prizeflow_devstack import docker_engine


def test_the_sockets_live_under_devstack_unless_the_checkouts_path_is_too_long_for_one() -> None:
    short = Path("/work/prizeflow")
    assert docker_engine.sockets_dir(short) == short / ".devstack" / "docker"
    assert docker_engine.own_host(short) == "unix:///work/prizeflow/.devstack/docker/docker.sock"
    deep = Path("/home/someone/src/" + "a-rather-long-directory-name/" * 3 + "prizeflow")
    moved = docker_engine.sockets_dir(deep)
    assert moved.parent == Path("/run")
    assert moved.name.startswith("prizeflow-docker-")
    assert moved == docker_engine.sockets_dir(deep), "the same checkout always finds its engine"
    assert moved != docker_engine.sockets_dir(deep.with_name("other")), "two checkouts never share one"
    for root in (short, deep):
        longest = f"{docker_engine.sockets_dir(root)}/run/containerd/containerd.sock.ttrpc"
        assert len(longest) <= docker_engine._SOCKET_MAX, longest


def test_podmans_docker_api_is_not_taken_for_dockers_engine() -> None:
    assert docker_engine._is_docker({"Version": "20.10.24+dfsg1", "Components": [{"Name": "Engine"}]})
    assert not docker_engine._is_docker({"Components": [{"Name": "Podman Engine", "Version": "4.3.1"}]})
    assert docker_engine._is_docker({})


def test_forwarding_is_switched_on_before_dockerd_so_docker_leaves_the_forward_policy(tmp_path: Path) -> None:
    """Docker 20.10 sets iptables' FORWARD policy to DROP when it finds forwarding off and switches it on; with
    br_netfilter that dropped every packet on podman's internal networks in the tier after Docker's."""
    switch = tmp_path / "ip_forward"
    switch.write_text("0\n", encoding="ascii")
    assert docker_engine.keep_forward_policy(switch) is True
    assert switch.read_text(encoding="ascii") == "1\n"
    assert docker_engine.keep_forward_policy(switch) is False  # already on: nothing written


def test_forwarding_that_cannot_be_switched_on_stops_the_engine_start(tmp_path: Path) -> None:
    with pytest.raises(docker_engine.EngineError, match="cannot switch IPv4 forwarding on"):
        docker_engine.keep_forward_policy(tmp_path / "absent" / "ip_forward")
