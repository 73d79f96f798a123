"""Every service's migrations keep the expand/contract rule that makes rolling upgrades and app rollbacks safe
(docs/runbooks/upgrade.md "Expand and contract").

Each revision declares `phase = "expand"` or `"contract"`. The SQL each revision's upgrade emits is rendered offline
(Alembic's `--sql` mode, through the services' own env.py) and read statement by statement, with function bodies
left out: what it removes or tightens is a *breaking* change, which the previous release's code may trip over:

- DROP TABLE, DROP COLUMN, TRUNCATE, RENAME of a table or a column, a column's type changed, a column made NOT NULL
  or added NOT NULL without a default (the old code's INSERT omits it);
- DROP FUNCTION/VIEW/TYPE/SEQUENCE/SCHEMA of something the code names and the step does not create again.

Dropping or renaming a constraint, an index or a trigger relaxes what old code meets, as does DROP NOT NULL or
DROP DEFAULT: allowed in an expand step. (Adding a constraint or a trigger is allowed too: that the previous release
honours it is for review, this test cannot know.)

The rules:
- an expand step makes no breaking change (the base revision aside: no older code exists);
- a contract step after the baseline release (migrations/releases.toml) says which release stopped using what it
  removes (`unused_since`), ships in a later release than that one, and removes only what the current code no
  longer uses: absent from the service's SQLAlchemy metadata and named nowhere in its src (or the runtime's, for
  the messaging tables);
- the baseline's own contract steps are history, classified after the fact: they need not name a release.
- each service carries its migrations' chain (`<package>.expected_schema`): what the running service checks its
  database against.
Pure rendering and parsing: unit tier.
"""

from __future__ import annotations

import importlib
import io
import itertools
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from sqlalchemy import MetaData

from prizeflow_runtime.db import messaging_metadata
from prizeflow_runtime.schema_compat import Phase

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.parent.name for p in ROOT.glob("services/*/alembic.ini"))
RUNTIME_SRC = ROOT / "libs" / "runtime" / "src" / "prizeflow_runtime"

_IDENT = r'(?:"[^"]+"|[\w$]+)'
_NAME = rf"{_IDENT}(?:\.{_IDENT})?"


@dataclass(frozen=True)
class Release:
    name: str
    head: str
    baseline: bool


@dataclass(frozen=True)
class Change:
    """A breaking change a statement makes: `kind` and what it touches (`table` and, for a column, `column`)."""

    kind: str
    table: str
    column: str | None
    statement: str

    def __str__(self) -> str:
        what = f"{self.table}.{self.column}" if self.column else self.table
        return f"{self.kind} {what}: {self.statement[:160]}"


def _bare(name: str) -> str:
    """`"public"."outbox"` → `outbox`."""
    return name.rsplit(".", maxsplit=1)[-1].strip('"').lower()


def statements(sql: str) -> list[str]:
    """The statements of a rendered script, function bodies and comments left out, whitespace collapsed."""
    sql = re.sub(r"\$(\w*)\$.*?\$\1\$", "$$", sql, flags=re.S)
    sql = re.sub(r"--[^\n]*", "", sql)
    return [" ".join(s.split()) for s in sql.split(";") if s.strip()]


def _alter_actions(rest: str) -> list[str]:
    return [a.strip() for a in re.split(r",\s*(?=(?:ADD|DROP|ALTER|RENAME)\b)", rest, flags=re.I) if a.strip()]


