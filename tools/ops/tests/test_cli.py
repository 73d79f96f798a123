"""prizeflow-ops on a fake HTTP layer (httpx.MockTransport: no socket): what it sends for each command, what it
prints for people and for scripts, and the exit code each kind of answer becomes."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from prizeflow_ops import ExitCode, run
from prizeflow_ops.client import redact, segment
from prizeflow_ops.commands import merge_timelines

TOKEN = "eyJhbGciOiJFZERTQSJ9.secret-part.signature-part"  # a stand-in, checked never to be printed
URLS = {
    "settlement": "https://settlement.test",
    "rewards": "https://rewards.test",
    "payouts": "https://payouts.test",
    "webhooks": "https://webhooks.test",
}
ENV = {"PRIZEFLOW_OPS_TOKEN": TOKEN, **{f"PRIZEFLOW_{s.upper()}_URL": u for s, u in URLS.items()}}
PROBLEM_404 = {
    "type": "https://prizeflow.dev/problems/campaign_not_found",
    "title": "Not Found",
    "status": 404,
    "detail": "no campaign nope",
    "code": "campaign_not_found",
}

Handler = Callable[[httpx.Request], httpx.Response]


def service_of(request: httpx.Request) -> str:
    return request.url.host.split(".")[0]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    requests: list[httpx.Request] = field(default_factory=list)

    @property
    def document(self) -> Any:
        return json.loads(self.stdout)

    def sent(self) -> list[tuple[str, str, str]]:
        return [(service_of(r), r.method, r.url.raw_path.decode()) for r in self.requests]

    def body(self, index: int = 0) -> Any:
        return json.loads(self.requests[index].content)


def cli(*argv: str, handler: Handler | None = None, env: Mapping[str, str] = ENV, **kw: Any) -> Result:
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if handler is None:
            return httpx.Response(200, json={})
        return handler(request)

    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), env=env, stdout=out, stderr=err, transport=httpx.MockTransport(record), **kw)
    result = Result(code, out.getvalue(), err.getvalue(), requests)
    assert TOKEN not in result.stdout + result.stderr, "the token was printed"
    return result


def answer(status: int, body: Any = None, **headers: str) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        content_type = "application/problem+json" if status >= 400 else "application/json"
        return httpx.Response(status, json=body, headers={"content-type": content_type, **headers})

    return handle


# --- what each command sends ---------------------------------------------------------------------------------
SENT = [
    (["fx", "positions"], ("rewards", "GET", "/admin/fx/positions?days=30"), None),
    (["fx", "reconcile"], ("rewards", "POST", "/admin/fx/reconcile"), None),
    (["pool", "list"], ("rewards", "GET", "/campaigns/"), None),
    (["pool", "show", "c-1"], ("rewards", "GET", "/campaigns/c-1"), None),
    (
        ["pool", "fund", "c-1", "--amount", "5000000", "--reference", "top-1"],
        ("rewards", "POST", "/campaigns/c-1/fund"),
        {"amount": 5000000, "reference": "top-1"},
    ),
    (["pool", "pause", "c-1"], ("rewards", "POST", "/campaigns/c-1/pause"), None),
    (["pool", "resume", "c-1"], ("rewards", "POST", "/campaigns/c-1/resume"), None),
    (["pool", "release-held", "c-1"], ("rewards", "POST", "/campaigns/c-1/held/release"), None),
    (
        ["pool", "close", "c-1", "--reason", "season over"],
        ("rewards", "POST", "/campaigns/c-1/close"),
        {"reason": "season over"},
    ),
    (
        ["ledger", "transfers", "--correlation-id", "round-9", "--account", "treasury:platform"],
        ("rewards", "GET", "/ledger/transfers?correlation_id=round-9&account=treasury%3Aplatform"),
        None,
    ),
    (
        [
            "ledger",
            "propose",
            "--debit",
            "campaign_pool:c-1",
            "--credit",
            "treasury:platform",
            "--asset",
            "USDC",
            "--amount",
            "700",
            "--reason",
            "double allocation",
            "--reference",
            "fix-1",
            "--corrects",
            "t-42",
        ],
        ("rewards", "POST", "/ledger/corrections"),
        {
            "debit_account": "campaign_pool:c-1",
            "credit_account": "treasury:platform",
            "asset": "USDC",
            "amount": 700,
            "reason": "double allocation",
            "reference": "fix-1",
            "corrects_transfer_id": "t-42",
        },
    ),
    (
        ["ledger", "corrections", "--status", "proposed"],
        ("rewards", "GET", "/ledger/corrections?status=proposed"),
        None,
    ),
    (["ledger", "corrections"], ("rewards", "GET", "/ledger/corrections"), None),
    (["ledger", "corrections", "--limit", "5"], ("rewards", "GET", "/ledger/corrections?limit=5"), None),
    (
        ["ledger", "transfers", "--account", "campaign_pool:c-1", "--limit", "10", "--before", "99"],
        ("rewards", "GET", "/ledger/transfers?account=campaign_pool%3Ac-1&before=99&limit=10"),
        None,
    ),
    (["ledger", "show", "lc-1"], ("rewards", "GET", "/ledger/corrections/lc-1"), None),
    (["ledger", "approve", "lc-1"], ("rewards", "POST", "/ledger/corrections/lc-1/approve"), {}),
    (
        ["ledger", "approve", "lc-1", "--reason", "checked"],
        ("rewards", "POST", "/ledger/corrections/lc-1/approve"),
        {"reason": "checked"},
    ),
    (
        ["ledger", "reject", "lc-1", "--reason", "wrong"],
        ("rewards", "POST", "/ledger/corrections/lc-1/reject"),
        {"reason": "wrong"},
    ),
    (
        ["payout", "list", "--state", "failed", "--provider", "sandbox"],
        ("payouts", "GET", "/payouts/?state=failed&provider=sandbox&limit=100"),
        None,
    ),
    (["payout", "show", "po-1"], ("payouts", "GET", "/payouts/po-1"), None),
    (
        ["payout", "retry", "po-1", "--reason", "rail back"],
        ("payouts", "POST", "/payouts/po-1/retry"),
        {"reason": "rail back"},
    ),
    (
        ["payout", "cancel", "po-1", "--reason", "fraud"],
        ("payouts", "POST", "/payouts/po-1/cancel"),
        {"reason": "fraud"},
    ),
    (
        ["payout", "mark-paid", "po-1", "--reference", "bank-77", "--reason", "paid by hand"],
        ("payouts", "POST", "/payouts/po-1/mark-paid"),
        {"reference": "bank-77", "reason": "paid by hand"},
    ),
    (
        ["payout", "mark-failed", "po-1", "--code", "destination_invalid", "--reason", "closed account"],
        ("payouts", "POST", "/payouts/po-1/mark-failed"),
        {"code": "destination_invalid", "reason": "closed account"},
    ),
    (["round", "show", "r-1"], ("settlement", "GET", "/rounds/r-1"), None),
    (
        ["round", "void", "r-1", "--reason", "server crash"],
        ("settlement", "POST", "/rounds/r-1/void"),
        {"reason": "server crash"},
    ),
    (["claim", "held"], ("rewards", "GET", "/holds/?limit=100"), None),
    (["claim", "release", "cl-1"], ("rewards", "POST", "/holds/cl-1/release"), {}),
    (
        ["claim", "release", "cl-1", "--reason", "known player"],
        ("rewards", "POST", "/holds/cl-1/release"),
        {"reason": "known player"},
    ),
    (["claim", "reject", "cl-1", "--reason", "mule"], ("rewards", "POST", "/holds/cl-1/reject"), {"reason": "mule"}),
    (["dlq", "show", "rewards", "7"], ("rewards", "GET", "/admin/dead-letters/7"), None),
    (
        ["dlq", "redrive", "payouts", "7", "--reason", "fixed"],
        ("payouts", "POST", "/admin/dead-letters/7/redrive"),
        {"reason": "fixed"},
    ),
    (
        ["dlq", "purge", "settlement", "7", "--reason", "junk"],
        ("settlement", "POST", "/admin/dead-letters/7/discard"),
        {"reason": "junk"},
    ),
]


@pytest.mark.parametrize(
    ("argv", "request_", "body"), SENT, ids=[" ".join(a[:2]) + f"-{i}" for i, (a, _, _) in enumerate(SENT)]
)
def test_each_command_sends_one_request_with_the_token_and_its_body(
    argv: list[str], request_: tuple[str, str, str], body: Any
) -> None:
    result = cli(*argv)
    assert result.code == ExitCode.OK, result.stderr
    assert result.sent() == [request_]
    sent = result.requests[0]
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert (json.loads(sent.content) if sent.content else None) == body


def test_path_parameters_cannot_reach_another_route() -> None:
    result = cli("pool", "show", "../ledger/corrections?x=1#y")
    assert result.sent() == [("rewards", "GET", "/campaigns/..%2Fledger%2Fcorrections%3Fx%3D1%23y")]
    assert segment("..") == "%2E%2E"
    assert cli("payout", "show", "..").sent() == [("payouts", "GET", "/payouts/%2E%2E")]


def test_round_resolve_sends_the_placements_file(tmp_path: Path) -> None:
    placements = [{"player_id": "p-1", "rank": 1, "score": 990}, {"player_id": "p-2", "rank": 2, "score": 980}]
    file = tmp_path / "placements.json"
    file.write_text(json.dumps({"placements": placements}))
    result = cli("round", "resolve", "r-1", "--placements", str(file), "--reason", "video review")
    assert result.sent() == [("settlement", "POST", "/rounds/r-1/resolve")]
    assert result.body() == {"placements": placements, "reason": "video review"}
    from_stdin = cli(
        "round", "resolve", "r-1", "--placements", "-", "--reason", "r", stdin=io.StringIO(json.dumps(placements))
    )
    assert from_stdin.body()["placements"] == placements


@pytest.mark.parametrize("content", [None, "not json", "[]", '{"placements": 3}'])
def test_an_unusable_placements_file_is_a_usage_error_and_nothing_is_sent(tmp_path: Path, content: str | None) -> None:
    file = tmp_path / "placements.json"
    if content is not None:
        file.write_text(content)
    result = cli("round", "resolve", "r-1", "--placements", str(file), "--reason", "r")
    assert result.code == ExitCode.USAGE
    assert result.requests == []
    assert "--placements" in result.stderr


# --- argument errors: exit 2, nothing sent -----------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["pool", "fund", "c-1", "--amount", "1.5", "--reference", "r"],
        ["pool", "fund", "c-1", "--amount", "0", "--reference", "r"],
        ["pool", "fund", "c-1", "--amount", "-5", "--reference", "r"],
        ["pool", "fund", "c-1", "--amount", "1e3", "--reference", "r"],
        ["pool", "fund", "c-1", "--amount", "100"],
        ["pool", "close", "c-1"],
        ["dlq", "redrive", "rewards", "7"],
        ["dlq", "show", "signer", "7"],
        ["dlq", "show", "rewards", "seven"],
        ["dlq", "list", "--status", "everything"],
        ["payout", "retry", "po-1"],
        ["ledger", "reject", "lc-1"],
        ["claim", "reject", "cl-1"],
        ["round", "void", "r-1"],
        ["nonsense"],
        [],
    ],
)
def test_bad_arguments_exit_2_before_anything_is_sent(argv: list[str]) -> None:
    result = cli(*argv)
    assert result.code == ExitCode.USAGE
    assert result.requests == []
    assert "usage:" in result.stderr


def test_help_exits_0_on_stdout() -> None:
    result = cli("dlq", "redrive", "--help")
    assert result.code == ExitCode.OK
    assert "--reason" in result.stdout


# --- exit codes ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, ExitCode.OK),
        (201, ExitCode.OK),
        (400, ExitCode.REFUSED),
        (422, ExitCode.REFUSED),
        (401, ExitCode.DENIED),
        (403, ExitCode.DENIED),
        (404, ExitCode.NOT_FOUND),
        (409, ExitCode.CONFLICT),
        (500, ExitCode.UNAVAILABLE),
        (503, ExitCode.UNAVAILABLE),
    ],
)
def test_an_http_status_becomes_its_exit_code(status: int, expected: ExitCode) -> None:
    body = {"ok": True} if status < 400 else {"title": "x", "status": status, "detail": "d", "code": "c"}
    assert cli("pool", "show", "c-1", handler=answer(status, body)).code == expected


def test_a_redirect_is_not_followed_and_is_a_refusal() -> None:
    result = cli("pool", "list", handler=answer(302, None, location="https://elsewhere.test/steal"))
    assert result.code == ExitCode.REFUSED
    assert len(result.requests) == 1
    assert "not followed" in result.stderr


@pytest.mark.parametrize(
    ("error", "title"), [(httpx.ConnectError("refused"), "unreachable"), (httpx.ReadTimeout("slow"), "Timed out")]
)
def test_no_answer_is_unavailable(error: Exception, title: str) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    result = cli("payout", "show", "po-1", handler=fail)
    assert result.code == ExitCode.UNAVAILABLE
    assert title in result.stderr
    assert "payouts" in result.stderr


def test_an_error_page_that_is_no_problem_document_still_reads_as_one() -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad Gateway</html>", headers={"content-type": "text/html"})

    result = cli("--json", "pool", "list", handler=html)
    assert result.code == ExitCode.UNAVAILABLE
    problem = json.loads(result.stderr)
    assert problem["status"] == 502
    assert problem["code"] == "http_502"
    assert problem["service"] == "rewards"


# --- output --------------------------------------------------------------------------------------------------
CAMPAIGNS = [
    {"campaign_id": "c-1", "name": "Spring cup", "asset": "USDC", "status": "active", "funded": 1000, "reserved": 0,
     "paid": 0, "remaining": 1000, "held_rounds": 0, "held_amount": 0, "low_threshold": None},
]  # fmt: skip


@pytest.mark.parametrize("position", ["before", "after"])
def test_json_is_the_apis_document_on_stdout(position: str) -> None:
    argv = ["--json", "pool", "list"] if position == "before" else ["pool", "list", "--json"]
    result = cli(*argv, handler=answer(200, CAMPAIGNS))
    assert result.code == ExitCode.OK
    assert result.document == CAMPAIGNS
    assert result.stderr == ""


def test_json_problems_go_to_stderr_as_the_services_problem_document() -> None:
    result = cli("pool", "show", "nope", "--json", handler=answer(404, PROBLEM_404))
    assert result.code == ExitCode.NOT_FOUND
    assert result.stdout == ""
    assert json.loads(result.stderr) == {**PROBLEM_404, "service": "rewards"}


def test_people_get_a_table() -> None:
    result = cli("pool", "list", handler=answer(200, CAMPAIGNS))
    assert "campaign_id" in result.stdout
    assert "Spring cup" in result.stdout
    assert "1000" in result.stdout


def cells(table: str) -> str:
    """A table's text with its cell borders and folds taken out: a long cell reads as one phrase again."""
    return " ".join(table.replace("│", " ").replace("┃", " ").split())


