"""`prizeflow-ops compliance ...` on a fake HTTP layer (httpx.MockTransport: no socket): the request each command
sends to payouts' compliance admin API, what it refuses before sending (a rules file that is not a list of rules),
and what people and scripts see of the answer (a policy version proposed by one admin, approved by another)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from prizeflow_ops import ExitCode, run

TOKEN = "eyJhbGciOiJFZERTQSJ9.compliance-secret.signature"  # a stand-in, checked never to be printed
ENV = {"PRIZEFLOW_OPS_TOKEN": TOKEN, "PRIZEFLOW_PAYOUTS_URL": "https://payouts.test"}
BASE = "/v1/admin/compliance"
RULE = {"scope": {"asset": "USDC"}, "kyc_above": {"amount": 10_000_000_000, "window_s": 2_592_000}}

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


def cli(*argv: str, handler: Handler | None = None, stdin: str = "") -> Result:
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return handler(request) if handler is not None else httpx.Response(200, json={})

    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), env=ENV, stdout=out, stderr=err, stdin=io.StringIO(stdin),
               transport=httpx.MockTransport(record))  # fmt: skip
    result = Result(code, out.getvalue(), err.getvalue(), requests)
    assert TOKEN not in result.stdout + result.stderr, "the token was printed"
    return result


def answer(status: int, body: Any) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        content_type = "application/problem+json" if status >= 400 else "application/json"
        return httpx.Response(status, json=body, headers={"content-type": content_type})

    return handle


def problem(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": f"https://prizeflow.dev/problems/{code}", "title": "Refused", "status": status, "detail": detail,
            "code": code, **extra}  # fmt: skip


PROPOSAL = {
    "id": 11, "version": 4, "policy": {"version": 4, "rules": [RULE], "note": "winter"}, "status": "proposed",
    "proposed_by": "adam", "proposed_at": "2026-11-25T09:00:00Z", "reason": "tighter", "decided_by": None,
    "decided_at": None,
}  # fmt: skip
POLICY = {
    "active": {"version": 3, "policy": {"version": 3, "rules": [RULE], "note": "autumn"}, "proposed_by": "adam",
               "approved_by": "ava", "activated_at": "2026-11-20T10:00:00Z"},
    "proposals": [PROPOSAL],
}  # fmt: skip
PLAYER = {
    "player_id": "player-7", "status": "verified", "reference": "applicant-5f2c", "country": "DE", "sequence": 3,
    "history": [{"status": "verified", "at": "2026-11-24T10:05:00Z", "detail": "green"}],
    "screening": {"outcome": "hit", "versions": {"ofac_sdn": "2026-11-24"}, "cleared_by": [],
                  "matches": [{"source": "ofac_sdn", "entry_uid": "sdn-36524", "entry_name": "LISTED PERSON",
                               "kind": "person", "score": 0.93}]},
    "decisions": [{"payout_id": "po-9", "stage": "send", "action": "hold", "reasons": [], "policy_version": 3,
                   "list_versions": {"ofac_sdn": "2026-11-24"}, "at": "2026-11-25T08:00:00Z"}],
}  # fmt: skip
LISTS = [{"source": "ofac_sdn", "version": "2026-11-24", "published_at": "2026-11-24T18:00:00Z", "entries": 17412,
          "loaded_at": "2026-11-25T06:00:00Z", "sha256": "ab" * 32}]  # fmt: skip


# --- what each command sends ---------------------------------------------------------------------------------
SENT = [
    (["compliance", "policy"], ("GET", f"{BASE}/policy"), None),
    (["compliance", "approve", "11", "--reason", "checked"], ("POST", f"{BASE}/policy/proposals/11/approve"),
     {"reason": "checked"}),
    (["compliance", "reject", "11", "--reason", "too strict"], ("POST", f"{BASE}/policy/proposals/11/reject"),
     {"reason": "too strict"}),
    (["compliance", "player", "player-7"], ("GET", f"{BASE}/players/player-7"), None),
    (["compliance", "lists"], ("GET", f"{BASE}/screening/lists"), None),
    (["compliance", "refresh"], ("POST", f"{BASE}/screening/refresh"), {}),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "request_", "body"), SENT, ids=[" ".join(a[:2]) for a, _, _ in SENT])
def test_each_command_sends_one_request_to_payouts_with_the_token_and_its_body(
    argv: list[str], request_: tuple[str, str], body: Any
) -> None:
    result = cli(*argv)
    assert result.code == ExitCode.OK, result.stderr
    assert result.sent() == [request_]
    assert result.requests[0].url.host == "payouts.test"
    assert result.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert result.body() == body


def test_propose_sends_the_rules_file_its_note_and_the_reason(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([RULE]))
    result = cli("compliance", "propose", "--rules", str(rules), "--note", "winter", "--reason", "tighter",
                 handler=answer(201, PROPOSAL))  # fmt: skip
    assert result.code == ExitCode.OK, result.stderr
    assert result.sent() == [("POST", f"{BASE}/policy/proposals")]
    assert result.body() == {"policy": {"rules": [RULE], "note": "winter"}, "reason": "tighter"}
    assert "a second admin approves it" in result.stdout


def test_propose_reads_a_policy_document_from_stdin_with_its_note() -> None:
    """`compliance policy --json`'s active `policy`, edited, can be proposed as it is."""
    document = json.dumps({"version": 3, "rules": [RULE], "note": "from the active one"})
    result = cli("compliance", "propose", "--rules", "-", "--reason", "r", stdin=document)
    assert result.code == ExitCode.OK, result.stderr
    assert result.body() == {"policy": {"rules": [RULE], "note": "from the active one"}, "reason": "r"}


