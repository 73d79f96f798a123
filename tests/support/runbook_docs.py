"""Runbooks as data: their sections, fenced blocks, the project commands they name and the procedures a test runs.

A runbook (docs/runbooks/<name>.md) is `# title`, then the sections `## Meaning`, `## Impact`, `## Diagnosis`,
`## Mitigation` in that order. A fenced block whose info string carries `runbook:<procedure>` (```` ```bash
runbook:recover ````, in Diagnosis or Mitigation) is a procedure the e2e tier executes as written against the
running services (shell lines in bash, SQL on the service's database), with its `<placeholders>` filled in by the
test: the doc and the test cannot drift apart. Pure text processing: the unit
tier uses it too.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
RUNBOOKS: Final = ROOT / "docs" / "runbooks"
RULES: Final = ROOT / "deploy" / "prometheus" / "rules"
SECTIONS: Final = ("Meaning", "Impact", "Diagnosis", "Mitigation")
PROJECT_TOOLS: Final = ("prizeflow-ops", "prizeflow-dev")

# Every `runbook:<procedure>` block of docs/runbooks, and the e2e test module that executes it.
TESTED_PROCEDURES: Final[Mapping[tuple[str, str], str]] = {
    ("reward-pool-recovery", "recover"): "tests/runbooks/test_runbook_mitigations.py",
    ("accidental-over-allocation", "correct"): "tests/runbooks/test_runbook_mitigations.py",
    ("accidental-over-allocation", "approve"): "tests/runbooks/test_runbook_mitigations.py",
    ("events-dead-lettered", "redrive"): "tests/runbooks/test_runbook_mitigations.py",
    ("events-dead-lettered", "purge"): "tests/runbooks/test_runbook_mitigations.py",
    ("provider-retry", "retry"): "tests/runbooks/test_runbook_mitigations.py",
    ("payout-dispute", "resolve-paid"): "tests/runbooks/test_runbook_mitigations.py",
    ("payout-dispute", "resolve-cancel"): "tests/runbooks/test_runbook_mitigations.py",
    ("outbox-relay-not-leading", "find-holder"): "tests/runbooks/test_runbook_mitigations.py",
    ("restore", "archive"): "tests/runbooks/test_restore_drill.py",
    ("restore", "inspect"): "tests/runbooks/test_restore_drill.py",
    ("restore", "backup"): "tests/runbooks/test_restore_drill.py",
    ("restore", "restore"): "tests/runbooks/test_restore_drill.py",
    ("restore", "rewind"): "tests/runbooks/test_restore_drill.py",
    ("restore", "reconcile"): "tests/runbooks/test_restore_drill.py",
}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_PROCEDURE = re.compile(r"\brunbook:(?P<name>[a-z0-9][a-z0-9-]*)")
_PLACEHOLDER = re.compile(r"<(?P<name>[a-z][a-z0-9_-]*)>")
_INLINE_CODE = re.compile(r"(?<!`)`(?P<code>[^`\n]+)`(?!`)")
# `uv run [--frozen] prizeflow-ops ...` up to the end of the shell command it is part of.
_TOOL_CALL = re.compile(
    r"(?:\buv\s+run\s+(?:--frozen\s+)?)?\b(?P<tool>prizeflow-(?:ops|dev))\b(?P<args>(?:[^|;&)`\n\"']|\"[^\"\n]*\"|'[^'\n]*')*)"
)
_LINK = re.compile(r"\]\((?P<target>[^)\s#]+)(?:#[^)]*)?\)")


@dataclass(frozen=True)
class Block:
    """One fenced block: its info string (`bash runbook:recover`), its text, and the section it is in."""

    info: str
    text: str
    section: str
    line: int

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info.split() else ""

    @property
    def procedure(self) -> str | None:
        found = _PROCEDURE.search(self.info)
        return found.group("name") if found else None

    def command_lines(self) -> list[str]:
        """The block's shell commands, one per entry: continuation lines joined, comments and blanks dropped."""
        out: list[str] = []
        pending = ""
        for raw in self.text.splitlines():
            line = raw.strip()
            if not pending and (not line or line.startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1].rstrip() + " "
                continue
            out.append(pending + line)
            pending = ""
        if pending:
            out.append(pending.rstrip())
        return out


@dataclass(frozen=True)
class Invocation:
    """A project command a runbook names: `prizeflow-ops pool fund <campaign> ...` → tool and argv."""

    tool: str
    argv: tuple[str, ...]
    where: str

    def resolved(self, value: str = "1") -> list[str]:
        """argv with every `<placeholder>` (and `...` reasons) replaced by a value the parser accepts."""
        return [_PLACEHOLDER.sub(value, arg) for arg in self.argv]