def breaking_changes(sql: str, *, code_names: frozenset[str] = frozenset()) -> list[Change]:
    """The breaking changes of a rendered step (see the module's docstring). `code_names`: the words the service's
    code uses, which decides whether a dropped function, view or type is one the code calls."""
    found: list[Change] = []
    all_statements = statements(sql)
    created = {
        _bare(m.group(1))
        for s in all_statements
        if (m := re.match(rf"CREATE (?:OR REPLACE )?(?:FUNCTION|VIEW|TYPE|SEQUENCE|SCHEMA|DOMAIN) ({_NAME})", s, re.I))
    }
    # A step's own scratch tables (CREATE TEMPORARY TABLE): no release ever saw them, so dropping them breaks none.
    scratch = {
        _bare(m.group(1))
        for s in all_statements
        if (m := re.match(rf"CREATE (?:TEMP|TEMPORARY) TABLE (?:IF NOT EXISTS )?({_NAME})", s, re.I))
    }
    for s in all_statements:
        if m := re.match(rf"DROP TABLE (?:IF EXISTS )?((?:{_NAME}\s*,\s*)*{_NAME})", s, re.I):
            found += [Change("drop table", _bare(n), None, s) for n in m.group(1).split(",") if _bare(n) not in scratch]
        elif m := re.match(rf"TRUNCATE (?:TABLE )?(?:ONLY )?((?:{_NAME}\s*,\s*)*{_NAME})", s, re.I):
            found += [Change("truncate", _bare(n), None, s) for n in m.group(1).split(",")]
        elif m := re.match(
            rf"DROP (FUNCTION|PROCEDURE|VIEW|MATERIALIZED VIEW|TYPE|SEQUENCE|SCHEMA|DOMAIN) (?:IF EXISTS )?({_NAME})",
            s,
            re.I,
        ):
            name = _bare(m.group(2))
            if name in code_names and name not in created:
                found.append(Change(f"drop {m.group(1).lower()}", name, None, s))
        elif m := re.match(rf"ALTER TABLE (?:IF EXISTS )?(?:ONLY )?({_NAME}) (.*)$", s, re.I):
            table = _bare(m.group(1))
            for action in _alter_actions(m.group(2)):
                found += _alter_change(table, action, s)
    return found


def _alter_change(table: str, action: str, statement: str) -> list[Change]:
    if re.match(r"RENAME (?:CONSTRAINT|INDEX)\b", action, re.I):
        return []
    if re.match(r"RENAME TO\b", action, re.I):
        return [Change("rename table", table, None, statement)]
    if m := re.match(rf"RENAME (?:COLUMN )?({_IDENT}) TO\b", action, re.I):
        return [Change("rename column", table, _bare(m.group(1)), statement)]
    if m := re.match(rf"DROP (?:COLUMN )?(?:IF EXISTS )?({_IDENT})(?:\s|$)", action, re.I):
        name = _bare(m.group(1))
        if name not in {"constraint", "not", "default", "index", "trigger"}:
            return [Change("drop column", table, name, statement)]
        return []
    if m := re.match(rf"ALTER (?:COLUMN )?({_IDENT}) (?:SET DATA )?TYPE\b", action, re.I):
        return [Change("change column type", table, _bare(m.group(1)), statement)]
    if m := re.match(rf"ALTER (?:COLUMN )?({_IDENT}) SET NOT NULL\b", action, re.I):
        return [Change("make column not null", table, _bare(m.group(1)), statement)]
    if m := re.match(rf"ADD (?:COLUMN )?(?:IF NOT EXISTS )?({_IDENT}) (.*)$", action, re.I):
        name, rest = _bare(m.group(1)), m.group(2)
        if name in {"constraint", "primary", "unique", "check", "foreign", "exclude"}:
            return []
        if re.search(r"\bNOT NULL\b", rest, re.I) and not re.search(
            r"\bDEFAULT\b|\bGENERATED\b|\bIDENTITY\b", rest, re.I
        ):
            return [Change("add required column", table, name, statement)]
    return []


# -- the services' migrations ---------------------------------------------------------------------------------------


def _config(service: str, output: io.StringIO | None = None) -> Config:
    return Config(str(ROOT / "services" / service / "alembic.ini"), output_buffer=output)


@cache
def chain(service: str) -> tuple[Script, ...]:
    """The service's revisions, base first (one chain: a branch fails `walk_revisions`' order below)."""
    revisions = tuple(reversed(list(ScriptDirectory.from_config(_config(service)).walk_revisions())))
    for older, newer in itertools.pairwise(revisions):
        assert newer.down_revision == older.revision, f"{service}: {newer.revision} does not follow {older.revision}"
    return revisions


class _Answer:
    """A data-dependent step's read, answered offline as the branch that does the most."""

    def first(self) -> tuple[int]:
        return (1,)

    def scalar(self) -> int:
        return 1


