"""The compliance gate's rule (prizeflow_payouts/domain/gate.py): allow, hold (kyc_required, screening_hit, policy) or
refuse, and the property that matters most: a sanctioned destination or player is never allowed."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prizeflow_contracts.events.payouts import ApprovalPolicy
from prizeflow_contracts.policy import Action, Finding, Hit, Verdict
from prizeflow_contracts.providers import DestinationType, PayoutDestination, destination_key
from prizeflow_payouts.application import gate as payouts_gate
from prizeflow_payouts.domain.gate import (
    Clearance,
    GateInput,
    HoldCode,
    Release,
    Screening,
    Stage,
    SubjectKind,
    clearances_from_reasons,
    decide,
    people_release,
    policy_findings,
)
from prizeflow_rewards.application.claims import submit as rewards_claims

KEY = "a" * 64


@dataclass(frozen=True)
class Match:
    source: str = "ofac_sdn"
    entry_uid: str = "12345"
    entry_name: str = "Listed Wallet"
    kind: str = "address"
    score: int = 1000


CLEAR = Screening((), {"ofac_sdn": "2026-11-20"})


def gate(
    *,
    stage: Stage = Stage.REQUEST,
    hits: tuple[Hit, ...] = (),
    screening: Screening | None = CLEAR,
    player_hit: bool = False,
    cleared: tuple[Clearance, ...] = (),
    missing: tuple[str, ...] = (),
    released: bool | Release = False,
    player_matches: tuple[Match, ...] = (),
    version: int = 7,
) -> GateInput:
    """`released=True`: people released this payout's `policy` hold under version 7 with these very findings."""
    verdict = Verdict(version, hits)
    return GateInput(
        stage=stage,
        player_id="player-1",
        player_screening_hit=player_hit,
        destination_key=KEY,
        verdict=verdict,
        screening=screening,
        cleared=cleared,
        missing_lists=missing,
        released=_release(released, Verdict(7, hits)),
        player_matches=player_matches,
    )


def _release(released: bool | Release, shown: Verdict) -> Release | None:
    if isinstance(released, Release):
        return released
    return Release(shown.policy_version, frozenset(policy_findings(shown))) if released else None


def hit(finding: Finding) -> Hit:
    return Hit(finding, 0, f"{finding.value} detail 12345")


@pytest.mark.parametrize(
    "destination",
    [
        PayoutDestination(type=DestinationType.SANDBOX, address="success:p1"),
        PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address="G" + "A" * 55, memo="42"),
    ],
)
def test_destination_key_is_rewards_key(destination: PayoutDestination) -> None:
    # One function in contracts keys a destination in both services (their window sums must meet).
    payouts_key, rewards_key = vars(payouts_gate)["destination_key"], vars(rewards_claims)["destination_key"]
    assert payouts_key is rewards_key is destination_key
    assert payouts_key(destination) == rewards_key(destination) == destination_key(destination)


def test_clear_and_no_findings_is_allowed_with_versions_recorded() -> None:
    d = decide(gate())
    assert d.action is Action.ALLOW
    assert d.hold is None
    assert d.list_versions == {"ofac_sdn": "2026-11-20"}
    assert d.policy_version == 7


def test_verification_alone_holds_kyc_required_with_the_players_next_step() -> None:
    d = decide(gate(hits=(hit(Finding.KYC_REQUIRED),)))
    assert (d.action, d.hold, d.approval_policy) == (Action.HOLD, HoldCode.KYC_REQUIRED, None)
    assert d.player_message == "Verify your identity to withdraw."
    assert "12345" not in (d.player_message or "")


@pytest.mark.parametrize("stage", list(Stage))
def test_a_destination_match_holds_for_two_people_whatever_the_policy(stage: Stage) -> None:
    d = decide(gate(stage=stage, screening=Screening((Match(),), {"ofac_sdn": "v1"})))
    assert (d.action, d.hold, d.approval_policy) == (Action.HOLD, HoldCode.SCREENING_HIT, ApprovalPolicy.DUAL)
    assert d.matches == (Match(),)
    assert {"finding": "screening_hit", "subject": "destination", "source": "ofac_sdn"}.items() <= dict(
        d.reasons[0]
    ).items()
    assert d.player_message is None  # a player is never told of a list or an entry