HELD_PAYOUTS = {
    "items": [
        {"id": "po-1", "state": "pending_approval", "hold_code": "screening_hit", "amount": 5},
        {"id": "po-2", "state": "pending_approval", "hold_code": "brand_new", "amount": 6},
        {"id": "po-3", "state": "pending_approval", "hold_code": None, "amount": 7},
    ]
}


def test_people_read_why_the_gate_holds_a_payout_and_an_unknown_hold_is_still_named() -> None:
    result = cli("payout", "list", "--state", "pending_approval", handler=answer(200, HELD_PAYOUTS))
    assert result.code == ExitCode.OK
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "hold_code" in line)
    assert "why_held" in header
    shown = cells(result.stdout)
    assert "Screening hit — two approvers" in shown
    assert "Held by the compliance gate (brand_new)" in shown
    assert cli("--json", "payout", "list", handler=answer(200, HELD_PAYOUTS)).document == HELD_PAYOUTS


def test_people_read_why_rewards_held_a_claim_and_an_unknown_hold_is_still_named() -> None:
    held = [
        {"claim_id": "cl-1", "player_id": "p-1", "hold_code": "velocity", "hold_detail": "5 claims"},
        {"claim_id": "cl-2", "player_id": "p-2", "hold_code": "brand_new", "hold_detail": None},
    ]
    result = cli("claim", "held", handler=answer(200, held))
    assert result.code == ExitCode.OK
    shown = cells(result.stdout)
    assert "why_held" in shown
    assert "Velocity: the player made many claims in a short time." in shown
    assert "Held for review (brand_new)." in shown
    assert cli("--json", "claim", "held", handler=answer(200, held)).document == held


