"""`prizeflow-dev soak` hands its options to tests/bench/soak.py untouched (unit tier: the script is not run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from prizeflow_devstack import bench
from prizeflow_devstack.cli import main


def test_soak_passes_every_option_through_and_exits_with_the_scripts_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Path, list[str]]] = []

    def fake_run_soak(root: Path, argv: list[str]) -> int:
        seen.append((root, argv))
        return 2

    monkeypatch.setenv("PRIZEFLOW_ROOT", str(tmp_path))  # --root sets it when unset: restored afterwards
    monkeypatch.setattr(bench, "run_soak", fake_run_soak)
    with pytest.raises(SystemExit) as done:
        main(["--root", str(tmp_path), "soak", "--minutes", "3", "--rounds-per-s", "40", "--help"])
    assert done.value.code == 2
    assert seen == [(tmp_path.resolve(), ["--minutes", "3", "--rounds-per-s", "40", "--help"])]


def test_other_commands_still_refuse_unknown_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["status", "--minutes", "3"])
    assert done.value.code == 2
    assert "unrecognized arguments: --minutes 3" in capsys.readouterr().err


def test_the_soak_script_is_where_the_command_looks(pytestconfig: pytest.Config) -> None:
    assert (pytestconfig.rootpath / bench.SOAK_SCRIPT).is_file()