def test_a_players_own_hit_holds_and_its_clearance_releases_it() -> None:
    entry = (Match(entry_uid="SDN-P", kind="name", score=930),)
    held = decide(gate(player_hit=True, player_matches=entry))
    assert held.hold is HoldCode.SCREENING_HIT
    cleared = clearances_from_reasons(held.reasons, player_id="player-1", destination=KEY)
    assert cleared == [Clearance(SubjectKind.PLAYER, "player-1", "ofac_sdn", "SDN-P")]
    assert decide(gate(player_hit=True, player_matches=entry, cleared=tuple(cleared))).action is Action.ALLOW
    # A hit that names no entry is never cleared (fail closed), not even by the legacy wholesale clearance.
    legacy = decide(gate(player_hit=True))
    assert legacy.hold is HoldCode.SCREENING_HIT
    wholesale = tuple(clearances_from_reasons(legacy.reasons, player_id="player-1", destination=KEY))
    assert decide(gate(player_hit=True, cleared=wholesale)).hold is HoldCode.SCREENING_HIT


def test_a_cleared_match_does_not_hold_again_but_a_new_one_does() -> None:
    first = Screening((Match(),), {"ofac_sdn": "v1"})
    held = decide(gate(screening=first))
    cleared = tuple(clearances_from_reasons(held.reasons, player_id="player-1", destination=KEY))
    assert cleared == (Clearance(SubjectKind.DESTINATION, KEY, "ofac_sdn", "12345"),)
    assert decide(gate(screening=first, cleared=cleared)).action is Action.ALLOW
    both = Screening((Match(), Match(source="eu", entry_uid="EU-9")), {"ofac_sdn": "v1", "eu": "v3"})
    again = decide(gate(screening=both, cleared=cleared))
    assert again.hold is HoldCode.SCREENING_HIT
    assert [m.entry_uid for m in again.matches] == ["EU-9"]
    # A clearance of another destination or another entry clears nothing here.
    other = (Clearance(SubjectKind.DESTINATION, "b" * 64, "ofac_sdn", "12345"),)
    assert decide(gate(screening=first, cleared=other)).hold is HoldCode.SCREENING_HIT


def test_no_screening_answer_holds_fail_closed() -> None:
    assert decide(gate(screening=None)).hold is HoldCode.SCREENING_HIT
    missing = decide(gate(missing=("un",)))
    assert (missing.action, missing.hold) == (Action.HOLD, HoldCode.SCREENING_HIT)
    assert "un" in missing.detail


def test_failed_verification_refuses_at_request_and_holds_for_a_person_at_send() -> None:
    failed = (hit(Finding.KYC_FAILED),)
    refused = decide(gate(hits=failed))
    assert (refused.action, refused.refusal) == (Action.REFUSE, Finding.KYC_FAILED)
    assert "12345" not in (refused.player_message or "")
    at_send = decide(gate(stage=Stage.SEND, hits=failed))
    assert (at_send.action, at_send.hold) == (Action.HOLD, HoldCode.POLICY)


@pytest.mark.parametrize(
    "finding", [Finding.VELOCITY, Finding.NEW_DESTINATION, Finding.PLAYER_LIMIT, Finding.RAIL_NOT_ALLOWED]
)
@pytest.mark.parametrize("stage", [Stage.REQUEST, Stage.SEND])
def test_other_findings_hold_for_a_person(finding: Finding, stage: Stage) -> None:
    d = decide(gate(stage=stage, hits=(hit(finding),)))
    assert (d.action, d.hold, d.approval_policy) == (Action.HOLD, HoldCode.POLICY, ApprovalPolicy.SINGLE)
    assert finding.value in d.detail