@dataclass(frozen=True)
class Runbook:
    path: Path
    text: str
    title: str
    headings: tuple[str, ...]
    sections: Mapping[str, str]
    blocks: tuple[Block, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.path.stem

    def procedure(self, name: str) -> Block:
        found = [b for b in self.blocks if b.procedure == name]
        if len(found) != 1:
            raise LookupError(f"{self.path.name}: {len(found)} blocks tagged runbook:{name}, expected one")
        if found[0].section not in {"Diagnosis", "Mitigation"}:
            raise LookupError(f"{self.path.name}: runbook:{name} is under {found[0].section!r}, not a step")
        return found[0]

    def alerts(self) -> list[str]:
        """The alerts this runbook is for: the backticked names on its `Alert:` (or `Alerts:`) line, above its
        first section. Procedures say `Alerts that lead here:` instead and are for none."""
        head = self.text.split("\n## ", 1)[0]
        line = re.search(r"^Alerts?:(?P<names>.*)$", head, re.MULTILINE)
        return re.findall(r"`(Prizeflow\w+)`", line.group("names")) if line else []

    def invocations(self) -> list[Invocation]:
        """Every project command the runbook names: in fenced shell blocks and in inline code spans."""
        found: list[Invocation] = []
        for block in self.blocks:
            if block.language not in {"bash", "sh", "shell", "console"}:
                continue
            for line in block.command_lines():
                found += _invocations(line, f"{self.path.name}:{block.line}")
        outside = _strip_blocks(self.text)
        for lineno, line in enumerate(outside.splitlines(), start=1):
            for span in _INLINE_CODE.finditer(line):
                if re.match(r"\s*(uv\s+run\s+(--frozen\s+)?)?prizeflow-(ops|dev)\s+\S", span.group("code")):
                    found += _invocations(span.group("code"), f"{self.path.name}:{lineno} (inline)")
        return found

    def links(self) -> list[str]:
        return [m.group("target") for m in _LINK.finditer(self.text) if "://" not in m.group("target")]


def _invocations(line: str, where: str) -> list[Invocation]:
    out = []
    for call in _TOOL_CALL.finditer(line):
        args = call.group("args").strip()
        out.append(Invocation(call.group("tool"), tuple(shlex.split(args)), where))
    return out


def _strip_blocks(text: str) -> str:
    """The text with fenced blocks blanked (line numbers kept)."""
    lines = text.splitlines()
    out: list[str] = []
    fence: str | None = None
    for line in lines:
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group("fence")
            out.append("")
        elif fence is not None and line.strip().startswith(fence) and not line.strip()[len(fence) :].strip():
            fence = None
            out.append("")
        else:
            out.append("" if fence is not None else line)
    return "\n".join(out)


def parse(path: Path) -> Runbook:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    title = ""
    headings: list[str] = []
    sections: dict[str, list[str]] = {}
    blocks: list[Block] = []
    current = ""
    fence: tuple[str, str, str, int] | None = None  # (fence, indent, info, start line)
    body: list[str] = []
    for lineno, line in enumerate(lines, start=1):
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence[0]) and not stripped[len(fence[0]) :].strip():
                indent = fence[1]
                text_ = "\n".join(b[len(indent) :] if b.startswith(indent) else b.lstrip() for b in body)
                blocks.append(Block(fence[2].strip(), text_, current, fence[3]))
                fence, body = None, []
            else:
                body.append(line)
            if current:
                sections[current].append(line)
            continue
        m = _FENCE.match(line)
        if m:
            fence = (m.group("fence"), m.group("indent"), m.group("info"), lineno)
            if current:
                sections[current].append(line)
            continue
        h = _HEADING.match(line)
        if h and len(h.group(1)) == 1 and not title:
            title = h.group(2)
            continue
        if h and len(h.group(1)) == 2:
            current = h.group(2)
            headings.append(current)
            sections[current] = []
            continue
        if current:
            sections[current].append(line)
    if fence is not None:
        raise ValueError(f"{path.name}:{fence[3]}: fenced block never closed")
    return Runbook(
        path=path,
        text=text,
        title=title,
        headings=tuple(headings),
        sections={k: "\n".join(v) for k, v in sections.items()},
        blocks=tuple(blocks),
    )


def runbooks() -> list[Runbook]:
    return [parse(p) for p in sorted(RUNBOOKS.glob("*.md")) if p.name != "README.md"]


def load(name: str) -> Runbook:
    return parse(RUNBOOKS / f"{name}.md")


def placeholders(line: str) -> set[str]:
    return {m.group("name") for m in _PLACEHOLDER.finditer(line)}


def fill(line: str, values: Mapping[str, str]) -> str:
    """`line` with each `<name>` replaced by `values[name]` (shell-quoted); a placeholder without a value fails."""
    missing = placeholders(line) - set(values)
    if missing:
        raise KeyError(f"no value for {sorted(missing)} in: {line}")
    return _PLACEHOLDER.sub(lambda m: shlex.quote(values[m.group("name")]), line)


def rule_runbook_urls() -> Iterator[tuple[Path, str, str]]:
    """(rules file, alert, runbook_url) for every alert of deploy/prometheus/rules and the generated k8s copy."""
    import yaml

    files = sorted(RULES.glob("*.yml")) + sorted(RULES.glob("*.yaml"))
    k8s = ROOT / "deploy" / "k8s" / "base" / "apps" / "prometheusrule.yaml"
    for path in [*files, k8s]:
        if not path.exists():
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            spec = doc.get("spec", doc) if isinstance(doc, dict) else {}
            for group in spec.get("groups", []) or []:
                for rule in group.get("rules", []) or []:
                    if "alert" in rule:
                        yield path, rule["alert"], str((rule.get("annotations") or {}).get("runbook_url", ""))


def runbook_path_of(url: str) -> Path | None:
    """The file a runbook_url names: a repository path (`docs/runbooks/x.md`) or any URL ending in one."""
    found = re.search(r"(docs/runbooks/[A-Za-z0-9._-]+\.md)(?:#.*)?$", url)
    return ROOT / found.group(1) if found else None


__all__ = [
    "PROJECT_TOOLS",
    "ROOT",
    "RUNBOOKS",
    "SECTIONS",
    "TESTED_PROCEDURES",
    "Block",
    "Invocation",
    "Runbook",
    "fill",
    "load",
    "parse",
    "placeholders",
    "rule_runbook_urls",
    "runbook_path_of",
    "runbooks",
]
