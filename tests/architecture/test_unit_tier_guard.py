"""The root conftest's unit-tier guard, run on planted tests (the mutation check): a unit test that binds or
connects a socket or starts a process fails, even when the code under test swallows the error; the same tests
marked integration pass; a test under integration/ without the marker is refused at collection."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration  # each check runs pytest as a process

ROOT_CONFTEST = Path(__file__).resolve().parents[2] / "conftest.py"

PLANTED = """
import asyncio, socket, subprocess, sys
import pytest

def test_binds():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))

def test_connects_and_swallows_the_error():
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=0.1)
    except Exception:
        pass

def test_starts_a_process():
    subprocess.run([sys.executable, "-c", "pass"], check=False)

def test_starts_an_asyncio_process():
    async def go():
        await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    asyncio.run(go())

def test_pure():
    assert sorted([2, 1]) == [1, 2]

@pytest.mark.integration
def test_marked_may_bind():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))

@pytest.mark.integration
def test_marked_may_start_a_process():
    assert subprocess.run([sys.executable, "-c", "pass"], check=False).returncode == 0
"""

INI = "[pytest]\nmarkers =\n    integration: i\n    e2e: e\n    faults: f\n"


def test_unit_tier_tests_that_reach_for_sockets_or_processes_fail(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(ROOT_CONFTEST.read_text())
    pytester.makeini(INI)
    pytester.makepyfile(test_planted=PLANTED)

    result = pytester.runpytest_subprocess("-p", "no:prizeflow_devstack", "-p", "no:cacheprovider", "-q")

    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 3, result.stdout.str()  # pure, and the two marked integration
    failed = {line.split("::")[1].split(" ")[0] for line in result.stdout.lines if line.startswith("FAILED")}
    assert failed == {
        "test_binds",
        "test_connects_and_swallows_the_error",
        "test_starts_a_process",
        "test_starts_an_asyncio_process",
    }, result.stdout.str()


def test_an_unmarked_test_under_integration_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(ROOT_CONFTEST.read_text())
    pytester.makeini(INI)
    (pytester.path / "integration").mkdir()
    (pytester.path / "integration" / "test_x.py").write_text("def test_x():\n    pass\n")

    result = pytester.runpytest_subprocess("-p", "no:prizeflow_devstack", "-p", "no:cacheprovider", "-q")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "without the integration marker" in result.stderr.str() + result.stdout.str()
