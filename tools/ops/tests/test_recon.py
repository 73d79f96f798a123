"""`prizeflow-ops recon ...` on a fake HTTP layer (httpx.MockTransport: no socket): the request each command sends to
payouts' reconciliation admin API, what it refuses before sending, and what people and scripts see of the answer
(a money action proposed by one person, executed by a second)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from prizeflow_ops import ExitCode, run

TOKEN = "eyJhbGciOiJFZERTQSJ9.recon-secret.signature"  # a stand-in, checked never to be printed
ENV = {"PRIZEFLOW_OPS_TOKEN": TOKEN, "PRIZEFLOW_PAYOUTS_URL": "https://payouts.test"}
BASE = "/reconciliation"

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    requests: list[httpx.Request] = field(default_factory=list)

    def sent(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.raw_path.decode()) for r in self.requests]

    def body(self) -> Any:
        return json.loads(self.requests[0].content) if self.requests[0].content else None


def cli(*argv: str, handler: Handler | None = None) -> Result:
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return handler(request) if handler is not None else httpx.Response(200, json={})

    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), env=ENV, stdout=out, stderr=err, transport=httpx.MockTransport(record))
    result = Result(code, out.getvalue(), err.getvalue(), requests)
    assert TOKEN not in result.stdout + result.stderr, "the token was printed"
    return result


def answer(status: int, body: Any) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        content_type = "application/problem+json" if status >= 400 else "application/json"
        return httpx.Response(status, json=body, headers={"content-type": content_type})

    return handle


def problem(status: int, code: str, detail: str) -> dict[str, Any]:
    return {"type": f"https://prizeflow.dev/problems/{code}", "title": "Refused", "status": status, "detail": detail,
            "code": code}  # fmt: skip


EXCEPTION: Mapping[str, Any] = {
    "id": 17,
    "provider": "exchange",
    "kind": "unknown_outcome",
    "severity": "high",
    "state": "investigating",
    "owner": "alice",
    "run_id": "run-1",
    "opened_at": "2026-11-25T10:05:00+00:00",
    "updated_at": "2026-11-25T10:20:00+00:00",
    "payout_id": "po-9",
    "asset": "USDT",
    "amount": 2500000,
    "ours": {"payout_id": "po-9", "state": "submitted", "asset": "USDT", "amount": 2500000, "provider_ref": None},
    "theirs": [{"line_id": "wd-77", "kind": "payout", "asset": "USDT", "amount": 2500000, "reference": "po-9"}],
    "actions": ["acknowledge", "settle_found", "settle_not_made"],
    "proposal": None,
    "resolution": None,
    "history": [{"at": "2026-11-25T10:20:00+00:00", "actor": "alice", "what": "taken", "reason": "checking"}],
}


# --- what each command sends ---------------------------------------------------------------------------------
SENT = [
    (
        ["recon", "run", "--provider", "stripe", "--since", "2026-11-25T09:00:00Z", "--until", "2026-11-25T10:00:00Z"],
        ("POST", f"{BASE}/runs"),
        {"provider": "stripe", "since": "2026-11-25T09:00:00+00:00", "until": "2026-11-25T10:00:00+00:00"},
    ),
    (["recon", "runs"], ("GET", f"{BASE}/runs?limit=50"), None),
    (["recon", "runs", "--provider", "ton", "--limit", "5"], ("GET", f"{BASE}/runs?provider=ton&limit=5"), None),
    (["recon", "run-show", "run-1"], ("GET", f"{BASE}/runs/run-1"), None),
    (["recon", "exceptions"], ("GET", f"{BASE}/exceptions?limit=100&offset=0"), None),
    (
        [
            "recon",
            "exceptions",
            "--state",
            "open",
            "--kind",
            "unrequested",
            "--provider",
            "stellar",
            "--severity",
            "critical",
            "--owner",
            "alice",
            "--limit",
            "10",
            "--offset",
            "20",
        ],
        (
            "GET",
            f"{BASE}/exceptions?state=open&kind=unrequested&provider=stellar&severity=critical&owner=alice"
            "&limit=10&offset=20",
        ),
        None,
    ),
    *(
        (["recon", "exceptions", "--kind", kind], ("GET", f"{BASE}/exceptions?kind={kind}&limit=100&offset=0"), None)
        for kind in ("overpaid", "unmatched_credit")
    ),
    (["recon", "show", "17"], ("GET", f"{BASE}/exceptions/17"), None),
    (["recon", "take", "17", "--reason", "mine"], ("POST", f"{BASE}/exceptions/17/take"), {"reason": "mine"}),
    (["recon", "take", "17"], ("POST", f"{BASE}/exceptions/17/take"), {}),
    (
        ["recon", "resolve", "17", "--action", "write_off", "--reason", "provider error, confirmed"],
        ("POST", f"{BASE}/exceptions/17/resolve"),
        {"action": "write_off", "reason": "provider error, confirmed", "params": {}},
    ),
    (
        [
            "recon",
            "resolve",
            "17",
            "--action",
            "settle_found",
            "--reason",
            "in the history",
            "--withdrawal-id",
            "wd-77",
        ],
        ("POST", f"{BASE}/exceptions/17/resolve"),
        {"action": "settle_found", "reason": "in the history", "params": {"withdrawal_id": "wd-77"}},
    ),
]


@pytest.mark.parametrize(("argv", "request_", "body"), SENT, ids=[" ".join(a[:3]) for a, _, _ in SENT])
def test_each_command_sends_one_request_to_payouts_with_the_token_and_its_body(
    argv: list[str], request_: tuple[str, str], body: Any
) -> None:
    result = cli(*argv)
    assert result.code == ExitCode.OK, result.stderr
    assert result.sent() == [request_]
    assert result.requests[0].url.host == "payouts.test"
    assert result.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert result.body() == body


def test_an_id_cannot_reach_another_route() -> None:
    assert cli("recon", "show", "../runs").sent() == [("GET", f"{BASE}/exceptions/..%2Fruns")]
    assert cli("recon", "run-show", "..").sent() == [("GET", f"{BASE}/runs/%2E%2E")]


REFUSED_BEFORE_SENDING = [
    ["recon", "run", "--provider", "stripe", "--since", "yesterday", "--until", "2026-11-25T10:00:00Z"],
    ["recon", "run", "--provider", "stripe", "--since", "2026-11-25T09:00:00", "--until", "2026-11-25T10:00:00Z"],
    ["recon", "run", "--provider", "stripe", "--since", "2026-11-25T10:00:00Z", "--until", "2026-11-25T10:00:00Z"],
    ["recon", "run", "--provider", "stripe", "--since", "2026-11-25T11:00:00+01:00", "--until", "2026-11-25T09:30:00Z"],
    ["recon", "run", "--since", "2026-11-25T09:00:00Z", "--until", "2026-11-25T10:00:00Z"],
    ["recon", "exceptions", "--kind", "typo"],
    ["recon", "exceptions", "--state", "closed"],
    ["recon", "exceptions", "--offset", "-1"],
    ["recon", "resolve", "17", "--action", "refund", "--reason", "r"],
    ["recon", "resolve", "17", "--action", "write_off"],
    ["recon", "resolve", "17", "--action", "settle_found", "--reason", "found"],
    ["recon", "resolve", "17", "--action", "write_off", "--reason", "r", "--withdrawal-id", "wd-1"],
]


@pytest.mark.parametrize("argv", REFUSED_BEFORE_SENDING, ids=[" ".join(a[1:5]) for a in REFUSED_BEFORE_SENDING])
def test_unusable_arguments_exit_2_and_nothing_is_sent(argv: list[str]) -> None:
    result = cli(*argv)
    assert result.code == ExitCode.USAGE
    assert result.requests == []
    assert result.stderr


def test_a_window_across_offsets_is_one_instant_each() -> None:
    """+01:00 and Z are compared as instants: 10:30+01:00 is before 10:00Z."""
    argv = ("recon", "run", "--provider", "ton", "--since", "2026-11-25T10:30:00+01:00", "--until", "2026-11-25T10:00Z")
    result = cli(*argv)
    assert result.code == ExitCode.OK, result.stderr
    assert result.body()["since"] == "2026-11-25T10:30:00+01:00"


# --- what people and scripts see -----------------------------------------------------------------------------
def test_the_queue_is_a_table_of_the_exceptions() -> None:
    summary = {k: v for k, v in EXCEPTION.items() if k != "history"}
    result = cli("recon", "exceptions", handler=answer(200, {"exceptions": [summary]}))
    assert result.code == ExitCode.OK
    assert "reconciliation exceptions" in result.stdout
    for value in ("17", "exchange", "unknown_outcome", "investigating", "alice", "po-9", "2500000"):
        assert value in result.stdout


def test_an_empty_queue_says_none() -> None:
    result = cli("recon", "exceptions", "--state", "open", handler=answer(200, {"exceptions": []}))
    assert result.code == ExitCode.OK
    assert "reconciliation exceptions: none" in result.stdout


def test_runs_are_a_table_and_a_run_shows_its_totals() -> None:
    run_ = {
        "run_id": "run-1", "provider": "stripe", "since": "2026-11-25T09:00:00+00:00",
        "until": "2026-11-25T10:00:00+00:00", "state": "completed", "started_at": "x", "finished_at": "y",
        "lines": 12, "matched": 11, "exceptions": 1, "error": None,
        "totals": [{"asset": "USD", "ours_paid": 1200, "theirs_paid": 1300, "fees": 25, "reversals": 0,
                    "provider_movement": -1325, "ledger_movement": -1200}],
    }  # fmt: skip
    listed = cli("recon", "runs", handler=answer(200, {"runs": [run_]}))
    assert "reconciliation runs" in listed.stdout
    assert "run-1" in listed.stdout
    assert "completed" in listed.stdout
    shown = cli("recon", "run-show", "run-1", handler=answer(200, run_))
    assert "totals" in shown.stdout
    assert "-1325" in shown.stdout


def test_an_exception_shows_both_sides_and_its_history() -> None:
    result = cli("recon", "show", "17", handler=answer(200, EXCEPTION))
    assert result.code == ExitCode.OK
    out = result.stdout
    assert out.index("exception 17") < out.index("ours (Prizeflow's payout)") < out.index("theirs (the provider's")
    assert out.index("theirs (the provider's") < out.index("history")
    assert "wd-77" in out
    assert "settle_found" in out


def test_json_is_the_apis_document() -> None:
    result = cli("recon", "show", "17", "--json", handler=answer(200, EXCEPTION))
    assert json.loads(result.stdout) == EXCEPTION


def test_a_first_money_resolve_is_proposed_and_says_nothing_moved() -> None:
    proposed = {**EXCEPTION, "proposal": {"action": "settle_not_made", "proposed_by": "alice", "reason": "r"}}
    argv = ("recon", "resolve", "17", "--action", "settle_not_made", "--reason", "history checked by two")
    result = cli(*argv, handler=answer(202, proposed))
    assert result.code == ExitCode.OK
    assert result.stdout.startswith("proposed: settle_not_made on exception 17 waits for a second person")
    assert "executed" not in result.stdout


def test_the_second_persons_resolve_is_executed() -> None:
    resolved = {
        **EXCEPTION,
        "state": "resolved",
        "resolution": {"action": "settle_not_made", "resolved_by": ["a", "b"]},
    }
    argv = ("recon", "resolve", "17", "--action", "settle_not_made", "--reason", "agreed")
    result = cli(*argv, handler=answer(200, resolved))
    assert result.code == ExitCode.OK
    assert result.stdout.startswith("executed: exception 17 resolved by settle_not_made")


def test_acknowledge_by_one_person_is_executed() -> None:
    resolved = {**EXCEPTION, "state": "resolved"}
    result = cli("recon", "resolve", "17", "--action", "acknowledge", "--reason", "seen", handler=answer(200, resolved))
    assert result.stdout.startswith("executed:")


def test_json_resolve_prints_the_apis_document_only() -> None:
    argv = ("recon", "resolve", "17", "--action", "write_off", "--reason", "r", "--json")
    result = cli(*argv, handler=answer(202, EXCEPTION))
    assert json.loads(result.stdout) == EXCEPTION


@pytest.mark.parametrize(
    ("status", "code", "exit_code", "hint"),
    [
        (403, "self_approval", ExitCode.DENIED, "a second person"),
        (409, "proposal_differs", ExitCode.CONFLICT, "only that same action"),
        (403, "forbidden", ExitCode.DENIED, None),
        (422, "withdrawal_id_required", ExitCode.REFUSED, None),
        (404, "exception_not_found", ExitCode.NOT_FOUND, None),
    ],
)
def test_a_refused_resolve_shows_the_problem_its_exit_code_and_what_to_do(
    status: int, code: str, exit_code: ExitCode, hint: str | None
) -> None:
    argv = ("recon", "resolve", "17", "--action", "write_off", "--reason", "r")
    result = cli(*argv, handler=answer(status, problem(status, code, "the service's words")))
    assert result.code == exit_code
    assert result.stdout == ""
    assert f"[{code}]" in result.stderr
    assert "the service's words" in result.stderr
    assert (hint in result.stderr) if hint else ("warning" not in result.stderr)


def test_a_run_that_times_out_is_unavailable_and_can_be_asked_again() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    argv = ("recon", "run", "--provider", "ton", "--since", "2026-11-25T09:00:00Z", "--until", "2026-11-25T10:00:00Z")
    result = cli(*argv, handler=slow)
    assert result.code == ExitCode.UNAVAILABLE
    assert "Timed out" in result.stderr
