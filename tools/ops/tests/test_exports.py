"""`prizeflow-ops export ...` on a fake HTTP layer (httpx.MockTransport: no socket): the request each export sends,
what it refuses before sending, the CSV streamed to stdout or to a file that exists only once complete, and an
export cut short leaving nothing behind."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from prizeflow_ops import ExitCode, run

TOKEN = "eyJhbGciOiJFZERTQSJ9.export-secret.signature"  # a stand-in, checked never to be printed
ENV = {
    "PRIZEFLOW_OPS_TOKEN": TOKEN,
    "PRIZEFLOW_REWARDS_URL": "https://rewards.test",
    "PRIZEFLOW_PAYOUTS_URL": "https://payouts.test",
}
CSV = "transfer_id,amount\r\nt-1,100\r\nt-2,'-5\r\n"
PERIOD = ("--since", "2026-01-01", "--until", "2026-02-01T00:00:00+01:00")

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    requests: list[httpx.Request] = field(default_factory=list)

    def sent(self) -> list[tuple[str, str, dict[str, str]]]:
        return [(r.url.host, r.url.raw_path.decode().split("?")[0], dict(r.url.params)) for r in self.requests]


def cli(*argv: str, handler: Handler | None = None) -> Result:
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return handler(request) if handler is not None else csv_answer([CSV.encode()])(request)

    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), env=ENV, stdout=out, stderr=err, transport=httpx.MockTransport(record))
    result = Result(code, out.getvalue(), err.getvalue(), requests)
    assert TOKEN not in result.stdout + result.stderr, "the token was printed"
    return result


def csv_answer(pieces: list[bytes], *, cut: bool = False) -> Handler:
    """A streamed CSV body in `pieces`; `cut`: the connection drops after them (the service failed half-way)."""

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
        if cut:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body(), headers={"content-type": "text/csv; charset=utf-8"})

    return handle


def test_the_ledger_streams_to_stdout_with_the_period_in_utc() -> None:
    r = cli("export", "ledger", *PERIOD, "--asset", "USDC")
    assert r.code == ExitCode.OK, r.stderr
    assert r.stdout == CSV
    assert r.sent() == [
        (
            "rewards.test",
            "/v1/admin/exports/ledger.csv",
            {"since": "2026-01-01T00:00:00Z", "until": "2026-01-31T23:00:00Z", "asset": "USDC"},
        )
    ]
    assert r.requests[0].headers["accept"].startswith("text/csv")


def test_each_export_asks_its_service() -> None:
    sent = {}
    for argv in (
        ("payouts", "--provider", "stripe"),
        ("player-history", "p/../x"),
        ("reconciliation", "--provider", "ton"),
    ):
        r = cli("export", *argv, *PERIOD)
        assert r.code == ExitCode.OK, r.stderr
        (host, path, params), *_ = r.sent()
        sent[argv[0]] = (host, path, params.get("provider"))
    assert sent == {
        "payouts": ("payouts.test", "/v1/admin/exports/payouts.csv", "stripe"),
        "player-history": ("rewards.test", "/v1/admin/exports/players/p%2F..%2Fx/history.csv", None),
        "reconciliation": ("payouts.test", "/v1/admin/exports/reconciliation.csv", "ton"),
    }


def test_a_file_exists_only_once_the_export_is_complete(tmp_path: Path) -> None:
    target = tmp_path / "ledger.csv"
    # A character split between two pieces, as a network may split it.
    text = "owner\r\nJosé\r\n".encode()
    r = cli("export", "ledger", *PERIOD, "--output", str(target), handler=csv_answer([text[:13], text[13:]]))
    assert r.code == ExitCode.OK, r.stderr
    assert target.read_bytes() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.csv"]
    assert f"{len(text)} bytes written to {target}" in r.stdout

    r = cli("--json", "export", "payouts", *PERIOD, "--output", str(tmp_path / "p.csv"))
    assert json.loads(r.stdout) == {
        "export": "payouts.csv",
        "output": str(tmp_path / "p.csv"),
        "bytes": len(CSV),
        "since": "2026-01-01T00:00:00Z",
        "until": "2026-01-31T23:00:00Z",
    }


def test_stdout_keeps_a_character_split_between_pieces() -> None:
    text = "owner\r\nJosé\r\n".encode()
    r = cli("export", "ledger", *PERIOD, handler=csv_answer([text[:13], text[13:]]))
    assert r.stdout == "owner\r\nJosé\r\n"


def test_an_export_cut_short_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "ledger.csv"
    target.write_text("yesterday's export")
    cut = csv_answer([CSV.encode()], cut=True)
    r = cli("export", "ledger", *PERIOD, "--output", str(target), handler=cut)
    assert r.code == ExitCode.UNAVAILABLE
    assert "export_incomplete" in r.stderr
    assert target.read_text() == "yesterday's export"  # the complete one it would have replaced stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.csv"]

    r = cli("export", "ledger", *PERIOD, handler=cut)
    assert r.code == ExitCode.UNAVAILABLE
    assert "incomplete export: throw them away" in r.stderr


def test_a_refusal_is_the_services_problem_and_writes_no_file(tmp_path: Path) -> None:
    problem = {"title": "Bad Request", "status": 400, "detail": "unknown asset 'DOGE'", "code": "unknown_asset"}

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json=problem, headers={"content-type": "application/problem+json"})

    target = tmp_path / "x.csv"
    r = cli("export", "ledger", *PERIOD, "--asset", "DOGE", "--output", str(target), handler=refuse)
    assert r.code == ExitCode.REFUSED
    assert "unknown_asset" in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (("--since", "2026-02-01", "--until", "2026-01-01"), "must be after --since"),
        (("--since", "2026-01-01", "--until", "2026-01-01"), "must be after --since"),
        (("--since", "2025-01-01", "--until", "2026-01-03"), "at most 366 days"),
        (("--since", "yesterday", "--until", "2026-01-03"), "not an ISO 8601"),
        (("--until", "2026-01-03"), "--since"),
    ],
)
def test_a_bad_period_sends_nothing(argv: tuple[str, ...], said: str) -> None:
    r = cli("export", "ledger", *argv)
    assert r.code == ExitCode.USAGE
    assert r.requests == []
    assert said in r.stderr
