"""The real `kafka-storage format` (StorageTool, from the cached jars) on fresh data dirs: about 4 s a JVM."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from prizeflow_devstack import kafka
from prizeflow_devstack.paths import Paths
from prizeflow_devstack.state import State

pytestmark = pytest.mark.integration


def _fresh(tmp_path: Path, n: int) -> tuple[Paths, State]:
    paths = Paths(tmp_path / f"root-{n}")
    paths.ensure()
    paths.kafka_dir.mkdir(parents=True)
    kafka._write_config(paths, port=1, controller_port=2)  # nothing listens: format only reads the config
    return paths, State()


def test_a_fresh_data_dir_formats_every_time_with_a_generated_cluster_id(tmp_path: Path) -> None:
    libs = kafka.ensure_jars()
    for n in range(3):
        paths, state = _fresh(tmp_path, n)
        kafka._format(libs, paths, state)
        assert state.kafka.cluster_id is not None
        assert kafka.valid_cluster_id(state.kafka.cluster_id)
        assert paths.kafka_formatted_marker.read_text().strip() == state.kafka.cluster_id
        assert f"cluster.id={state.kafka.cluster_id}" in (paths.kafka_data / "meta.properties").read_text()


def test_the_storage_tool_refuses_a_cluster_id_starting_with_a_dash(tmp_path: Path) -> None:
    """Why ids are drawn again: the tool's argument parser takes `-...` for an option."""
    libs = kafka.ensure_jars()
    paths, _ = _fresh(tmp_path, 0)
    result = subprocess.run(
        [
            *kafka._jvm(libs, paths, "-Xmx256m"), "kafka.tools.StorageTool", "format",
            "--config", str(paths.kafka_config), "--cluster-id", "-" + "A" * 21,
        ],
        capture_output=True, text=True, check=False, timeout=180,
    )  # fmt: skip
    assert result.returncode != 0
    assert "expected one argument" in result.stderr