@cache
def rendered(service: str, revision: str) -> str:
    """The SQL the step to `revision` emits, through the service's own env.py in offline mode."""
    from sqlalchemy.engine.mock import MockConnection

    script = next(s for s in chain(service) if s.revision == revision)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DATABASE_URL", raising=False)  # offline: the dialect is enough
        patch.setattr(MockConnection, "exec_driver_sql", lambda *_a, **_k: _Answer(), raising=False)
        command.upgrade(_config(service, out), f"{script.down_revision or 'base'}:{revision}", sql=True)
    return out.getvalue()


@cache
def releases(service: str) -> tuple[Release, ...]:
    data = tomllib.loads((ROOT / "services" / service / "migrations" / "releases.toml").read_text())
    return tuple(Release(r["name"], r["head"], baseline=bool(r.get("baseline", False))) for r in data["release"])


def _index(service: str, revision: str) -> int:
    ids = [s.revision for s in chain(service)]
    assert revision in ids, f"{service}: {revision} is not one of its revisions {ids}"
    return ids.index(revision)


def baseline_head(service: str) -> int:
    return _index(service, releases(service)[0].head)


def _package(service: str) -> str:
    return f"prizeflow_{service}"


def _code_files(service: str) -> list[Path]:
    """What the running service executes: its src and the runtime's, not the frozen migration history."""
    src = ROOT / "services" / service / "src" / _package(service)
    runtime = [p for p in RUNTIME_SRC.rglob("*.py") if "schema_history" not in p.parts]
    return [*src.rglob("*.py"), *runtime]


@cache
def code_texts(service: str) -> tuple[str, ...]:
    return tuple(p.read_text(encoding="utf-8").lower() for p in _code_files(service))


@cache
def code_names(service: str) -> frozenset[str]:
    return frozenset(w for text in code_texts(service) for w in re.findall(r"[a-z_][a-z0-9_]*", text))


def metadata_of(service: str) -> list[MetaData]:
    """The service's SQLAlchemy metadata (the modules that declare tables) and the messaging tables'."""
    found: list[MetaData] = [messaging_metadata]
    src = ROOT / "services" / service / "src"
    for path in (src / _package(service)).rglob("*.py"):
        if "MetaData(" not in path.read_text(encoding="utf-8"):
            continue
        module = importlib.import_module(".".join(path.relative_to(src).with_suffix("").parts))
        found += [v for v in vars(module).values() if isinstance(v, MetaData)]
    return found


def still_used(service: str, change: Change) -> list[str]:
    """Where the current code still uses what `change` removes (empty: unused)."""
    where: list[str] = []
    for metadata in metadata_of(service):
        table = metadata.tables.get(change.table)
        if table is not None and (change.column is None or change.column in table.columns):
            where.append(f"SQLAlchemy metadata declares {change.table}{'.' + change.column if change.column else ''}")
    table_word = re.compile(rf"\b{re.escape(change.table)}\b")
    for path, text in zip(_code_files(service), code_texts(service), strict=True):
        if not table_word.search(text):
            continue
        if change.column is None or re.search(rf"\b{re.escape(change.column)}\b", text):
            where.append(f"{path.relative_to(ROOT)} names it")
    return where


def contract_problems(
    service: str, revision: str, unused_since: object, sql: str, recorded: tuple[Release, ...]
) -> list[str]:
    """Why the contract step to `revision` (after the baseline; `sql` what it emits) breaks the rule; empty when it
    keeps it."""
    problems: list[str] = []
    known = {r.name: r for r in recorded}
    if not isinstance(unused_since, str) or unused_since not in known:
        problems.append(
            f"declares unused_since = {unused_since!r}: name the release (migrations/releases.toml: {sorted(known)}) "
            "whose code stopped using what it removes"
        )
    elif _index(service, revision) <= _index(service, known[unused_since].head):
        problems.append(f"ships in release {unused_since}, the one that stopped using what it removes: a later one")
    for change in breaking_changes(sql, code_names=code_names(service)):
        problems += [f"{change}: still used ({where})" for where in still_used(service, change)]
    return problems


def _revisions() -> Iterator[tuple[str, Script]]:
    for service in SERVICES:
        for script in chain(service):
            yield service, script