def test_people_who_released_a_hold_decided_its_policy_but_never_verification_nor_screening() -> None:
    assert decide(gate(stage=Stage.SEND, hits=(hit(Finding.VELOCITY),), released=True)).action is Action.ALLOW
    kyc = decide(gate(stage=Stage.SEND, hits=(hit(Finding.VELOCITY), hit(Finding.KYC_REQUIRED)), released=True))
    assert kyc.hold is HoldCode.KYC_REQUIRED
    screened = decide(gate(stage=Stage.SEND, released=True, screening=Screening((Match(),), {})))
    assert screened.hold is HoldCode.SCREENING_HIT


def test_a_release_answers_the_version_and_the_findings_it_was_shown() -> None:
    """Issue 43: a release under version 7 is no decision on version 8, whatever 8 finds (the same rule tightened
    included), nor on a finding of 7 nobody was shown; fewer findings than were shown stay decided."""
    limit, rail = Hit(Finding.PLAYER_LIMIT, 0, "50 > 10"), Hit(Finding.RAIL_NOT_ALLOWED, 1, "rail sandbox")
    shown = Release(7, frozenset(policy_findings(Verdict(7, (limit,)))))
    assert shown.findings == {"player_limit@0"}
    same = decide(gate(stage=Stage.SEND, hits=(Hit(Finding.PLAYER_LIMIT, 0, "60 > 10"),), released=shown))
    assert same.action is Action.ALLOW  # the amount grew, the finding is the one they decided
    later = decide(gate(stage=Stage.SEND, hits=(limit,), released=shown, version=8))
    assert (later.action, later.hold, later.approval_policy) == (Action.HOLD, HoldCode.POLICY, ApprovalPolicy.SINGLE)
    assert (later.policy_version, later.findings) == (8, ("player_limit@0",))
    assert later.detail.startswith("policy v8: ")
    another = decide(gate(stage=Stage.SEND, hits=(limit, rail), released=shown))
    assert another.hold is HoldCode.POLICY
    assert another.findings == ("player_limit@0", "rail_not_allowed@1")
    assert decide(gate(stage=Stage.SEND, hits=(), released=shown, version=8)).action is Action.ALLOW


def test_only_a_recorded_policy_hold_is_a_release() -> None:
    assert people_release("policy", 3, ["velocity@0"]) == Release(3, frozenset({"velocity@0"}))
    assert people_release("policy", None, None) is None  # recorded without its version: asked again
    for code in ("screening_hit", "screening_pending", "kyc_required", None):
        assert people_release(code, 3, ["velocity@0"]) is None


findings_st = st.sampled_from([f for f in Finding if f not in (Finding.KYC_REQUIRED, Finding.KYC_FAILED)])
people_hits = st.lists(st.builds(Hit, findings_st, st.integers(0, 3), st.just("d")), min_size=1, max_size=4)


@given(
    shown=people_hits,
    now=people_hits,
    shown_version=st.integers(1, 5),
    version=st.integers(1, 5),
    stage=st.sampled_from([Stage.SEND, Stage.APPROVAL]),
)
def test_a_release_never_allows_what_it_was_not_shown(
    shown: list[Hit], now: list[Hit], shown_version: int, version: int, stage: Stage
) -> None:
    """Allowed only when the version is the one shown and every finding now was shown; otherwise a `policy` hold
    for people."""
    release = Release(shown_version, frozenset(policy_findings(Verdict(shown_version, tuple(shown)))))
    d = decide(gate(stage=stage, hits=tuple(now), released=release, version=version))
    decided = version == shown_version and set(policy_findings(Verdict(version, tuple(now)))) <= release.findings
    assert (d.action is Action.ALLOW) is decided
    if not decided:
        assert (d.hold, d.approval_policy) == (HoldCode.POLICY, ApprovalPolicy.SINGLE)


