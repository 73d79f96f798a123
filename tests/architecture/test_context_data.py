"""Payouts' bounded contexts own their data: a context's SQL names only the tables it owns, the views another
context publishes, and the runtime's messaging tables (issue 58; ADR 0013's contexts, now apart in data as well as
in imports).

Each context declares what it owns and publishes (`<context>/data.py`: `OWNS`, `PUBLISHES`). Every table and view
the payouts database's migrations create (and the runtime's frozen messaging steps) has exactly one owner. Every
module of a context but its composition root is parsed (not imported): the SQL in its string constants (upper-case
keywords: `FROM`, `JOIN`, `INTO`, `UPDATE`, `TABLE` followed by a name) and its SQLAlchemy `Table("name", ...)`
declarations. A name of another context's table is a crossing: a maintainer who adds a payout state, a column or a
table learns what reads it from the owner's views, not from a failure in another context's SQL.

The checker is shown to find a planted crossing first, so a checker that stopped seeing SQL fails too.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "services" / "payouts" / "src"
MIGRATIONS = ROOT / "services" / "payouts" / "migrations" / "versions"
HISTORY = ROOT / "libs" / "runtime" / "src" / "prizeflow_runtime" / "schema_history"
CONTEXTS = ("prizeflow_payouts", "prizeflow_compliance", "prizeflow_reconciliation")
COMPOSITION_ROOT = frozenset({"bootstrap", "bootstrap_sanctions", "__main__"})
# The runtime's tables, in every service's database: the outbox, the inbox, dead letters, the operators' audit.
RUNTIME = frozenset({"outbox", "inbox", "inbox_forgotten", "inbox_legacy_sealed", "dead_letters", "admin_audit"})

_CREATED = re.compile(r"CREATE (?:TABLE|VIEW) (?:IF NOT EXISTS )?([a-z_][a-z0-9_]*)")
_CREATED_OP = re.compile(r"create_table\(\s*\"([a-z_][a-z0-9_]*)\"")
_NAMED = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class Crossing:
    file: Path
    line: int
    table: str
    owner: str

    def __str__(self) -> str:
        where = self.file.relative_to(ROOT) if self.file.is_relative_to(ROOT) else self.file
        return f"{where}:{self.line}: names {self.table} (owned by {self.owner})"


def database_objects() -> set[str]:
    """Every table and view the payouts database's history creates."""
    names: set[str] = set()
    for path in [*MIGRATIONS.glob("*.py"), *HISTORY.glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        names |= set(_CREATED.findall(text)) | set(_CREATED_OP.findall(text))
    return names


def _named(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for name in _NAMED.findall(node.value):
                yield node.lineno, name
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Table"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def crossings(src: Path, owners: Mapping[str, str], allowed: Mapping[str, frozenset[str]]) -> list[Crossing]:
    """Each name of a table or view of `owners` in a context's module that the context may not name."""
    found: list[Crossing] = []
    for context, may in allowed.items():
        package = src / context
        for path in sorted(package.rglob("*.py")):
            if path.relative_to(package).with_suffix("").parts[0] in COMPOSITION_ROOT:
                continue
            for line, name in _named(path):
                owner = owners.get(name)
                if owner is not None and name not in may:
                    found.append(Crossing(path, line, name, owner))
    return found


def rail_books() -> frozenset[str]:
    """The rails' books, the lifecycle's by their names (`prizeflow_payouts/data.py`): each table the database's
    history creates named `<rail>_...`, where `adapters/<rail>/` is a package that declares `RAILS`."""
    adapters = SRC / "prizeflow_payouts" / "adapters"
    rails = [
        p.name
        for p in adapters.iterdir()
        if (p / "__init__.py").is_file() and "\nRAILS" in (p / "__init__.py").read_text()
    ]
    return frozenset(t for t in database_objects() if any(t.startswith(f"{rail}_") for rail in rails))


def declarations() -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    """(table or view -> its owner, context -> what it may name)."""
    owners: dict[str, str] = dict.fromkeys(RUNTIME, "prizeflow_runtime")
    declared = {c: importlib.import_module(f"{c}.data") for c in CONTEXTS}
    books = rail_books()
    for context, data in declared.items():
        owns = data.OWNS | books if context == "prizeflow_payouts" else data.OWNS
        for name in owns | data.PUBLISHES:
            assert name not in owners, f"{name} is declared by {owners[name]} and {context}"
            owners[name] = context
    published = frozenset().union(*(d.PUBLISHES for d in declared.values()))
    allowed = {
        c: d.OWNS | d.PUBLISHES | published | RUNTIME | (books if c == "prizeflow_payouts" else frozenset())
        for c, d in declared.items()
    }
    return owners, allowed


def test_every_table_and_view_of_the_database_has_one_owner() -> None:
    owners, _ = declarations()
    created = database_objects()
    assert {"payouts", "recon_runs", "kyc_verifications", "outbox", "payout_facts"} <= created  # the parser sees
    assert sorted(created - set(owners)) == [], "a table or view nobody declares: add it to its context's data.py"
    assert sorted(set(owners) - created) == [], "a declared table or view no migration creates"


def test_the_rails_books_are_found_by_their_names() -> None:
    assert {"stellar_lanes", "ton_batches", "exchange_withdrawals", "upi_fund_accounts"} <= rail_books()
    assert not rail_books() & {"payouts", "payout_history", "recon_runs", "kyc_verifications"}


def test_no_context_names_a_table_another_context_owns() -> None:
    owners, allowed = declarations()
    assert [str(c) for c in crossings(SRC, owners, allowed)] == []


def test_the_checker_finds_a_planted_crossing(tmp_path: Path) -> None:
    owners, allowed = declarations()
    package = tmp_path / "prizeflow_reconciliation" / "adapters"
    package.mkdir(parents=True)
    (package / "sneaky_pg.py").write_text(
        "from sqlalchemy import Table, text\n"
        "_READ = text('SELECT state FROM payouts WHERE id = :id')\n"
        "_VIEW = text('SELECT state FROM payout_facts WHERE id = :id')\n"  # a published view: allowed
        "_OWN = text('UPDATE recon_runs SET state = :s')\n"  # its own table: allowed
        "history = Table('payout_history', None)\n"
        "_DOC = 'rows come from payouts written by the lifecycle'\n",  # prose, not SQL: not a crossing
        encoding="utf-8",
    )
    found = crossings(tmp_path, owners, {"prizeflow_reconciliation": allowed["prizeflow_reconciliation"]})
    assert sorted((c.table, c.owner) for c in found) == [
        ("payout_history", "prizeflow_payouts"),
        ("payouts", "prizeflow_payouts"),
    ]