def test_people_get_the_problem_with_its_code_and_validation_errors() -> None:
    problem = {
        "title": "Bad Request",
        "status": 400,
        "detail": "Validation failed for POST /campaigns/c-1/fund",
        "code": "validation_error",
        "errors": [{"key": "amount", "message": "Input should be greater than 0"}],
    }
    result = cli("pool", "fund", "c-1", "--amount", "5", "--reference", "r", handler=answer(400, problem))
    assert result.code == ExitCode.REFUSED
    assert "rewards" in result.stderr
    assert "validation_error" in result.stderr
    assert "amount: Input should be greater than 0" in result.stderr


def test_a_record_shows_its_nested_lists_as_tables() -> None:
    payout = {"id": "po-1", "state": "failed", "history": [{"from_state": "submitting", "to_state": "failed"}]}
    result = cli("payout", "show", "po-1", handler=answer(200, payout))
    assert "po-1" in result.stdout
    assert "history" in result.stdout
    assert "submitting" in result.stdout


def test_data_cannot_drive_the_terminal_or_inject_markup() -> None:
    letter = {"id": 7, "detail": "\x1b[2J\x1b]0;pwned\x07 [bold red]fake[/bold red]", "value": "a\nb"}
    result = cli("dlq", "show", "rewards", "7", handler=answer(200, letter))
    assert "\x1b" not in result.stdout
    assert "\\x1b[2J" in result.stdout
    assert "[bold red]fake[/bold red]" in result.stdout