# -- the property: a sanctioned destination or player is never allowed --------------------------------------------
findings = st.sampled_from(list(Finding))
hits_st = st.lists(st.builds(Hit, findings, st.integers(0, 5), st.text(max_size=20)), max_size=4).map(tuple)
matches_st = st.lists(
    st.builds(
        Match,
        source=st.sampled_from(["ofac_sdn", "eu", "un"]),
        entry_uid=st.text("0123456789", min_size=1, max_size=4),
        score=st.integers(0, 1000),
    ),
    min_size=1,
    max_size=3,
).map(tuple)
other_clearances = st.lists(
    st.builds(
        Clearance,
        st.just(SubjectKind.DESTINATION),
        st.sampled_from(["b" * 64, KEY]),
        st.sampled_from(["ofac_sdn", "eu", "un"]),
        st.text("abc", min_size=1, max_size=3),  # never one of the matched entry uids (digits)
    ),
    max_size=3,
).map(tuple)


@given(
    stage=st.sampled_from(list(Stage)),
    hits=hits_st,
    matches=matches_st,
    released=st.booleans(),
    player_hit=st.booleans(),
    cleared=other_clearances,
    version=st.integers(0, 10**6),
)
def test_a_sanctioned_destination_is_never_allowed(
    stage: Stage,
    hits: tuple[Hit, ...],
    matches: tuple[Match, ...],
    released: bool,
    player_hit: bool,
    cleared: tuple[Clearance, ...],
    version: int,
) -> None:
    g = GateInput(
        stage=stage,
        player_id="player-1",
        player_screening_hit=player_hit,
        destination_key=KEY,
        verdict=Verdict(version, hits),
        screening=Screening(matches, {"ofac_sdn": "v"}),
        cleared=cleared,
        released=Release(version, frozenset(policy_findings(Verdict(version, hits)))) if released else None,
    )
    d = decide(g)
    assert d.action is not Action.ALLOW
    if d.action is Action.HOLD:
        assert d.hold is HoldCode.SCREENING_HIT
        assert d.approval_policy is ApprovalPolicy.DUAL
    else:  # refused outright (a failed verification at request time): never paid either
        assert stage is Stage.REQUEST


@given(stage=st.sampled_from(list(Stage)), hits=hits_st, released=st.booleans(), unavailable=st.booleans())
def test_a_sanctioned_player_or_an_unscreened_payout_is_never_allowed(
    stage: Stage, hits: tuple[Hit, ...], released: bool, unavailable: bool
) -> None:
    g = GateInput(
        stage=stage,
        player_id="player-1",
        player_screening_hit=not unavailable,
        destination_key=KEY,
        verdict=Verdict(1, hits),
        screening=None if unavailable else CLEAR,
        released=Release(1, frozenset(policy_findings(Verdict(1, hits)))) if released else None,
    )
    assert decide(g).action is not Action.ALLOW


def test_one_wallet_spelled_differently_is_one_destination() -> None:
    """Every form of one TON wallet (bounceable, non-bounceable, test-only, raw in either case, as a ton_wallet or
    as a crypto_address), an EVM address in either case, a memo with spaces around it: one key, so a
    per-destination limit, first use and a clearance see one destination."""
    from prizeflow_ton.addresses import parse_address

    ton = parse_address("UQBp4MMLFpzSe5t3EugHZonZFMyWl9owGKQiDaiaC-zuO5ZB")
    spellings = (
        ton.friendly(bounceable=True),
        ton.friendly(bounceable=False),
        ton.friendly(bounceable=True, test_only=True),
        ton.friendly(bounceable=False).replace("-", "+").replace("_", "/"),
        ton.raw,
        ton.raw.upper(),
    )
    keys = {
        destination_key(PayoutDestination(type=kind, address=spelling))
        for spelling in spellings
        for kind in (DestinationType.TON_WALLET, DestinationType.CRYPTO_ADDRESS)
    }
    assert len(keys) == 1
    evm = {
        destination_key(PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address=a, memo=m))
        for a in ("0xAbC0000000000000000000000000000000000001", "0xabc0000000000000000000000000000000000001")
        for m in ("42", " 42 ")
    }
    assert len(evm) == 1
    # Still told apart: another memo (whose account at a shared deposit address), another wallet.
    assert (
        destination_key(PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address=ton.raw, memo="7")) not in keys
    )
    other = parse_address("0:" + "ab" * 32).raw
    assert destination_key(PayoutDestination(type=DestinationType.TON_WALLET, address=other)) not in keys
