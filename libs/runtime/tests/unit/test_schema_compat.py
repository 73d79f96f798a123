"""A service judges its database's schema: at its head or ahead through expand steps only, it runs; behind, ahead
through a contract step or on a revision nobody recorded, it refuses, naming the service and both revisions."""

from __future__ import annotations

import pytest

from prizeflow_runtime.schema_compat import AppliedRevision, ExpectedSchema, SchemaMismatchError, check_compatible
from prizeflow_runtime.settings import DatabaseTimeouts

BUILT_FOR = ExpectedSchema("settlement", ("0001", "0002", "0003"))


def recorded(*rows: tuple[str, str | None, str]) -> dict[str, AppliedRevision]:
    return {r: AppliedRevision(r, down, phase) for r, down, phase in rows}


HISTORY = (("0001", None, "expand"), ("0002", "0001", "contract"), ("0003", "0002", "expand"))


def test_the_head_is_compatible_with_or_without_recorded_phases() -> None:
    assert check_compatible(BUILT_FOR, "0003", {}) == ()
    assert check_compatible(BUILT_FOR, "0003", recorded(*HISTORY)) == ()


def test_ahead_through_expand_steps_only_is_compatible_and_says_by_what() -> None:
    applied = recorded(*HISTORY, ("0004", "0003", "expand"), ("0005", "0004", "expand"))
    assert check_compatible(BUILT_FOR, "0005", applied) == ("0004", "0005")


@pytest.mark.parametrize(
    ("database", "applied", "reason"),
    [
        ("0002", recorded(*HISTORY[:2]), "behind"),
        (None, {}, "run this release's migrations first"),
        ("0004", recorded(*HISTORY, ("0004", "0003", "contract")), "contract step 0004"),
        (
            "0005",
            recorded(*HISTORY, ("0004", "0003", "contract"), ("0005", "0004", "expand")),
            "contract step 0004",
        ),
        ("0004", recorded(*HISTORY), "unknown to this build"),  # migrated by something that recorded no phase
        ("0005", recorded(*HISTORY, ("0005", "0004", "expand")), "revision 0004 is unknown"),  # a gap
        ("x1", recorded(("x1", "x0", "expand"), ("x0", None, "expand")), "revision None is unknown"),  # other chain
        ("0004", recorded(*HISTORY, ("0004", "0005", "expand"), ("0005", "0004", "expand")), "unknown"),  # a cycle
    ],
)
def test_anything_else_is_refused_naming_the_service_and_both_revisions(
    database: str | None, applied: dict[str, AppliedRevision], reason: str
) -> None:
    with pytest.raises(SchemaMismatchError) as refused:
        check_compatible(BUILT_FOR, database, applied)
    message = str(refused.value)
    assert message.startswith(f"settlement: database schema at {database or 'no revision'}")
    assert "this build expects 0003" in message
    assert reason in message
    assert (refused.value.database_revision, refused.value.expected) == (database, "0003")


def test_database_timeouts_default_above_every_legitimate_statement_and_reach_the_connection() -> None:
    limits = DatabaseTimeouts.defaults()
    assert limits.server_settings() == {
        "statement_timeout": "60000",
        "lock_timeout": "30000",
        "idle_in_transaction_session_timeout": "300000",
    }
    assert limits.server_settings(statement_timeout=False)["statement_timeout"] == "0"


def test_database_timeouts_come_from_the_environment_and_a_lock_wait_must_fit_in_a_statement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_STATEMENT_TIMEOUT_MS", "2000")
    monkeypatch.setenv("DATABASE_LOCK_TIMEOUT_MS", "500")
    monkeypatch.setenv("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS", "0")
    assert DatabaseTimeouts().server_settings() == {
        "statement_timeout": "2000",
        "lock_timeout": "500",
        "idle_in_transaction_session_timeout": "0",
    }
    monkeypatch.setenv("DATABASE_LOCK_TIMEOUT_MS", "2000")
    with pytest.raises(ValueError, match="DATABASE_LOCK_TIMEOUT_MS must be below DATABASE_STATEMENT_TIMEOUT_MS"):
        DatabaseTimeouts()


async def test_the_api_answers_503_naming_the_mismatch_while_health_and_metrics_still_answer() -> None:
    """A service whose schema check refused serves no route of its API: health, metrics and the schema only."""
    from litestar import get
    from litestar.testing import AsyncTestClient
    from prometheus_client import CollectorRegistry

    from prizeflow_runtime.dev_identity import DevIdentity
    from prizeflow_runtime.http import create_app

    identity = DevIdentity.generate()
    refusal: list[str] = []

    @get("/rounds", sync_to_thread=False)
    def rounds() -> dict[str, str]:
        return {"status": "served"}

    app = create_app(
        service_name="unit",
        route_handlers=[rounds],
        registry=CollectorRegistry(),
        auth=identity.verifier(audience="prizeflow-unit"),
        refusal=lambda: refusal[0] if refusal else None,
    )
    token = {"Authorization": f"Bearer {identity.issue('u-1', ['ops'], audience='prizeflow-unit')}"}
    async with AsyncTestClient(app) as client:
        assert (await client.get("/rounds", headers=token)).json() == {"status": "served"}
        refusal.append("settlement: database schema at 0007, this build expects 0008: the database is behind")
        refused = await client.get("/rounds", headers=token)
        assert refused.status_code == 503
        assert refused.json()["code"] == "schema_incompatible"
        assert "database schema at 0007, this build expects 0008" in refused.json()["detail"]
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/rounds")).status_code == 401  # a caller without a token learns nothing more
