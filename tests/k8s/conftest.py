"""The rehearsal (marker `cluster`): one cluster per session, its steps in order, each refusing to run once an earlier
one failed (it names that step: a later step on a half-installed cluster proves nothing)."""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))  # the rehearsal's parts: rehearsal, internet, round

from rehearsal import Rehearsal, start


@pytest.fixture(scope="session")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    state = start(tmp_path_factory.mktemp("rehearsal"))
    yield state
    state.write_log()


@pytest.fixture(autouse=True)
def _in_order(request: pytest.FixtureRequest) -> Iterator[None]:
    """A step runs only when every step before it passed; its failure stops the ones after it."""
    if "rehearsal" not in request.fixturenames:
        yield
        return
    state: Rehearsal = request.getfixturevalue("rehearsal")
    if state.failed is not None:
        pytest.fail(f"the rehearsal stopped at {state.failed}: this step needs it", pytrace=False)
    yield


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    state: Rehearsal | None = getattr(item, "funcargs", {}).get("rehearsal")
    if call.when == "call" and report.failed and state is not None:
        state.failed = item.name
        # however it failed (a step, an assertion, pytest-timeout), CI's output shows the cluster as it was then
        report.sections.append(("the cluster when the step failed", state.operator.diagnose()))
        report.sections.append(("the last documented lines run", state.operator.last_lines()))
    return report