# --- configuration -------------------------------------------------------------------------------------------
def test_a_missing_token_is_named_and_nothing_is_sent() -> None:
    env = {k: v for k, v in ENV.items() if k != "PRIZEFLOW_OPS_TOKEN"}
    result = cli("pool", "list", env=env)
    assert result.code == ExitCode.USAGE
    assert result.requests == []
    assert "PRIZEFLOW_OPS_TOKEN" in result.stderr


def test_a_missing_url_is_named_and_only_the_urls_a_command_needs_are_required() -> None:
    env = {"PRIZEFLOW_OPS_TOKEN": TOKEN, "PRIZEFLOW_REWARDS_URL": URLS["rewards"]}
    assert cli("pool", "list", env=env).code == ExitCode.OK
    result = cli("payout", "list", env=env)
    assert result.code == ExitCode.USAGE
    assert "PRIZEFLOW_PAYOUTS_URL" in result.stderr
    traced = cli("trace", "round-1", env=env)
    assert traced.code == ExitCode.USAGE
    assert "PRIZEFLOW_SETTLEMENT_URL" in traced.stderr


def test_a_config_error_under_json_is_a_problem_document_naming_the_setting() -> None:
    result = cli("--json", "pool", "list", env={"PRIZEFLOW_OPS_TOKEN": TOKEN})
    assert result.code == ExitCode.USAGE
    problem = json.loads(result.stderr)
    assert (problem["code"], problem["setting"]) == ("config_error", "PRIZEFLOW_REWARDS_URL")


