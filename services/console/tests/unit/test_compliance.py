"""Compliance in the console: who finds it, a player's verification, screening and gate decisions, the risk policy
in words with its proposals (approve/reject never offered to the proposer; payouts' 422 field errors shown beside
the form), the sanctions lists with a refresh now, and the gate's hold on the approvals page.

The fake answers have the shapes of the payouts compliance admin API (issue 35's brief, "Payouts HTTP API")."""

from __future__ import annotations

import json
from typing import Any

import pytest
from console_fakes import Call, FakeApis, MemorySessions, console, csrf, sign_in
from markupsafe import escape

from prizeflow_console.application.compliance import COMPLIANCE, LISTS, POLICY, PROPOSALS, REFRESH
from prizeflow_console.application.ports import ApiProblem
from prizeflow_console.domain.compliance import (
    duration_words,
    policy_rules,
    proposal_offer,
    reason_words,
    rule_lines,
)
from prizeflow_console.domain.holds import WAITS_FOR, gate_hold
from prizeflow_console.domain.review import risk_signals
from prizeflow_console.domain.viewer import Viewer
from prizeflow_contracts.holds import PAYOUT_HOLD_KINDS, PayoutHoldKind, ReleasedBy

USDC = 10_000_000
RULE: dict[str, Any] = {
    "scope": {"asset": "USDC", "rail": "stellar"},
    "kyc_above": {"amount": 1_000 * USDC, "window_s": 30 * 86_400},
    "player_limit": {"amount": 5_000 * USDC, "window_s": 86_400},
    "velocity": {"count": 5, "window_s": 3_600},
    "new_destination_cooldown_s": 86_400,
    "allowed_countries": ["DE", "FR"],
}
ACTIVE: dict[str, Any] = {
    "version": 3,
    "policy": {"version": 3, "rules": [RULE], "note": "autumn limits"},
    "proposed_by": "adam",
    "approved_by": "ava",
    "activated_at": "2026-11-20T10:00:00Z",
}


def proposal(
    id_: int = 11, version: int = 4, status: str = "proposed", by: str = "adam", **changes: Any
) -> dict[str, Any]:
    return {
        "id": id_,
        "version": version,
        "policy": {
            "version": version,
            "rules": [{**RULE, "kyc_above": {"amount": 500 * USDC, "window_s": 86_400}}],
            "note": "",
        },
        "status": status,
        "proposed_by": by,
        "proposed_at": "2026-11-25T09:00:00Z",
        "reason": "tighter verification",
        "decided_by": None,
        "decided_at": None,
        **changes,
    }


PLAYER: dict[str, Any] = {
    "player_id": "player-7",
    "status": "verified",
    "reference": "applicant-5f2c",
    "country": "DE",
    "sequence": 3,
    "history": [
        {"status": "pending", "at": "2026-11-24T10:00:00Z", "detail": "started"},
        {"status": "verified", "at": "2026-11-24T10:05:00Z", "detail": "vendor review: green"},
    ],
    "screening": {
        "outcome": "hit",
        "versions": {"ofac_sdn": "2026-11-24", "un_consolidated": "2026-11-20"},
        "matches": [
            {
                "source": "ofac_sdn",
                "entry_uid": "sdn-36524",
                "entry_name": "LISTED PERSON",
                "kind": "person",
                "score": 0.93,
            }
        ],
        "cleared_by": [],
    },
    "decisions": [
        {
            "payout_id": "po-9",
            "stage": "request",
            "action": "hold",
            "reasons": [
                {"finding": "velocity", "rule": 0, "detail": "6 requests in 3600s (at most 5 pass unreviewed)"},
                {"finding": "screening_hit", "detail": "ofac_sdn sdn-36524"},
            ],
            "policy_version": 3,
            "list_versions": {"ofac_sdn": "2026-11-24"},
            "at": "2026-11-25T08:00:00Z",
        }
    ],
}
LOADED = [
    {
        "source": "ofac_sdn",
        "version": "2026-11-24",
        "published_at": "2026-11-24T18:00:00Z",
        "entries": 17_412,
        "loaded_at": "2026-11-25T06:00:00Z",
        "sha256": "ab" * 32,
    },
    {
        "source": "eu_consolidated",
        "version": "2026-11-23",
        "published_at": "2026-11-23T12:00:00Z",
        "entries": 5_230,
        "loaded_at": "2026-11-25T06:00:01Z",
        "sha256": "cd" * 32,
    },
]


