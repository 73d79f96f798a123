"""Runs a runbook's procedure as an operator would: each command line of a `runbook:<procedure>` block, as
written, in bash, with `uv run prizeflow-ops` reaching this environment's `prizeflow-ops` and the platform's URLs
and an operator's token in the environment. Placeholders are the only thing the test fills in."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from runbook_docs import fill, load

from prizeflow_devstack.platform import Platform
from prizeflow_runtime.settings import audience_for

SERVICES = ("settlement", "rewards", "payouts", "webhooks")

# The runbooks say `uv run prizeflow-ops ...` (a checkout's environment); the test runs inside that environment
# already, so `uv run [--frozen]` only has to step aside.
UV_SHIM = """#!/bin/sh
[ "$1" = run ] || { echo "runbook shell: only 'uv run' is available here, not 'uv $1'" >&2; exit 2; }
shift
[ "$1" = --frozen ] && shift
exec "$@"
"""


@dataclass(frozen=True)
class Ran:
    command: str
    returncode: int
    stdout: str
    stderr: str


class RunbookShell:
    def __init__(self, platform: Platform, workdir: Path) -> None:
        self.platform = platform
        shim = workdir / "bin"
        shim.mkdir(parents=True, exist_ok=True)
        uv = shim / "uv"
        uv.write_text(UV_SHIM)
        uv.chmod(0o755)
        venv_bin = Path(sys.executable).parent
        if not (venv_bin / "prizeflow-ops").exists():
            raise RuntimeError(f"prizeflow-ops is not installed in {venv_bin}: uv sync --all-packages")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PRIZEFLOW_")},
            "PATH": f"{shim}{os.pathsep}{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "PRIZEFLOW_OPS_TIMEOUT_S": "30",
            "NO_COLOR": "1",
            "COLUMNS": "200",
            **{f"PRIZEFLOW_{s.upper()}_URL": platform.url(s) for s in SERVICES},
        }

    def token(self, user: str, *roles: str) -> str:
        """An operator's bearer token for every admin API of the platform (as `prizeflow-dev token` makes one)."""
        return self.platform.identity.issue(user, roles, audience=[audience_for(s) for s in SERVICES])

    async def sh(self, command: str, *, token: str) -> Ran:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", f"set -euo pipefail\n{command}",
            env={**self.env, "PRIZEFLOW_OPS_TOKEN": token},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert proc.returncode is not None
        return Ran(command, proc.returncode, out.decode(), err.decode())

    async def procedure(self, runbook: str, procedure: str, values: Mapping[str, str], *, token: str) -> Sequence[Ran]:
        """Every command of the block, in order; the first that fails fails the test with what it printed."""
        block = load(runbook).procedure(procedure)
        done: list[Ran] = []
        for line in block.command_lines():
            ran = await self.sh(fill(line, values), token=token)
            done.append(ran)
            assert ran.returncode == 0, (
                f"{runbook}.md runbook:{procedure}: `{ran.command}` exited {ran.returncode}\n"
                f"--- stdout ---\n{ran.stdout}\n--- stderr ---\n{ran.stderr}"
            )
        return done


__all__ = ["Ran", "RunbookShell"]