@pytest.mark.parametrize(
    ("url", "extra", "ok"),
    [
        ("http://rewards.internal:8000", {}, False),
        ("http://rewards.internal:8000", {"PRIZEFLOW_OPS_ALLOW_HTTP": "true"}, True),
        ("http://127.0.0.1:8000", {}, True),
        ("http://rewards.internal:8000", {"PRIZEFLOW_PROFILE": "dev"}, True),
        ("https://user:pw@rewards.test", {}, False),
        ("rewards.test", {}, False),
        ("ftp://rewards.test", {}, False),
    ],
)
def test_outside_dev_the_token_is_not_sent_in_clear(url: str, extra: dict[str, str], ok: bool) -> None:
    env = {"PRIZEFLOW_OPS_TOKEN": TOKEN, "PRIZEFLOW_REWARDS_URL": url, **extra}
    result = cli("pool", "list", env=env)
    assert (result.code == ExitCode.OK) is ok, result.stderr
    if not ok:
        assert "PRIZEFLOW_REWARDS_URL" in result.stderr
        assert result.requests == []


def test_timeout_setting_is_checked() -> None:
    result = cli("pool", "list", env={**ENV, "PRIZEFLOW_OPS_TIMEOUT_S": "soon"})
    assert result.code == ExitCode.USAGE
    assert "PRIZEFLOW_OPS_TIMEOUT_S" in result.stderr