def posts(apis: FakeApis) -> list[Call]:
    return [c for c in apis.calls if c.method == "POST"]


def policy_api(apis: FakeApis, proposals: list[dict[str, Any]] | None = None, active: Any = ACTIVE) -> None:
    apis.on("GET", "payouts", POLICY, {"active": active, "proposals": proposals or []})


# --- who sees what ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("roles", [("admin",), ("approver",)])
def test_admins_and_approvers_find_compliance_in_the_navigation_and_its_three_pages(roles: tuple[str, ...]) -> None:
    apis = FakeApis()
    policy_api(apis)
    apis.on("GET", "payouts", LISTS, LOADED)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "ava", *roles)
        home = client.get("/").text
        assert 'href="/compliance">Compliance</a>' in home
        for path in ("/compliance", "/compliance/policy", "/compliance/lists"):
            assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("roles", [("ops",), ("player",)])
def test_ops_and_players_see_no_compliance_and_every_address_and_action_answers_403(roles: tuple[str, ...]) -> None:
    apis = FakeApis()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", *roles)
        assert 'href="/compliance"' not in client.get("/").text
        for path in ("/compliance", "/compliance?player_id=player-7", "/compliance/policy", "/compliance/lists"):
            assert client.get(path).status_code == 403, path
        token = csrf(client, "/")
        for path, data in (
            ("/compliance/policy/proposals", {"rules": "[]", "reason": "mine"}),
            ("/compliance/policy/proposals/11/approve", {"reason": "ok"}),
            ("/compliance/policy/proposals/11/reject", {"reason": "no"}),
            ("/compliance/lists/refresh", {}),
        ):
            assert client.post(path, data={"_csrf_token": token, **data}).status_code == 403, path
    assert apis.calls == []


def test_an_approver_reads_the_policy_but_is_offered_neither_the_form_nor_a_decision() -> None:
    apis = FakeApis()
    policy_api(apis, [proposal()])
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        text = client.get("/compliance/policy").text
        token = csrf(client, "/compliance/policy")
        refused = client.post("/compliance/policy/proposals/11/approve", data={"_csrf_token": token, "reason": "x"})
    assert "Active: version 3" in text
    assert 'action="/compliance/policy/proposals"' not in text
    assert "/approve" not in text
    assert "An admin other than its proposer approves or rejects it." in text
    assert refused.status_code == 403
    assert posts(apis) == []


# --- the player ------------------------------------------------------------------------------------------------


def test_a_players_verification_screening_and_each_gate_decision_are_shown_with_their_versions() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", f"{COMPLIANCE}/players/player-7", PLAYER)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        text = client.get("/compliance?player_id=player-7").text
    assert apis.calls[0].token == "token-of-alice"
    assert ">verified</span>" in text
    assert "applicant-5f2c" in text
    assert "vendor review: green" in text
    assert ">hit</span>" in text
    assert "ofac_sdn 2026-11-24, un_consolidated 2026-11-20" in text  # the screening's list versions
    assert "<code>sdn-36524</code>" in text
    assert "LISTED PERSON" in text
    assert "too many requests in the window (rule 0): 6 requests in 3600s (at most 5 pass unreviewed)" in text
    assert "sanctions screening hit: ofac_sdn sdn-36524" in text
    decision = text[text.index('id="decisions-h"') :]
    assert 'data-label="Policy version">3<' in decision
    assert 'data-label="List versions">ofac_sdn 2026-11-24<' in decision
    assert 'href="/approvals/po-9"' in decision


