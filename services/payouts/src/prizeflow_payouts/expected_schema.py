"""The Alembic revisions this build's code runs against (services/payouts/migrations/versions), base first.

The wheel ships no migrations, so the service carries their chain: at start-up it refuses a database on any other
revision unless only expand steps lie beyond this head (prizeflow_runtime.schema_compat). A new migration appends
its revision here; tests/migrations/test_expand_contract.py fails until it does.
"""

from __future__ import annotations

from prizeflow_runtime.schema_compat import ExpectedSchema

EXPECTED_SCHEMA = ExpectedSchema(
    "payouts",
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
        "0017",
        "0018",
        "0019",
        "0020",
        "0021",
        "0022",
        "0023",
        "0024",
        "0025",
        "0026",
        "0027",
        "0028",
        "0029",
        "0030",
        "0031",
        "0032",
        "0033",
    ),
)

__all__ = ["EXPECTED_SCHEMA"]