def test_an_id_cannot_reach_another_route() -> None:
    assert cli("compliance", "player", "../policy").sent() == [("GET", f"{BASE}/players/..%2Fpolicy")]
    assert cli("compliance", "approve", "..", "--reason", "r").sent() == [
        ("POST", f"{BASE}/policy/proposals/%2E%2E/approve")
    ]


@pytest.mark.parametrize(
    ("text", "argv_tail"),
    [
        ("[{", []),
        ('{"note": "no rules"}', []),
        ('"a string"', []),
        ("[]", ["--reason"]),  # --reason without its value
    ],
)
def test_unusable_rules_or_arguments_exit_2_and_nothing_is_sent(text: str, argv_tail: list[str]) -> None:
    argv = ["compliance", "propose", "--rules", "-", *(argv_tail or ["--reason", "r"])]
    result = cli(*argv, stdin=text)
    assert result.code == ExitCode.USAGE
    assert result.requests == []
    assert result.stderr


def test_a_missing_rules_file_exits_2(tmp_path: Path) -> None:
    result = cli("compliance", "propose", "--rules", str(tmp_path / "nope.json"), "--reason", "r")
    assert result.code == ExitCode.USAGE
    assert result.requests == []


def test_approve_and_reject_need_a_reason() -> None:
    for verb in ("approve", "reject"):
        result = cli("compliance", verb, "11")
        assert result.code == ExitCode.USAGE
        assert result.requests == []


# --- what people and scripts see -----------------------------------------------------------------------------
def test_the_policy_shows_the_active_version_its_rules_and_the_proposals() -> None:
    result = cli("compliance", "policy", handler=answer(200, POLICY))
    assert result.code == ExitCode.OK
    out = result.stdout
    assert out.index("active risk policy v3") < out.index("rule 0") < out.index("proposals")
    for value in ("autumn", "ava", "kyc_above", "tighter", "proposed"):
        assert value in out


def test_no_active_version_says_the_empty_policy_applies() -> None:
    result = cli("compliance", "policy", handler=answer(200, {"active": None, "proposals": []}))
    assert "the empty policy, version 0, applies" in result.stdout


def test_a_player_shows_verification_screening_matches_and_decisions() -> None:
    result = cli("compliance", "player", "player-7", handler=answer(200, PLAYER))
    out = result.stdout
    assert result.code == ExitCode.OK
    assert out.index("verification of player-7") < out.index("verification history") < out.index("screening")
    assert out.index("list entries matched") < out.index("gate decisions")
    for value in ("applicant-5f2c", "sdn-36524", "LISTED PERSON", "po-9", "hold"):
        assert value in out


def test_lists_and_refresh_are_tables_of_the_loaded_versions() -> None:
    listed = cli("compliance", "lists", handler=answer(200, LISTS))
    assert "sanctions lists loaded" in listed.stdout
    assert "17412" in listed.stdout
    refreshed = cli("compliance", "refresh", handler=answer(200, LISTS))
    assert "sanctions lists after the refresh" in refreshed.stdout


def test_json_is_the_apis_document() -> None:
    assert json.loads(cli("compliance", "policy", "--json", handler=answer(200, POLICY)).stdout) == POLICY
    approved = {**PROPOSAL, "status": "active", "decided_by": "ava"}
    result = cli("compliance", "approve", "11", "--reason", "ok", "--json", handler=answer(200, approved))
    assert json.loads(result.stdout) == approved


def test_an_approval_says_the_version_is_active() -> None:
    approved = {**PROPOSAL, "status": "active", "decided_by": "ava"}
    result = cli("compliance", "approve", "11", "--reason", "ok", handler=answer(200, approved))
    assert result.code == ExitCode.OK
    assert "proposal 11 approved: it is the active risk policy" in result.stdout


@pytest.mark.parametrize(
    ("status", "code", "exit_code", "hint"),
    [
        (409, "stale_policy", ExitCode.CONFLICT, "propose again from the active policy"),
        (403, "self_approval", ExitCode.DENIED, "a second admin"),
        (403, "forbidden", ExitCode.DENIED, None),
        (404, "not_found", ExitCode.NOT_FOUND, None),
    ],
)
def test_a_refused_decision_shows_the_problem_its_exit_code_and_what_to_do(
    status: int, code: str, exit_code: ExitCode, hint: str | None
) -> None:
    result = cli("compliance", "approve", "11", "--reason", "r",
                 handler=answer(status, problem(status, code, "the service's words")))  # fmt: skip
    assert result.code == exit_code
    assert result.stdout == ""
    assert f"[{code}]" in result.stderr
    assert "the service's words" in result.stderr
    assert (hint in result.stderr) if hint else ("warning" not in result.stderr)


def test_a_refused_proposal_shows_payouts_field_errors(tmp_path: Path) -> None:
    errors = [{"key": "policy.rules.0.kyc_above.window_s", "message": "Input should be greater than or equal to 60"}]
    refused = problem(422, "validation_error", "Validation failed for POST", errors=errors)
    result = cli("compliance", "propose", "--rules", "-", "--reason", "r", stdin="[{}]", handler=answer(422, refused))
    assert result.code == ExitCode.REFUSED
    assert "validation_error" in result.stderr
    assert "policy.rules.0.kyc_above.window_s: Input should be greater than or equal to 60" in result.stderr
