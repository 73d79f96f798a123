from prizeflow_runtime.migrations import run_alembic_env

run_alembic_env()
