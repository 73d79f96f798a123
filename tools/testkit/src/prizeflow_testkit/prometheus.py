"""Debian's Prometheus as a process under test, the metric names a PromQL expression reads, and snapshots of
what services expose on /metrics. Imported by tests only.

    async with prometheus_server(tmp / "prom", {"rewards": ["127.0.0.1:8080"]}, rule_files=[rules]) as prom:
        await prom.wait_scraped_after(t0)
        assert (await prom.query("up"))["status"] == "success"

`metric_names(expr)` is a small PromQL lexer, not a parser: it finds the vector selectors of an expression
(names, and `{__name__=~"..."}` matchers) and skips strings, function calls, grouping label lists, ranges and
keywords. Whether the expression parses is Prometheus's own answer (the query API).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from prizeflow_testkit.processes import Process, free_port
from prizeflow_testkit.waits import eventually

# -- PromQL: which metrics an expression reads ------------------------------------------------------------------

_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Aggregations may be followed by `by (...)` before their `(`: never a metric name.
_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk"}
_KEYWORDS = _GROUPING | _AGGREGATIONS | {"quantile", "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"[0-9.][0-9A-Za-z_.]*")  # numbers, hex, 1e3, durations
_MATCHER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*")


@dataclass(frozen=True)
class Selector:
    """One vector selector: its metric name (None for `{__name__=~"..."}` alone) and its label matchers."""

    name: str | None
    matchers: tuple[tuple[str, str, str], ...] = ()

    def name_matchers(self) -> list[tuple[str, str]]:
        """(operator, value) of the `__name__` matchers."""
        return [(op, value) for label, op, value in self.matchers if label == "__name__"]


class PromQLSyntaxError(ValueError):
    """The lexer met something it cannot read (an unterminated string or bracket)."""


def _string_end(expr: str, i: int) -> int:
    quote = expr[i]
    j = i + 1
    while j < len(expr):
        if expr[j] == "\\" and quote != "`":
            j += 2
            continue
        if expr[j] == quote:
            return j + 1
        j += 1
    raise PromQLSyntaxError(f"unterminated string at {i}: {expr!r}")


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return body if literal[0] == "`" else re.sub(r"\\(.)", r"\1", body)


def _closing(expr: str, i: int, opening: str, closing: str) -> int:
    """Index after the bracket closing the one at `i`, strings skipped."""
    depth, j = 0, i
    while j < len(expr):
        c = expr[j]
        if c in "\"'`":
            j = _string_end(expr, j)
            continue
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise PromQLSyntaxError(f"unclosed {opening!r} at {i}: {expr!r}")


def _matchers(body: str) -> tuple[tuple[str, str, str], ...]:
    out: list[tuple[str, str, str]] = []
    i = 0
    while i < len(body):
        if body[i] in ", \t\n":
            i += 1
            continue
        m = _MATCHER.match(body, i)
        if m is None or m.end() >= len(body) or body[m.end()] not in "\"'`":
            raise PromQLSyntaxError(f"cannot read the label matchers {{{body}}}")
        end = _string_end(body, m.end())
        out.append((m.group(1), m.group(2), _unquote(body[m.end() : end])))
        i = end
    return tuple(out)


def _next_char(expr: str, i: int) -> str:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return expr[i] if i < len(expr) else ""


def _identifier(expr: str, m: re.Match[str], out: list[Selector]) -> int:
    """A name: a metric (appended to `out` with its matchers), or a function, keyword or grouping list (skipped).
    Returns where the lexer goes on."""
    word, i = m.group(0), m.end()
    following = _next_char(expr, i)
    if word.lower() in _GROUPING and following == "(":
        return _closing(expr, expr.index("(", i), "(", ")")  # a list of label names, not selectors
    if following == "(" or word.lower() in _KEYWORDS:
        return i  # a function, an aggregation or a keyword
    if following == "{":
        start = expr.index("{", i)
        end = _closing(expr, start, "{", "}")
        out.append(Selector(word, _matchers(expr[start + 1 : end - 1])))
        return end
    out.append(Selector(word))
    return i


def selectors(expr: str) -> list[Selector]:
    """Every vector selector of a PromQL expression, in order."""
    out: list[Selector] = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if c.isspace() or c in "()+-*/%^=!<>,@":
            i += 1
        elif c == "#":
            end = expr.find("\n", i)
            i = len(expr) if end < 0 else end
        elif c in "\"'`":
            i = _string_end(expr, i)
        elif c == "[":
            i = _closing(expr, i, "[", "]")
        elif c == "{":
            end = _closing(expr, i, "{", "}")
            out.append(Selector(None, _matchers(expr[i + 1 : end - 1])))
            i = end
        elif c.isdigit() or c == ".":
            number = _NUMBER.match(expr, i)
            assert number is not None
            i = number.end()
        elif m := _IDENT.match(expr, i):
            i = _identifier(expr, m, out)
        else:
            raise PromQLSyntaxError(f"unexpected {c!r} at {i}: {expr!r}")
    return out


@dataclass(frozen=True)
class NameCheck:
    """What an expression reads that has no series: names, and `__name__` matchers that match none."""

    missing: tuple[str, ...]

    def __bool__(self) -> bool:
        return not self.missing


def check_names(expr: str, existing: Iterable[str]) -> NameCheck:
    """Every metric `expr` names has a series among `existing`; a `__name__` regex matches at least one."""
    names = set(existing)
    missing: list[str] = []
    for sel in selectors(expr):
        if sel.name is not None and sel.name not in names:
            missing.append(sel.name)
        for op, value in sel.name_matchers():
            if op == "=" and value not in names:
                missing.append(value)
            elif op == "=~" and not any(re.fullmatch(value, n) for n in names):
                missing.append(f'{{__name__=~"{value}"}}')
    return NameCheck(tuple(dict.fromkeys(missing)))


# -- /metrics snapshots and their cardinality --------------------------------------------------------------------

SeriesKey = tuple[tuple[str, str], ...]

# Label values that are ids: a label holding one grows with traffic (unbounded cardinality).
ID_PATTERNS: Mapping[str, re.Pattern[str]] = {
    "a uuid": re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    "long hex (an event id, a transaction hash)": re.compile(r"[0-9a-fA-F]{16,}"),
    "a Stellar key": re.compile(r"(?<![A-Z2-7])[GMS][A-Z2-7]{55}(?![A-Z2-7])"),
    # Digits standing alone, not a run inside a short hex token (`camp-09420559fa`, a bounded admin-made id).
    "a long number (an amount, a ledger, a timestamp)": re.compile(r"(?<![0-9A-Za-z])\d{7,}(?![0-9A-Za-z])"),
}


@dataclass
class Snapshot:
    """The series one or more /metrics pages expose: sample name → label set → value."""

    values: dict[str, dict[SeriesKey, float]] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)  # sample name → the service that exposed it

    def add(self, service: str, exposition: str) -> None:
        for family in text_string_to_metric_families(exposition):
            for sample in family.samples:
                key = tuple(sorted(sample.labels.items()))
                self.values.setdefault(sample.name, {})[key] = float(sample.value)
                self.source[sample.name] = service

    @property
    def series(self) -> dict[str, set[SeriesKey]]:
        return {name: set(values) for name, values in self.values.items()}

    def label_values(self, name: str) -> dict[str, set[str]]:
        values: dict[str, set[str]] = {}
        for key in self.values.get(name, {}):
            for label, value in key:
                values.setdefault(label, set()).add(value)
        return values

    def count(self) -> int:
        return sum(len(s) for s in self.values.values())


# Labels whose values are ids made by a person, not by traffic, named here with why (never silently): their
# values may look like anything an admin typed, so only the traffic's own ids are looked for in them — and
# `growing_labels` still fails them if they ever keep pace with traffic.
ADMIN_MADE_ID_LABELS: Mapping[str, str] = {
    "campaign_id": "a campaign is created by an admin (POST /campaigns), a handful per season",
}


def id_labels(snap: Snapshot, ids: Iterable[str]) -> list[str]:
    """Every label value that looks like an id or contains one of `ids` (the ids a test's traffic used)."""
    used = sorted(set(ids))
    found = []
    for name in sorted(snap.values):
        for label, values in sorted(snap.label_values(name).items()):
            for value in sorted(values):
                patterns = {} if label in ADMIN_MADE_ID_LABELS else ID_PATTERNS
                why = [what for what, pattern in patterns.items() if pattern.search(value)]
                why += [f"the id {i!r} of the traffic" for i in used if i in value]
                if why:
                    found.append(f"{snap.source[name]}: {name}{{{label}={value!r}}}: {'; '.join(why)}")
    return found


def growing_labels(first: Snapshot, second: Snapshot, *, new_entities: int) -> list[str]:
    """Labels that gained at least `new_entities` values from `first` to `second`, when the traffic between
    the two brought that many new rounds, players or payouts: a label that grows with traffic. A bounded label
    may gain a value or two (an outcome seen once, like a retry); it cannot keep pace with the traffic."""
    found = []
    for name in sorted(second.values):
        before = first.label_values(name)
        for label, values in sorted(second.label_values(name).items()):
            gained = values - before.get(label, set())
            if len(gained) >= new_entities:
                found.append(f"{second.source[name]}: {name} label {label!r} gained {sorted(gained)}")
    return found


def new_series(first: Snapshot, second: Snapshot) -> list[str]:
    """Series in `second` that `first` did not have, one line each."""
    return [
        f"{name}{{{', '.join(f'{k}={v!r}' for k, v in key)}}}"
        for name in sorted(second.values)
        for key in sorted(set(second.values[name]) - set(first.values.get(name, {})))
    ]


async def scrape(urls: Mapping[str, str]) -> Snapshot:
    """One snapshot of every service's /metrics (service name → metrics URL)."""
    snap = Snapshot()
    async with httpx.AsyncClient(timeout=10) as http:
        for service, url in urls.items():
            response = await http.get(url)
            response.raise_for_status()
            snap.add(service, response.text)
    return snap


# -- Prometheus as a process --------------------------------------------------------------------------------------


def prometheus_binary() -> str:
    """Debian's prometheus (tools/devstack/scripts/ensure-prometheus.sh installs it): missing fails, never skips."""
    found = shutil.which("prometheus")
    if found is None:
        raise AssertionError("prometheus is not installed: run `make system-deps` (Debian package prometheus)")
    return found


def prometheus_config(
    jobs: Mapping[str, Sequence[str]], rule_files: Sequence[Path] = (), *, interval: str = "1s"
) -> dict[str, Any]:
    """One scrape job per service named as the service (the rules select on `job`), the rules loaded."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(targets)}]} for job, targets in jobs.items()
        ],
    }


@dataclass
class PrometheusServer:
    url: str
    process: Process
    http: httpx.AsyncClient

    async def _get(self, path: str, **params: str) -> dict[str, Any]:
        response = await self.http.get(self.url + path, params=params)
        doc: dict[str, Any] = response.json()
        return doc

    async def query(self, expr: str) -> dict[str, Any]:
        """The query API's answer as is: `status` is "error" (with `errorType`, `error`) when it does not parse."""
        return await self._get("/api/v1/query", query=expr)

    async def metric_names(self) -> set[str]:
        """Every metric name with at least one series in the TSDB (scraped or recorded)."""
        doc = await self._get("/api/v1/label/__name__/values")
        assert doc["status"] == "success", doc
        return set(doc["data"])

    async def wait_scraped_after(self, at: float, jobs: Iterable[str], *, timeout: float = 60.0) -> None:
        """Until every target of `jobs` was scraped successfully after the Unix time `at`."""
        wanted = set(jobs)

        async def fresh() -> set[str]:
            doc = await self._get("/api/v1/targets", state="active")
            done = set()
            for target in doc["data"]["activeTargets"]:
                scraped = _unix(target["lastScrape"])
                if target["health"] == "up" and scraped > at:
                    done.add(target["labels"]["job"])
            return done

        await eventually(fresh, lambda done: wanted <= done, timeout=timeout, interval=0.2)

    async def wait_rules_evaluated_after(self, at: float, *, timeout: float = 60.0) -> None:
        """Until every rule group was evaluated after the Unix time `at` (recorded series are then in)."""

        async def stale_groups() -> list[str]:
            doc = await self._get("/api/v1/rules")
            groups = doc["data"]["groups"]
            return [g["name"] for g in groups if _unix(g["lastEvaluation"]) <= at]

        await eventually(stale_groups, lambda names: not names, timeout=timeout, interval=0.2)


def _unix(rfc3339: str) -> float:
    """Prometheus's timestamps (RFC 3339, nanoseconds, `Z`) as Unix seconds; the zero time as 0."""
    head, _, frac = rfc3339.rstrip("Z").partition(".")
    if head.startswith("0001-"):
        return 0.0
    stamp = datetime.fromisoformat(head + "+00:00").timestamp()
    return stamp + (float(f"0.{frac}") if frac else 0.0)


def _write_config(workdir: Path, config: dict[str, Any]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@asynccontextmanager
async def prometheus_server(
    workdir: Path, jobs: Mapping[str, Sequence[str]], *, rule_files: Sequence[Path] = (), interval: str = "1s"
) -> AsyncIterator[PrometheusServer]:
    """A Prometheus scraping `jobs` every `interval` into a fresh TSDB under `workdir`, on a free port."""
    config = _write_config(workdir, prometheus_config(jobs, rule_files, interval=interval))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = Process(
        [
            prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        {},
        workdir / "prometheus.log",
        url + "/-/ready",
        new_session=True,
    )
    process.start(timeout=60)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            yield PrometheusServer(url, process, http)
    finally:
        process.stop()
