"""prizeflow-ops: the operators' command line over the services' admin APIs (docs/ops-cli.md)."""

from prizeflow_ops.cli import main, run
from prizeflow_ops.client import ExitCode

__all__ = ["ExitCode", "main", "run"]