def test_the_dev_profile_finds_the_devstacks_services_in_its_state(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.uv.workspace]\nmembers = []\n")
    (tmp_path / ".devstack").mkdir()
    state = {"services": {"rewards": {"port": 41001, "pid": 1}, "payouts": {"port": None}}}
    (tmp_path / ".devstack" / "state.json").write_text(json.dumps(state))
    env = {"PRIZEFLOW_OPS_TOKEN": TOKEN, "PRIZEFLOW_PROFILE": "dev"}
    result = cli("pool", "list", env=env, cwd=tmp_path / ".devstack")
    assert result.code == ExitCode.OK, result.stderr
    assert str(result.requests[0].url) == "http://127.0.0.1:41001/campaigns/"
    missing = cli("payout", "list", env=env, cwd=tmp_path)
    assert missing.code == ExitCode.USAGE
    assert "PRIZEFLOW_PAYOUTS_URL" in missing.stderr
    explicit = cli("pool", "list", env={**env, "PRIZEFLOW_REWARDS_URL": "http://127.0.0.1:5"}, cwd=tmp_path)
    assert str(explicit.requests[0].url) == "http://127.0.0.1:5/campaigns/"
    not_dev = cli("pool", "list", env={"PRIZEFLOW_OPS_TOKEN": TOKEN}, cwd=tmp_path)
    assert not_dev.code == ExitCode.USAGE


# --- secrets -------------------------------------------------------------------------------------------------
def test_debug_output_shows_requests_but_never_the_token() -> None:
    result = cli("--debug", "pool", "show", "c-1", handler=answer(401, {"title": "Unauthorized", "status": 401}))
    assert result.code == ExitCode.DENIED
    assert "> GET https://rewards.test/campaigns/c-1" in result.stderr
    assert "Authorization: Bearer [redacted]" in result.stderr
    assert "< 401" in result.stderr
    assert redact("cookie", "session=abc") == "[redacted]"
    assert redact("X-Correlation-Id", "round-1") == "round-1"


def test_the_correlation_header_is_sent_when_asked() -> None:
    result = cli("--x-correlation-id", "incident-42", "payout", "retry", "po-1", "--reason", "r")
    assert result.requests[0].headers["x-correlation-id"] == "incident-42"
    assert "x-correlation-id" not in cli("payout", "show", "po-1").requests[0].headers


# --- trace: every service's timeline, merged ---------------------------------------------------------------
def timeline(service: str, *entries: tuple[str, str]) -> dict[str, Any]:
    return {
        "correlation_id": "round-1",
        "service": service,
        "entries": [
            {"at": at, "service": service, "kind": "event", "type": kind, "subject": "round-1", "summary": kind}
            for at, kind in entries
        ],
    }


TIMELINES = {
    "settlement": timeline("settlement", ("2025-01-01T10:00:00.5Z", "RoundSettled")),
    "rewards": timeline(
        "rewards", ("2025-01-01T10:00:00.75+00:00", "RewardAllocated"), ("2025-01-01T10:00:02Z", "claim.release")
    ),
    "payouts": timeline("payouts", ("2025-01-01T10:00:01.000001Z", "PayoutPaid")),
    "webhooks": timeline("webhooks"),
}


def timelines(down: frozenset[str] = frozenset()) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        service = service_of(request)
        if service in down:
            raise httpx.ConnectError("connection refused")
        assert request.url.path == "/admin/timeline/round-1"
        return httpx.Response(200, json=TIMELINES[service])

    return handle


def test_trace_merges_every_services_timeline_in_time_order() -> None:
    result = cli("trace", "round-1", "--json", handler=timelines())
    assert result.code == ExitCode.OK
    assert sorted(s for s, _, _ in result.sent()) == sorted(URLS)
    doc = result.document
    assert [e["type"] for e in doc["entries"]] == ["RoundSettled", "RewardAllocated", "PayoutPaid", "claim.release"]
    assert doc["failed"] == []
    people = cli("trace", "round-1", handler=timelines())
    assert (
        people.stdout.index("RoundSettled") < people.stdout.index("PayoutPaid") < people.stdout.index("claim.release")
    )


def test_trace_with_a_service_down_warns_and_exits_6_unless_partial() -> None:
    result = cli("trace", "round-1", handler=timelines(frozenset({"payouts"})))
    assert result.code == ExitCode.UNAVAILABLE
    assert "payouts" in result.stderr
    assert "RewardAllocated" in result.stdout  # what the others know is still shown
    partial = cli("trace", "round-1", "--partial", "--json", handler=timelines(frozenset({"payouts"})))
    assert partial.code == ExitCode.OK
    assert [p["service"] for p in partial.document["failed"]] == ["payouts"]
    assert "PayoutPaid" not in {e["type"] for e in partial.document["entries"]}
    assert json.loads(partial.stderr.splitlines()[0])["code"] == "unreachable"