def test_a_player_payouts_does_not_know_is_its_problem_detail_and_a_bad_id_is_refused_here() -> None:
    apis = FakeApis()
    apis.on(
        "GET",
        "payouts",
        f"{COMPLIANCE}/players/nobody",
        ApiProblem(404, "not_found", "Not Found", "no such player", "payouts"),
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        missing = client.get("/compliance?player_id=nobody")
        bad = client.get("/compliance?player_id=../admin")
        empty = client.get("/compliance")
    assert missing.status_code == 404
    assert 'role="alert">payouts: Not Found — no such player (not_found)' in missing.text
    assert bad.status_code == 400
    assert len(apis.calls) == 1
    assert empty.status_code == 200
    assert "Find a player by id" in empty.text


# --- the policy ------------------------------------------------------------------------------------------------


def test_the_active_policy_reads_as_words_with_amounts_in_the_assets_units_and_windows_in_days() -> None:
    apis = FakeApis()
    policy_api(apis, [proposal(), proposal(10, 3, "active", by="adam", decided_by="ava")])
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "ava", "admin")
        text = client.get("/compliance/policy").text
    assert "Rule 0: Requests of asset USDC, rail stellar" in text
    assert "Identity verification required once the player&#39;s claims exceed 1,000.0000000 USDC in 30 days" in text
    assert "Refused above 5,000.0000000 USDC per player in 1 day" in text
    assert "Held for a person after 5 requests in 1 hour" in text
    assert "held for a person for 1 day after the player first uses it" in text
    assert "Only players verified in: DE, FR" in text
    assert "500.0000000 USDC" in text  # the proposal's rules
    assert "proposal-proposed" in text
    assert "proposal-active" in text
    # the form starts from the active version's rules
    textarea = text[text.index('id="propose-rules"') :].split("</textarea>", 1)[0]
    assert json.loads(textarea.split(">", 1)[1].replace("&#34;", '"').replace("&quot;", '"')) == [RULE]


def test_the_form_starts_from_the_active_rules_without_their_unset_fields() -> None:
    apis = FakeApis()
    policy = {"version": 3, "rules": [{**RULE, "destination_limit": None, "allowed_rails": None}], "note": ""}
    policy_api(apis, [proposal(base_version=3, decision_reason="too strict", status="rejected", decided_by="ava")],
               active={**ACTIVE, "policy": policy})  # fmt: skip
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        text = client.get("/compliance/policy").text
    textarea = text[text.index('id="propose-rules"') :].split("</textarea>", 1)[0]
    assert "null" not in textarea
    assert "destination_limit" not in textarea
    assert "too strict" in text
    assert "Proposed against</dt><dd>version 3" in text


def test_no_active_version_says_the_empty_policy_applies_and_the_form_starts_empty() -> None:
    apis = FakeApis()
    policy_api(apis, active=None)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        text = client.get("/compliance/policy").text
    assert "the empty policy (version 0) applies" in text
    assert ">[]</textarea>" in text


