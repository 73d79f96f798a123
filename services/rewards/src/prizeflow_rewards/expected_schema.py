"""The Alembic revisions this build's code runs against (services/rewards/migrations/versions), base first.

The wheel ships no migrations, so the service carries their chain: at start-up it refuses a database on any other
revision unless only expand steps lie beyond this head (prizeflow_runtime.schema_compat). A new migration appends
its revision here; tests/migrations/test_expand_contract.py fails until it does.
"""

from __future__ import annotations

from prizeflow_runtime.schema_compat import ExpectedSchema

EXPECTED_SCHEMA = ExpectedSchema(
    "rewards",
    (
        "0001",
        "0002",
        "0003",
        "0004",
        "0005",
        "0006",
        "0007",
        "0008",
        "0009",
        "0010",
        "0011",
        "0012",
        "0013",
        "0014",
        "0015",
        "0016",
    ),
)

__all__ = ["EXPECTED_SCHEMA"]