def test_trace_says_when_a_service_cut_its_timeline() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if service_of(request) == "rewards":
            return httpx.Response(200, json={**TIMELINES["rewards"], "truncated": True})
        return timelines()(request)

    result = cli("trace", "round-1", "--json", handler=handle)
    assert result.code == ExitCode.OK
    assert result.document["truncated"] == ["rewards"]
    assert "rewards cut its timeline short" in result.stderr


def test_trace_with_a_refused_token_is_not_forgiven_by_partial() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if service_of(request) == "rewards":
            return httpx.Response(403, json={"title": "Forbidden", "status": 403, "code": "forbidden"})
        return timelines()(request)

    assert cli("trace", "round-1", "--partial", handler=handle).code == ExitCode.DENIED


def test_timeline_entries_without_a_readable_time_go_last() -> None:
    from prizeflow_ops.client import Answer

    answers = [
        Answer(
            "rewards",
            "GET",
            "/",
            200,
            {"entries": [{"at": "yesterday", "type": "b"}, {"at": "2025-01-01T00:00:00Z", "type": "a"}]},
        )
    ]
    assert [e["type"] for e in merge_timelines(answers)] == ["a", "b"]


# --- dlq list: every consuming service -----------------------------------------------------------------------
def letter(
    service: str, id_: int, topic: str, status: str = "open", created: str = "2025-01-01T00:00:00Z"
) -> dict[str, Any]:
    return {"id": id_, "consumer": f"{service}-c", "topic": topic, "event_type": "X", "reason": "malformed",
            "status": status, "attempts": 1, "created_at": created, "correlation_id": None}  # fmt: skip


def test_dlq_list_asks_every_consuming_service_and_filters_by_topic() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        service = service_of(request)
        assert request.url.params["status"] == "open"
        items = [
            letter(service, 1, "prizeflow.game.rounds.v1.e2eabc"),
            letter(service, 2, "prizeflow.payouts.events.v1"),
        ]
        return httpx.Response(200, json={"items": items, "next_after": None})

    result = cli("dlq", "list", "--topic", "prizeflow.game.rounds.v1", "--json", handler=handle)
    assert result.code == ExitCode.OK
    assert sorted(s for s, _, _ in result.sent()) == ["payouts", "rewards", "settlement"]
    assert [(i["service"], i["id"]) for i in result.document["items"]] == [
        ("settlement", 1), ("rewards", 1), ("payouts", 1),
    ]  # fmt: skip


def test_dlq_list_all_statuses_of_one_service_page_by_page() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        assert params["consumer"] == "rewards-rounds"
        status, after = params["status"], int(params.get("after", 0))
        if status == "open" and after == 0:
            return httpx.Response(200, json={"items": [letter("rewards", 1, "t")], "next_after": 1})
        if status == "open":
            return httpx.Response(
                200, json={"items": [letter("rewards", 5, "t", created="2025-01-03")], "next_after": None}
            )
        return httpx.Response(
            200, json={"items": [letter("rewards", 3, "t", status, "2025-01-02")], "next_after": None}
        )

    result = cli(
        "dlq",
        "list",
        "--service",
        "rewards",
        "--consumer",
        "rewards-rounds",
        "--status",
        "all",
        "--json",
        handler=handle,
    )
    assert result.code == ExitCode.OK
    assert len(result.requests) == 4
    assert [i["id"] for i in result.document["items"]] == [1, 3, 3, 5]


def test_dlq_list_warns_when_the_limit_hides_some() -> None:
    items = [letter("rewards", i, "t") for i in range(1, 4)]
    result = cli(
        "dlq", "list", "--service", "rewards", "--limit", "2",
        handler=answer(200, {"items": items, "next_after": None}),
    )  # fmt: skip
    assert result.code == ExitCode.OK
    assert "more open dead letters than --limit 2" in result.stderr


def test_dlq_list_with_a_service_down() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if service_of(request) == "settlement":
            return httpx.Response(
                503, json={"title": "Service Unavailable", "status": 503, "code": "service_unavailable"}
            )
        return httpx.Response(200, json={"items": [], "next_after": None})

    assert cli("dlq", "list", handler=handle).code == ExitCode.UNAVAILABLE
    partial = cli("dlq", "list", "--partial", "--status", "all", "--json", handler=handle)
    assert partial.code == ExitCode.OK
    assert [p["service"] for p in partial.document["failed"]] == ["settlement"]  # once, not once per status