def test_an_admin_proposes_a_version_and_payouts_receives_the_rules_note_and_reason() -> None:
    apis = FakeApis()
    policy_api(apis)
    apis.on("POST", "payouts", PROPOSALS, lambda call: proposal(12, 4, by="adam"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        token = csrf(client, "/compliance/policy")
        response = client.post(
            "/compliance/policy/proposals",
            data={"_csrf_token": token, "rules": json.dumps([RULE]), "note": "winter", "reason": "tighter"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/compliance/policy"
        shown = client.get("/compliance/policy").text
    (sent,) = posts(apis)
    assert sent.body == {"policy": {"rules": [RULE], "note": "winter"}, "reason": "tighter"}
    assert sent.token == "token-of-adam"
    assert "Proposed version 4: another admin must approve it." in shown


@pytest.mark.parametrize(
    ("rules", "reason", "said"),
    [
        ("[{", "why", "rules: not JSON"),
        ('{"rules": []}', "why", "rules: a JSON list of rules"),
        ("[]", "", "reason: say why"),
    ],
)
def test_a_proposal_that_is_not_one_is_refused_here_with_what_was_typed_kept(
    rules: str, reason: str, said: str
) -> None:
    apis = FakeApis()
    policy_api(apis)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        token = csrf(client, "/compliance/policy")
        response = client.post(
            "/compliance/policy/proposals", data={"_csrf_token": token, "rules": rules, "reason": reason}
        )
    assert response.status_code == 400
    assert said in response.text
    assert posts(apis) == []


def test_payouts_422_field_errors_are_listed_beside_the_form() -> None:
    apis = FakeApis()
    policy_api(apis)
    errors = [
        {
            "key": "policy.rules.0.kyc_above.window_s",
            "message": "Input should be greater than or equal to 60",
            "source": "body",
        }
    ]
    apis.on(
        "POST",
        "payouts",
        PROPOSALS,
        ApiProblem(
            422,
            "validation_error",
            "Unprocessable Content",
            "Validation failed for POST",
            "payouts",
            {"errors": errors},
        ),
    )
    typed = json.dumps([{"kyc_above": {"amount": 1, "window_s": 5}}])
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        token = csrf(client, "/compliance/policy")
        response = client.post(
            "/compliance/policy/proposals", data={"_csrf_token": token, "rules": typed, "reason": "test"}
        )
    assert response.status_code == 422
    assert "rules.0.kyc_above.window_s: Input should be greater than or equal to 60" in response.text
    assert 'role="alert" id="propose-errors"' in response.text
    assert "&#34;window_s&#34;: 5" in response.text or "&quot;window_s&quot;: 5" in response.text  # kept


def test_the_proposer_is_never_offered_approve_or_reject_and_another_admin_is() -> None:
    apis = FakeApis()
    policy_api(apis, [proposal(by="adam")])
    sessions = MemorySessions()
    with console(apis, sessions=sessions) as (adam, _, idp):
        sign_in(adam, idp, "adam", "admin")
        own = adam.get("/compliance/policy").text
    with console(apis, sessions=sessions) as (ava, _, idp):
        sign_in(ava, idp, "ava", "admin")
        other = ava.get("/compliance/policy").text
    assert "/compliance/policy/proposals/11/approve" not in own
    assert "/compliance/policy/proposals/11/reject" not in own
    assert "You proposed it: another admin approves or rejects it." in own
    assert 'action="/compliance/policy/proposals/11/approve"' in other
    assert 'action="/compliance/policy/proposals/11/reject"' in other
    assert 'name="_csrf_token"' in other


@pytest.mark.parametrize(
    ("decision", "said"),
    [("approve", "Approved: version 4 is the active risk policy"), ("reject", "Rejected version 4.")],
)
def test_another_admin_decides_with_a_reason_and_the_outcome_is_the_pages_message(decision: str, said: str) -> None:
    apis = FakeApis()
    policy_api(apis, [proposal(by="adam")])
    apis.on("POST", "payouts", f"{PROPOSALS}/11/{decision}", lambda call: proposal(status="active"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "ava", "admin")
        token = csrf(client, "/compliance/policy")
        response = client.post(
            f"/compliance/policy/proposals/11/{decision}",
            data={"_csrf_token": token, "reason": "checked"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        shown = client.get("/compliance/policy").text
    (sent,) = posts(apis)
    assert sent.body == {"reason": "checked"}
    assert said in shown


def test_payouts_refusal_of_a_decision_is_shown_and_a_decision_without_reason_is_not_sent() -> None:
    apis = FakeApis()
    policy_api(apis, [proposal(by="adam")])
    apis.on(
        "POST",
        "payouts",
        f"{PROPOSALS}/11/approve",
        ApiProblem(409, "stale_policy", "Conflict", "version 5 became active after this proposal", "payouts"),
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "ava", "admin")
        token = csrf(client, "/compliance/policy")
        client.post("/compliance/policy/proposals/11/approve", data={"_csrf_token": token, "reason": " "})
        assert posts(apis) == []
        shown = client.post("/compliance/policy/proposals/11/approve", data={"_csrf_token": token, "reason": "ok"}).text
    assert "Conflict: version 5 became active after this proposal (stale_policy)" in shown


def test_a_policy_payouts_cannot_give_is_said_as_an_alert() -> None:
    apis = FakeApis()
    apis.on(
        "GET",
        "payouts",
        POLICY,
        ApiProblem(503, "service_unavailable", "Service unavailable", "payouts did not answer; try again", "payouts"),
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        response = client.get("/compliance/policy")
    assert response.status_code == 502
    assert 'role="alert">payouts: Service unavailable' in response.text
    assert "Active: none" not in response.text


def test_a_csrf_less_proposal_is_refused_before_payouts() -> None:
    apis = FakeApis()
    policy_api(apis)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        response = client.post("/compliance/policy/proposals", data={"rules": "[]", "reason": "x"})
    assert response.status_code == 403
    assert posts(apis) == []


# --- sanctions lists -------------------------------------------------------------------------------------------


def test_the_loaded_lists_are_shown_and_an_admin_refreshes_them_now() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", LISTS, LOADED)
    apis.on("POST", "payouts", REFRESH, lambda call: [{**LOADED[0], "version": "2026-11-25"}, LOADED[1]])
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        text = client.get("/compliance/lists").text
        assert "17,412" in text
        assert "<code>2026-11-24</code>" in text
        assert "eu_consolidated" in text
        token = csrf(client, "/compliance/lists")
        response = client.post("/compliance/lists/refresh", data={"_csrf_token": token}, follow_redirects=False)
        assert response.status_code == 303
        shown = client.get("/compliance/lists").text
    (sent,) = posts(apis)
    assert sent.timeout_s is not None
    assert sent.timeout_s > 10
    assert "Refreshed the sanctions lists: ofac_sdn 2026-11-25, eu_consolidated 2026-11-23." in shown


def test_an_approver_reads_the_lists_without_the_refresh_button() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", LISTS, [])
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        text = client.get("/compliance/lists").text
    assert "Refresh now" not in text
    assert "No sanctions list is loaded yet." in text


# --- the gate's hold on the approvals page ---------------------------------------------------------------------


def held(code: str, detail: str | None = "ofac_sdn sdn-36524 (score 0.93)") -> dict[str, Any]:
    return {
        "id": "po-9",
        "state": "pending_approval",
        "player_id": "player-7",
        "requested_by": "player-7",
        "asset": "USDC",
        "amount": USDC,
        "destination_type": "stellar_account",
        "destination_address": "G" + "A" * 55,
        "provider_name": "stellar",
        "approval_policy": "dual",
        "approvals": [],
        "created_at": "2026-11-25T08:00:00Z",
        "hold_code": code,
        "hold_detail": detail,
    }


def test_a_payout_held_by_a_screening_hit_carries_its_badge_and_detail_in_the_queue_and_on_its_page() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", "/payouts", {"items": [held("screening_hit")]})
    apis.on("GET", "payouts", "/payouts/po-9", held("screening_hit"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        queue = client.get("/approvals").text
        detail = client.get("/approvals/po-9").text
    for text in (queue, detail):
        assert 'class="badge hold-screening_hit hold-alarm">Screening hit — two approvers<' in text
        assert "Detail: ofac_sdn sdn-36524 (score 0.93)." in text


def test_a_payout_waiting_for_the_players_rescreen_shows_its_badge_and_no_approve_form() -> None:
    apis = FakeApis()
    pending = held("screening_pending", "the player's identity screening predates the loaded sanctions lists")
    apis.on("GET", "payouts", "/payouts", {"items": [pending]})
    apis.on("GET", "payouts", "/payouts/po-9", pending)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        queue = client.get("/approvals").text
        detail = client.get("/approvals/po-9").text
    for text in (queue, detail):
        assert 'class="badge hold-screening_pending hold-wait">Waits for the player' in text
    assert "sanctions re-screening against the lists loaded" in detail
    assert 'action="/approvals/po-9/approve"' not in detail
    assert 'action="/approvals/po-9/reject"' in detail


def test_gate_hold_words_and_risk_signals() -> None:
    kyc = gate_hold(held("kyc_required"))
    assert kyc is not None
    assert "verified" in kyc.label
    policy = gate_hold(held("policy"))
    assert policy is not None
    assert policy.label == "Risk policy hold — a person decides"
    assert gate_hold({**held("policy"), "state": "approved"}) is None
    assert gate_hold({"state": "pending_approval"}) is None
    unknown = gate_hold(held("new_code"))
    assert unknown is not None
    assert unknown.label == "Held by the compliance gate (new_code)"
    assert (unknown.badge, unknown.approvable, unknown.waits) == ("badge hold-new_code", True, None)
    (signal, *_) = risk_signals(held("screening_hit", None), None)
    assert signal.code == "gate_screening_hit"
    assert signal.text == "Screening hit — two approvers."


# --- words -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (60, "1 minute"),
        (3_600, "1 hour"),
        (86_400, "1 day"),
        (30 * 86_400, "30 days"),
        (93_600, "1 day 2 hours"),
        (90, "1 minute 30 seconds"),
        (0, "0 seconds"),
        (86_461, "1 day 1 minute"),
    ],
)
def test_windows_read_in_human_units(seconds: int, words: str) -> None:
    assert duration_words(seconds) == words


def test_a_rule_without_an_asset_says_its_amounts_are_minor_units_and_an_empty_rule_says_so() -> None:
    lines = rule_lines({"kyc_above": {"amount": 100_000, "window_s": 604_800}})
    assert lines == [
        "Identity verification required once the player's claims exceed 100,000 minor units of the "
        "request's asset in 7 days"
    ]
    assert rule_lines({}) == ["No limit (the rule names no clause)"]
    assert policy_rules({"rules": [{}, "junk"]})[0].scope == "Every request"
    assert rule_lines({"allowed_rails": ["stellar", "stripe"]}) == ["Only these rails: stellar, stripe"]
    assert rule_lines({"destination_limit": {"amount": 250, "window_s": 86_400}, "scope": {"asset": "USD"}}) == [
        "Refused above 2.50 USD per destination in 1 day"
    ]


def test_the_offer_on_a_proposal() -> None:
    adam, ava = Viewer.of("adam", None, ["admin"]), Viewer.of("ava", None, ["admin"])
    alice = Viewer.of("alice", None, ["approver"])
    assert not proposal_offer(adam, proposal(by="adam")).decide
    assert proposal_offer(ava, proposal(by="adam")).decide
    assert not proposal_offer(alice, proposal(by="adam")).decide
    decided = proposal_offer(ava, proposal(status="rejected"))
    assert not decided.decide
    assert decided.note is None


def test_reasons_of_any_shape_are_shown() -> None:
    assert (
        reason_words({"finding": "kyc_required", "rule": 2, "detail": "d"})
        == "identity verification required (rule 2): d"
    )
    assert reason_words({"finding": "something_new"}) == "something new"
    assert reason_words("a plain sentence") == "a plain sentence"
    hit = {"finding": "screening_hit", "subject": "destination", "source": "ofac_sdn", "entry_uid": "sdn-1",
           "entry_name": "X", "kind": "address", "score": 1.0}  # fmt: skip
    assert reason_words(hit) == 'sanctions screening hit: destination: ofac_sdn sdn-1 "X" (address, score 1.0)'
    player = {"finding": "screening_hit", "subject": "player", "source": "player_screening"}
    assert reason_words(player) == "sanctions screening hit: player: player_screening"
    missing = {"finding": "screening_unavailable", "missing": ["un", "eu"]}
    assert reason_words(missing) == "screening not possible: lists not loaded: un, eu"


def test_a_payout_waiting_for_verification_is_never_offered_approve_only_reject() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", "/payouts/po-9", held("kyc_required", None))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        text = client.get("/approvals/po-9").text
    assert escape("This payout waits for the player's identity verification") in text
    assert 'action="/approvals/po-9/approve"' not in text
    assert 'action="/approvals/po-9/reject"' in text


def test_a_screening_hit_says_two_approvers_and_links_the_players_screening() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", "/payouts/po-9", held("screening_hit"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        text = client.get("/approvals/po-9").text
    assert "two different approvers must approve it" in text
    assert 'href="/compliance?player_id=player-7"' in text
    assert 'action="/approvals/po-9/approve"' in text


@pytest.mark.parametrize("kind", PAYOUT_HOLD_KINDS.values(), ids=lambda k: k.code.value)
def test_each_hold_kind_is_drawn_from_its_row_approve_only_where_people_release_it(kind: PayoutHoldKind) -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", "/payouts/po-9", held(kind.code.value, None))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        text = client.get("/approvals/po-9").text
    assert escape(kind.label) in text
    assert ('action="/approvals/po-9/approve"' in text) is (kind.refused_with is None)
    assert 'action="/approvals/po-9/reject"' in text
    if kind.refused_with is not None:
        assert escape(WAITS_FOR[kind.released_by]) in text


def test_every_way_a_hold_moves_on_without_people_has_its_words() -> None:
    assert set(WAITS_FOR) == set(ReleasedBy) - {ReleasedBy.APPROVERS}


def test_a_hold_this_console_does_not_know_is_named_and_left_to_payouts_to_decide() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", "/payouts", {"items": [held("brand_new")]})
    apis.on("GET", "payouts", "/payouts/po-9", held("brand_new"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        queue = client.get("/approvals").text
        detail = client.get("/approvals/po-9").text
    for text in (queue, detail):
        assert 'class="badge hold-brand_new">Held by the compliance gate (brand_new)<' in text
    assert 'action="/approvals/po-9/approve"' in detail


# --- the player's own verification -----------------------------------------------------------------------------

ME = "/v1/me/verification"
NEXT = "Verify your identity to withdraw."


def test_a_player_sees_their_status_and_next_step_then_follows_a_fresh_link_to_the_hosted_flow() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", ME, {"status": "not_started", "message": NEXT})
    url = "https://kyc.test/websdk/p/abc?lang=en"
    apis.on("POST", "payouts", ME, {"status": "pending", "url": url, "message": "Finish verifying your identity."})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "player-1", "player")
        shown = client.get("/wallet/verification").text
        assert ">not started</span> Verify your identity to withdraw." in shown
        assert 'action="/wallet/verification"' in shown
        token = csrf(client, "/wallet/verification")
        started = client.post("/wallet/verification", data={"_csrf_token": token})
    assert started.status_code == 200
    assert f'href="{url.replace("&", "&amp;")}"' in started.text
    assert "Continue to identity verification" in started.text
    (sent,) = posts(apis)
    assert (sent.path, sent.token) == (ME, "token-of-player-1")


def test_a_link_that_is_not_a_web_address_is_never_put_in_the_page() -> None:
    apis = FakeApis()
    apis.on("POST", "payouts", ME, {"status": "pending", "url": "javascript:alert(1)", "message": "m"})
    apis.on("GET", "payouts", ME, {"status": "pending", "message": "m"})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "player-1", "player")
        token = csrf(client, "/wallet/verification")
        text = client.post("/wallet/verification", data={"_csrf_token": token}).text
    assert "javascript:" not in text
    assert "Continue to identity verification" not in text


def test_a_verified_player_is_offered_nothing_and_staff_cannot_use_the_players_page() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", ME, {"status": "verified", "message": ""})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "player-1", "player")
        assert 'action="/wallet/verification"' not in client.get("/wallet/verification").text
    with console(FakeApis()) as (client, fake, idp):
        sign_in(client, idp, "adam", "admin")
        assert client.get("/wallet/verification").status_code == 403
        token = csrf(client, "/")
        assert client.post("/wallet/verification", data={"_csrf_token": token}).status_code == 403
        assert fake.calls == []


def test_a_claim_waiting_for_verification_says_the_next_step_and_links_the_verification() -> None:
    apis = FakeApis()
    claim = {"claim_id": "cl-1", "player_id": "player-1", "asset": "USDC", "amount": USDC, "status": "held",
             "destination": {"type": "stellar_account", "address": "G" + "A" * 55}, "hold_code": "kyc_required",
             "rejection_code": None, "next_step": NEXT, "payout_id": None,
             "created_at": "2026-11-25T08:00:00Z"}  # fmt: skip
    apis.on("GET", "rewards", "/claims/cl-1", claim)
    apis.on("GET", "rewards", "/wallets/player-1", {"player_id": "player-1", "balances": [], "receivables": []})
    apis.on("GET", "rewards", "/wallets/player-1/transactions", {"items": [], "next_cursor": None})
    apis.on("GET", "rewards", "/wallets/player-1/claims", {"items": [claim]})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "player-1", "player")
        status = client.get("/wallet/claims/cl-1").text
        wallet = client.get("/wallet").text
    for text in (status, wallet):
        assert NEXT in text
        assert 'href="/wallet/verification"' in text


def test_a_verification_payouts_cannot_give_is_said() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", ME, ApiProblem(503, "service_unavailable", "Service unavailable", "try again",
                                            "payouts"))  # fmt: skip
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "player-1", "player")
        response = client.get("/wallet/verification")
    assert response.status_code == 503
    assert 'role="alert">payouts: Service unavailable' in response.text
