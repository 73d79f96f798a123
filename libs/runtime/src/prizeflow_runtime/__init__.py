"""Prizeflow runtime kit: settings, database, outbox and relay, inbox, reliable Kafka consumers, HTTP, jobs.

Import what you need from its modules (`prizeflow_runtime.uow`, `prizeflow_runtime.jobs`, ...): this package exports
nothing, so importing a pure module (errors, retry, audit, outages, the unit of work's port) never loads the database,
Kafka or web stacks (`tests/architecture/test_pure_imports.py`).
"""