REVISIONS = list(_revisions())
IDS = [f"{service}-{script.revision}" for service, script in REVISIONS]


def test_every_service_with_migrations_is_checked() -> None:
    assert set(SERVICES) == {"settlement", "rewards", "payouts", "signer", "webhooks", "console"}


@pytest.mark.parametrize(("service", "script"), REVISIONS, ids=IDS)
def test_every_revision_declares_its_phase(service: str, script: Script) -> None:
    phase = getattr(script.module, "phase", None)
    assert phase in set(Phase), f"{service} {script.revision}: `phase = {phase!r}`, expected one of {list(Phase)}"


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_expects_its_migrations_chain(service: str) -> None:
    """The chain the running service checks its database against (it ships without its migrations) is theirs."""
    expected = importlib.import_module(f"{_package(service)}.expected_schema").EXPECTED_SCHEMA
    assert expected.service == service
    ids = tuple(s.revision for s in chain(service))
    assert expected.revisions == ids, (
        f"{_package(service)}.expected_schema lists {expected.revisions}, the migrations are {ids}"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_the_releases_follow_the_chain_from_one_baseline(service: str) -> None:
    recorded = releases(service)
    assert recorded, f"{service}: migrations/releases.toml records no release"
    assert [r.baseline for r in recorded] == [True] + [False] * (len(recorded) - 1), "the first release is the baseline"
    heads = [_index(service, r.head) for r in recorded]
    assert heads == sorted(heads), f"{service}: releases out of order: {[r.head for r in recorded]}"
    assert len({r.name for r in recorded}) == len(recorded), f"{service}: a release recorded twice"


@pytest.mark.parametrize(("service", "script"), REVISIONS, ids=IDS)
def test_an_expand_step_removes_and_tightens_nothing(service: str, script: Script) -> None:
    if getattr(script.module, "phase", None) != Phase.EXPAND or script.down_revision is None:
        return  # a contract step (next test), or the base revision: no older code exists
    changes = breaking_changes(rendered(service, script.revision), code_names=code_names(service))
    assert not changes, (
        f"{service} {script.revision} is an expand step but breaks what the previous release may use; make it a "
        "contract step in a later release, or split it:\n" + "\n".join(map(str, changes))
    )


CONTRACTS = [(service, s) for service, s in REVISIONS if getattr(s.module, "phase", None) == Phase.CONTRACT]


@pytest.mark.parametrize(("service", "script"), CONTRACTS, ids=[f"{s}-{r.revision}" for s, r in CONTRACTS])
def test_a_contract_step_removes_only_what_an_earlier_release_stopped_using(service: str, script: Script) -> None:
    if _index(service, script.revision) <= baseline_head(service):
        # History: classified after the fact, no release was recorded when it shipped. Still honest: it is a
        # contract step because it does break the release before it.
        assert breaking_changes(rendered(service, script.revision), code_names=code_names(service)), (
            f"{service} {script.revision} is classified contract but breaks nothing: it is an expand step"
        )
        return
    unused_since = getattr(script.module, "unused_since", None)
    sql = rendered(service, script.revision)
    problems = contract_problems(service, script.revision, unused_since, sql, releases(service))
    assert not problems, f"{service} {script.revision}:\n" + "\n".join(problems)


def test_the_known_history_is_classified_as_it_is() -> None:
    """The steps that dropped `outbox.published_at` and renamed `inbox` are contract steps, the rest expand."""
    contracts = {(service, s.revision) for service, s in CONTRACTS}
    assert contracts == {
        ("settlement", "0002"), ("settlement", "0007"), ("rewards", "0002"), ("rewards", "0009"),
        ("payouts", "0003"), ("payouts", "0009"), ("signer", "0002"), ("signer", "0006"), ("webhooks", "0003"),
    }  # fmt: skip


# -- the rules can fail ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("ALTER TABLE claims DROP COLUMN payout_id;", ("drop column", "claims", "payout_id")),
        ("ALTER TABLE ONLY public.claims DROP IF EXISTS payout_id;", ("drop column", "claims", "payout_id")),
        ("DROP TABLE IF EXISTS route_announcements;", ("drop table", "route_announcements", None)),
        ("ALTER TABLE inbox RENAME TO inbox_legacy;", ("rename table", "inbox", None)),
        ('ALTER TABLE payouts RENAME COLUMN "ref" TO provider_ref;', ("rename column", "payouts", "ref")),
        ("ALTER TABLE payouts ALTER COLUMN amount TYPE numeric;", ("change column type", "payouts", "amount")),
        ("ALTER TABLE payouts ALTER amount SET DATA TYPE numeric;", ("change column type", "payouts", "amount")),
        ("ALTER TABLE payouts ALTER COLUMN memo SET NOT NULL;", ("make column not null", "payouts", "memo")),
        ("ALTER TABLE payouts ADD COLUMN memo text NOT NULL;", ("add required column", "payouts", "memo")),
        ("TRUNCATE inbox_legacy;", ("truncate", "inbox_legacy", None)),
        ("ALTER TABLE a ADD COLUMN x int, DROP COLUMN y;", ("drop column", "a", "y")),
        ("DROP FUNCTION prizeflow_inbox_maintain(timestamptz);", ("drop function", "prizeflow_inbox_maintain", None)),
    ],
)  # fmt: skip
def test_a_breaking_change_is_found(sql: str, expected: tuple[str, str, str | None]) -> None:
    found = [(c.kind, c.table, c.column) for c in breaking_changes(sql, code_names=code_names("rewards"))]
    assert expected in found, found


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE payouts DROP CONSTRAINT payouts_one_per_claim;",
        "DROP TRIGGER IF EXISTS outbox_notify ON outbox;",
        "DROP INDEX IF EXISTS outbox_unpublished;",
        "ALTER TABLE payouts ALTER COLUMN memo DROP NOT NULL;",
        "ALTER TABLE payouts ALTER COLUMN memo DROP DEFAULT;",
        "ALTER TABLE payouts ADD COLUMN memo text NOT NULL DEFAULT '';",
        "ALTER TABLE payouts ADD COLUMN memo text;",
        "ALTER TABLE payouts ADD CONSTRAINT memo_short CHECK (char_length(memo) < 10) NOT VALID;",
        "ALTER TABLE inbox_legacy RENAME CONSTRAINT inbox_pkey TO inbox_legacy_pkey;",
        "DROP FUNCTION payout_final_failure_stays();",  # a trigger's function: no code calls it
        "CREATE OR REPLACE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DROP TABLE x; END $$;",
        "CREATE TEMPORARY TABLE moves ON COMMIT DROP AS SELECT 1 AS x; DROP TABLE moves;",  # the step's scratch
        "DROP FUNCTION prizeflow_inbox_partitions(); CREATE FUNCTION prizeflow_inbox_partitions() RETURNS int "
        "LANGUAGE sql AS $$ SELECT 1 $$;",  # replaced in the same step
    ],
)
def test_a_relaxing_change_is_not_breaking(sql: str) -> None:
    assert breaking_changes(sql, code_names=code_names("payouts")) == []


def test_a_contract_step_is_refused_while_the_code_uses_what_it_drops_or_too_early() -> None:
    """A contract step dropping a column the metadata still declares, in the very release that stopped using it, is
    refused for both; one dropping what nothing names, a release later, passes; one naming no release is refused."""
    head = chain("settlement")[-1]
    previous = chain("settlement")[-2].revision
    same_release = (Release("0.1.0", head.revision, baseline=True),)
    problems = contract_problems(
        "settlement", head.revision, "0.1.0", "ALTER TABLE rounds DROP COLUMN state;", same_release
    )
    assert any("a later one" in p for p in problems), problems
    assert any("rounds.state" in p and "metadata" in p for p in problems), problems
    assert any("rounds.state" in p and "prizeflow_settlement" in p for p in problems), problems

    earlier_release = (Release("0.1.0", previous, baseline=True),)
    dropped = "ALTER TABLE rounds DROP COLUMN no_such_column; DROP TABLE no_such_table;"
    assert contract_problems("settlement", head.revision, "0.1.0", dropped, earlier_release) == []
    assert contract_problems("settlement", head.revision, None, dropped, earlier_release) != []
