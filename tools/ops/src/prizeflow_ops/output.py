"""What a person or a script sees: rich tables on stdout for people, one JSON document on stdout for `--json`;
warnings and problems on stderr (as problem JSON, one per line, under `--json`).

Values come from services that carry data from outside (dead-lettered records, provider messages): they are
shown as text, never as markup, with control characters escaped so that no record can drive the terminal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from prizeflow_ops.client import Problem

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_WIDE = 160  # columns when stdout is not a terminal (logs, pipes): tables fold less


def clean(value: Any) -> str:
    """`value` as one printable cell: nested data as compact JSON, control characters as escapes."""
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value)).replace("\n", "\\n").replace("\t", " ")


@dataclass
class Output:
    """Where results, warnings and problems go, in the chosen format."""

    stdout: TextIO
    stderr: TextIO
    json_mode: bool = False

    def __post_init__(self) -> None:
        width = None if self.stdout.isatty() else _WIDE
        self._out = Console(file=self.stdout, highlight=False, markup=False, emoji=False, width=width)
        self._err = Console(file=self.stderr, highlight=False, markup=False, emoji=False, soft_wrap=True)

    # --- machine output ----------------------------------------------------------------------------------
    def document(self, data: Any) -> None:
        """The one JSON document of a `--json` run."""
        self.stdout.write(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
        self.stdout.flush()

    # --- people ------------------------------------------------------------------------------------------
    def line(self, text: str, *, style: str | None = None) -> None:
        self._out.print(Text(clean_line(text), style=style or ""))

    def table(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, title: str | None = None) -> None:
        if not rows:
            self.line(f"{title + ': ' if title else ''}none", style="dim")
            return
        table = Table(title=title, title_justify="left", show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text(clean(row.get(column))) for column in columns))
        self._out.print(table)

    def record(self, data: Any, *, title: str | None = None) -> None:
        """One resource: its scalar fields as a two-column table, each list of objects as a table of its own."""
        if not isinstance(data, Mapping):
            self.line(clean(data))
            return
        table = Table(title=title, title_justify="left", show_header=False, show_lines=False)
        table.add_column("field", style="bold", no_wrap=True)
        table.add_column("value", overflow="fold")
        nested: list[tuple[str, list[Mapping[str, Any]]]] = []
        for key, value in data.items():
            if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
                nested.append((key, value))
                continue
            table.add_row(Text(clean(key)), Text(clean(value)))
        self._out.print(table)
        for key, rows in nested:
            self.table(rows, _columns_of(rows), title=key)

    # --- stderr ------------------------------------------------------------------------------------------
    def warning(self, text: str) -> None:
        if self.json_mode:
            self.stderr.write(json.dumps({"warning": text}) + "\n")
        else:
            self._err.print(Text(f"warning: {clean_line(text)}", style="yellow"))

    def problem(self, problem: Problem, *, action: str = "") -> None:
        if self.json_mode:
            self.stderr.write(json.dumps(problem.document(), ensure_ascii=False, default=str) + "\n")
            self.stderr.flush()
            return
        status = f"{problem.status} " if problem.status is not None else ""
        code = f" [{problem.code}]" if problem.code else ""
        head = f"{problem.service}: {action + ': ' if action else ''}{status}{problem.title}{code}"
        self._err.print(Text(clean_line(head), style="bold red"))
        if problem.detail:
            self._err.print(Text(f"  {clean_line(problem.detail)}"))
        for error in problem.body.get("errors") or []:
            if isinstance(error, Mapping):
                where = error.get("key") or error.get("loc") or ""
                self._err.print(Text(f"  - {clean(where)}: {clean(error.get('message') or error.get('msg'))}"))

    def config_error(self, setting: str, detail: str) -> None:
        if self.json_mode:
            body = {
                "type": "https://prizeflow.dev/problems/config_error",
                "title": "Configuration error",
                "detail": f"{setting} {detail}",
                "code": "config_error",
                "setting": setting,
            }
            self.stderr.write(json.dumps(body) + "\n")
        else:
            self._err.print(Text(f"prizeflow-ops: {setting} {clean_line(detail)}", style="bold red"))


def clean_line(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _columns_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    return columns


__all__ = ["Output", "clean"]
