"""Frozen history of the messaging tables (outbox, inbox, dead letters) every service owns.

Each module here is one step of that history, written once and never edited: a service's Alembic revision
calls `upgrade(op)` / `downgrade(op)` of the step it was written for, so what an old revision does can never
change when the live table definitions in `prizeflow_runtime.db` move on. The modules hold their DDL as
literal SQL and import nothing from the rest of the package. A change to the messaging schema is a new
module here plus a new revision in every service; `tests/unit/test_schema_history.py` pins each module's
bytes, and an integration test proves the last step ends at what `prizeflow_runtime.db` declares.
"""
