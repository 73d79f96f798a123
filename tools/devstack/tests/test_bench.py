"""`make bench` runs every benchmark as its own process on real infrastructure, in the dev profile."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from prizeflow_devstack.bench import run_all
from prizeflow_devstack.infra import Infra

pytestmark = pytest.mark.integration


def test_a_benchmark_runs_in_the_dev_profile_with_the_checkouts_identity(
    infra: Infra, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PRIZEFLOW_PROFILE", raising=False)  # as in a developer's shell: nothing set
    monkeypatch.delenv("JWT_JWKS_URL", raising=False)
    bench = tmp_path / "services" / "probe" / "bench" / "bench_probe.py"
    bench.parent.mkdir(parents=True)
    bench.write_text(
        textwrap.dedent(
            """
            import json, os
            keys = ("PRIZEFLOW_PROFILE", "JWT_JWKS_URL", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
            print(json.dumps({k: os.environ.get(k) for k in keys}))
            """
        )
    )
    assert run_all(tmp_path) == 0
    seen = json.loads((tmp_path / ".results" / "bench" / "probe.json").read_text())
    assert seen["PRIZEFLOW_PROFILE"] == "dev"
    assert seen["JWT_JWKS_URL"].startswith("file://")
    assert str(tmp_path / ".devstack" / "secrets" / "identity") in seen["JWT_JWKS_URL"]
    assert (seen["DATABASE_URL"], seen["KAFKA_BOOTSTRAP_SERVERS"]) == (infra.postgres_url, infra.kafka_bootstrap)
