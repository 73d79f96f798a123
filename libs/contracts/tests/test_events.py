"""Every registered event: envelope round trip, decode refusals, and validation of bad values."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from prizeflow_contracts import events as ev
from prizeflow_contracts.envelope import (
    HEADER_CORRELATION,
    HEADER_ID,
    HEADER_TYPE,
    EventPayload,
    decode,
    draft_event,
    event_id_for,
    event_types,
    follow,
    new_event,
    register_upcaster,
    stage_event,
    stage_events,
)
from prizeflow_contracts.errors import EventRefusal
from prizeflow_testkit.events import AT, all_examples, example_data, example_payload

ALL_TYPES = sorted(event_types().items())


def _invalid(cls: type[EventPayload], match: str, **overrides: Any) -> None:
    with pytest.raises(ValidationError, match=match):
        cls.model_validate({**example_data(cls), **overrides})


@pytest.mark.parametrize(("event_type", "cls"), ALL_TYPES, ids=[t for t, _ in ALL_TYPES])
def test_envelope_round_trip(event_type: str, cls: type[EventPayload]) -> None:
    payload = example_payload(cls)
    env = new_event(payload, source="test", correlation_id="flow-1", subject="s-1", time=AT)
    decoded = decode(env.encode())
    assert decoded == env
    assert env.staged().payload == env.encode()  # the outbox's document is the envelope's, byte for byte
    assert decoded.type == event_type
    assert type(decoded.data) is cls
    assert decoded.data == payload
    assert decoded.key == b"flow-1"
    headers = dict(env.headers())
    assert headers[HEADER_TYPE] == event_type.encode()
    assert headers[HEADER_ID] == str(env.id).encode()
    assert headers[HEADER_CORRELATION] == b"flow-1"
    with pytest.raises(ValidationError, match="frozen"):
        setattr(payload, next(iter(cls.model_fields)), "x")


@pytest.mark.parametrize(("event_type", "cls"), ALL_TYPES, ids=[t for t, _ in ALL_TYPES])
@pytest.mark.parametrize("subject", [None, "s-1"])
@pytest.mark.parametrize(
    "at", [AT, AT.astimezone(timezone(timedelta(hours=-3, minutes=-30))), AT.replace(microsecond=0)]
)
def test_stage_event_is_new_event_encoded(
    event_type: str, cls: type[EventPayload], subject: str | None, at: Any
) -> None:
    """The outbox fast path writes the document `new_event(...).encode()` would: decoded, they are equal."""
    payload = example_payload(cls)
    cause = uuid.uuid4()
    args: dict[str, Any] = {"source": '/prizeflow/t "q"', "correlation_id": "flow-1", "subject": subject}
    staged = stage_event(payload, causation_id=cause, event_id=event_id_for("x"), time=at, **args)
    env = new_event(payload, causation_id=cause, event_id=event_id_for("x"), time=at, **args)
    assert decode(staged.payload) == env
    assert staged == env.staged()  # byte for byte
    assert staged.payload == env.encode()
    assert (staged.id, staged.type, staged.topic, staged.key) == (env.id, event_type, cls.TOPIC.name, b"flow-1")
    assert json.loads(staged.headers_json) == {k: v.decode() for k, v in env.headers()}


@pytest.mark.parametrize(("event_type", "cls"), ALL_TYPES, ids=[t for t, _ in ALL_TYPES])
@pytest.mark.parametrize("subject", [None, "s-1"])
@pytest.mark.parametrize("at", [AT, AT.astimezone(timezone(timedelta(hours=5, minutes=30)))])
def test_an_event_draft_is_the_envelope_new_event_makes(
    event_type: str, cls: type[EventPayload], subject: str | None, at: Any
) -> None:
    """A draft reads as the envelope, stages as its bytes, and becomes it: only its validation waits."""
    payload = example_payload(cls)
    args: dict[str, Any] = {"source": "/prizeflow/t", "correlation_id": "flow-1", "subject": subject}
    draft = draft_event(payload, causation_id=uuid.UUID(int=7), event_id=event_id_for("d"), time=at, **args)
    env = new_event(payload, causation_id=uuid.UUID(int=7), event_id=event_id_for("d"), time=at, **args)
    assert draft.envelope() == env
    assert draft.staged() == env.staged()  # byte for byte
    assert draft.encode() == env.encode()
    assert (draft.id, draft.type, draft.data, draft.key, draft.schemaversion) == (
        env.id,
        event_type,
        env.data,
        env.key,
        env.schemaversion,
    )
    assert (draft.source, draft.correlationid, draft.causationid, draft.subject, draft.time) == (
        env.source,
        env.correlationid,
        env.causationid,
        env.subject,
        env.time,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("correlation_id", "flow 1\n"),
        ("subject", ""),
        ("source", ""),
        ("causation_id", "c" * 129),
        ("time", AT.replace(tzinfo=None)),
    ],
)
def test_an_event_draft_an_envelope_would_refuse_is_refused_when_staged(field: str, value: Any) -> None:
    args: dict[str, Any] = {"source": "/prizeflow/t", "correlation_id": "flow-1", "subject": "s-1", "time": AT}
    draft = draft_event(example_payload(ev.RoundStateChanged), **{**args, field: value})
    with pytest.raises(ValueError):
        draft.staged()
    with pytest.raises(ValueError):
        draft.envelope()


@given(
    source=st.text(min_size=1, max_size=40),
    subject=st.text(min_size=1, max_size=40),
    cause=st.one_of(st.uuids(), st.text(min_size=1, max_size=40)),
)
def test_stage_event_writes_any_source_subject_and_cause_as_the_envelope_does(
    source: str, subject: str, cause: uuid.UUID | str
) -> None:
    """Plain values (ids, UUIDs, paths) skip the JSON encoder; anything else is escaped: both byte for byte."""
    payload = example_payload(ev.RoundStateChanged)
    args: dict[str, Any] = {"source": source, "correlation_id": "flow-1", "subject": subject, "causation_id": cause}
    staged = stage_event(payload, event_id=event_id_for("y"), time=AT, **args)
    env = new_event(payload, event_id=event_id_for("y"), time=AT, **args)
    assert staged == env.staged()
    assert staged.payload == env.encode()


def test_stage_events_shares_the_envelope_and_keeps_each_payload_its_own() -> None:
    """One command's events (different types, schema versions, topics) staged together are each the
    document `new_event` makes for it; a missing id becomes a fresh random one per event."""
    payloads = [example_payload(cls) for _, cls in ALL_TYPES]
    args: dict[str, Any] = {"source": "/s", "correlation_id": "flow-1", "subject": "s-1", "causation_id": "c-1"}
    ids = [event_id_for("z", i) for i in range(len(payloads))]
    staged = stage_events(list(zip(payloads, ids, strict=True)), time=AT, **args)
    assert staged == [new_event(p, event_id=i, time=AT, **args).staged() for p, i in zip(payloads, ids, strict=True)]
    fresh = stage_events([(payloads[0], None), (payloads[0], None)], time=AT, **args)
    assert fresh[0].id != fresh[1].id
    assert fresh[0].id.version == 4
    assert stage_events([], **args) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"correlation_id": "has space"},
        {"correlation_id": ""},
        {"source": ""},
        {"subject": "x" * 256},
        {"causation_id": "c" * 129},
        {"time": datetime(2026, 1, 1)},  # noqa: DTZ001 - the point: no offset
    ],
)
def test_stage_event_refuses_what_an_envelope_would(bad: dict[str, Any]) -> None:
    args: dict[str, Any] = {"source": "/s", "correlation_id": "flow-1", **bad}
    with pytest.raises(ValueError):
        stage_event(example_payload(ev.RoundSettled), **args)
    with pytest.raises(ValueError):
        new_event(example_payload(ev.RoundSettled), **args)


def test_every_event_type_is_registered_with_an_example() -> None:
    assert len(all_examples()) == len(event_types()) == 45


def test_follow_keeps_correlation_and_sets_causation() -> None:
    cause = new_event(example_payload(ev.RoundSettled), source="settlement", correlation_id="round-r-1")
    effect = follow(cause, example_payload(ev.RewardAllocated), source="rewards", event_id=event_id_for("a", 1))
    assert effect.correlationid == "round-r-1"
    assert effect.causationid == str(cause.id)
    assert effect.id == event_id_for("a", 1)
    assert isinstance(effect.id, uuid.UUID)


def test_event_id_for_is_deterministic() -> None:
    assert event_id_for("r-1", "p-1") == event_id_for("r-1", "p-1") != event_id_for("r-1", "p-2")


@given(st.lists(st.one_of(st.text(), st.integers()), min_size=1, max_size=5))
def test_event_id_for_is_rfc4122_uuid5(key: list[Any]) -> None:
    """The fast path mints exactly the ids `uuid.uuid5` did: ids already on Kafka and in inboxes stay valid."""
    expected = uuid.uuid5(uuid.UUID("6d1c0a0e-6b3f-4c55-9d0e-7f1f5a8e2b10"), "|".join(str(k) for k in key))
    got = event_id_for(*key)
    assert got == expected
    assert (got.version, got.variant) == (5, uuid.RFC_4122)


@given(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9:_.\-]{0,127}\Z"))
def test_headers_json_is_the_headers(correlation_id: str) -> None:
    env = new_event(example_payload(ev.RoundSettled), source="settlement", correlation_id=correlation_id)
    assert json.loads(env.headers_json()) == {k: v.decode() for k, v in env.headers()}


def test_same_name_on_two_topics_is_two_types() -> None:
    assert ev.GameRoundVoided.event_type() == "prizeflow.game.RoundVoided.v1"
    assert ev.RoundVoided.event_type() == "prizeflow.settlement.RoundVoided.v1"


def test_unknown_fields_are_ignored_within_a_version() -> None:
    env = new_event(example_payload(ev.RoundClosed), source="g", correlation_id="c")
    doc = json.loads(env.encode())
    doc["data"]["added_later"] = 1
    doc["added_extension"] = "x"
    assert decode(json.dumps(doc)).data == env.data


# --- decode refusals -------------------------------------------------------------------------------


def _doc() -> dict[str, Any]:
    env = new_event(example_payload(ev.RoundClosed), source="g", correlation_id="c-1")
    doc: dict[str, Any] = json.loads(env.encode())
    return doc


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1, 2]", "invalid_envelope"),
        (json.dumps({**_doc(), "type": "prizeflow.game.Nope.v1"}), "unknown_event_type"),
        (json.dumps({k: v for k, v in _doc().items() if k != "type"}), "unknown_event_type"),
        (json.dumps({**_doc(), "correlationid": "bad id with spaces"}), "invalid_envelope"),
        (json.dumps({**_doc(), "time": "2025-01-01T00:00:00"}), "invalid_envelope"),
        (json.dumps({**_doc(), "specversion": "0.3"}), "invalid_envelope"),
        (json.dumps({**_doc(), "data": {**_doc()["data"], "entry_count": -1}}), "invalid_payload"),
        (json.dumps({**_doc(), "data": {**_doc()["data"], "entry_count": 1.5}}), "invalid_payload"),
        (json.dumps({**_doc(), "data": "nope"}), "invalid_payload"),
    ],
)
def test_decode_refusals(raw: str | bytes, reason: str) -> None:
    with pytest.raises(EventRefusal) as info:
        decode(raw)
    assert info.value.reason == reason


def test_refusal_reason_must_be_known() -> None:
    with pytest.raises(ValueError, match="unknown refusal reason"):
        EventRefusal("whatever", "x")


def test_upcaster_rewrites_an_old_type() -> None:
    def up(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return ev.RoundClosed.event_type(), {**data, "entry_count": data.pop("entries")}

    register_upcaster("prizeflow.game.RoundClosedOld.v1", up)
    doc = {**_doc(), "type": "prizeflow.game.RoundClosedOld.v1"}
    doc["data"] = {"round_id": "r-1", "closed_at": "2025-01-01T00:00:00Z", "entries": 3}
    decoded = decode(json.dumps(doc))
    assert isinstance(decoded.data, ev.RoundClosed)
    assert decoded.data.entry_count == 3


# --- bad values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "overrides", "match"),
    [
        (ev.EntryRecorded, {"fee": {"asset": "USD", "amount": -1}}, "greater than or equal to 0"),
        (ev.EntryRecorded, {"fee": {"asset": "USD", "amount": 1.0}}, "valid integer"),
        (ev.EntryRecorded, {"fee": {"asset": "USD", "amount": "5"}}, "valid integer"),
        (ev.EntryRecorded, {"fee": {"asset": "DOGE", "amount": 1}}, "unknown asset 'DOGE'"),
        (ev.EntryRecorded, {"fee": {"asset": "USD", "amount": 2**63}}, "less than or equal to"),
        (ev.EntryRecorded, {"player_id": ""}, "should match pattern"),
        (ev.EntryRecorded, {"player_id": "a b"}, "should match pattern"),
        (ev.EntryRecorded, {"player_id": "x" * 129}, "should match pattern"),
        (ev.EntryRecorded, {"player_id": "-leading-dash"}, "should match pattern"),
        (ev.EntryRecorded, {"player_id": "p1\n"}, "should match pattern"),
        (ev.EntryRecorded, {"recorded_at": "2025-01-01T00:00:00"}, "timezone"),
        (ev.RoundOpened, {"platform_fee_bps": 10_001}, "less than or equal to 10000"),
        (ev.RoundOpened, {"platform_fee_bps": -1}, "greater than or equal to 0"),
        (ev.RoundOpened, {"platform_fee_bps": 6000, "organizer_fee_bps": 5000}, "must not exceed 10000"),
        (ev.RoundOpened, {"organizer_id": None}, "needs an organizer_id"),
        (
            ev.RoundOpened,
            {"distribution": {"template": "custom", "custom_bps": [5000, 4000]}},
            "sum to 10000",
        ),
        (ev.RoundOpened, {"distribution": {"template": "custom"}}, "needs custom_bps"),
        (ev.RoundOpened, {"distribution": {"template": "top3", "custom_bps": [10000]}}, "only allowed"),
        (ev.RoundOpened, {"distribution": {"template": "top4"}}, "winner_takes_all"),
        (ev.RoundOpened, {"prize": {"asset": "USDC", "amount": 1}}, "campaign_id"),
        (ev.RoundOpened, {"prize": {"asset": "USDC", "amount": 0, "campaign_id": "c"}}, "greater than 0"),
        (ev.RoundOpened, {"prize_source": "entry_pot"}, "omit prize.amount"),
        (ev.RoundResultsReported, {"placements": []}, "at least 1 item"),
        (
            ev.RoundResultsReported,
            {
                "placements": [
                    {"player_id": "p", "rank": 1, "score": 1},
                    {"player_id": "p", "rank": 2, "score": 0},
                ]
            },
            "more than once",
        ),
        (
            ev.RoundResultsReported,
            {"placements": [{"player_id": "p", "rank": 0, "score": 1}]},
            "greater than",
        ),
        (ev.RoundResultsReported, {"placements": [{"player_id": "p", "rank": 2, "score": 1}]}, "competition"),
        (
            ev.RoundResultsReported,
            {
                "placements": [
                    {"player_id": "a", "rank": 1, "score": 9},
                    {"player_id": "b", "rank": 1, "score": 9},
                    {"player_id": "c", "rank": 2, "score": 1},
                ]
            },
            "competition",
        ),
        (ev.RoundSettled, {"remainder": 0}, "must equal distributable"),
        (ev.RoundSettled, {"campaign_id": None}, "campaign_id is required"),
        (ev.RoundSettled, {"prize_source": "entry_pot"}, "from the pot"),
        (
            ev.RoundSettled,
            {
                "allocations": [
                    {"player_id": "p", "rank": 1, "amount": 50_000_000, "source": "pool"},
                    {"player_id": "p", "rank": 2, "amount": 30_000_000, "source": "pool"},
                ]
            },
            "more than one allocation",
        ),
        (ev.RoundStateChanged, {"from_state": "settled", "to_state": "voided"}, "final"),
        (ev.RoundStateChanged, {"from_state": "open", "to_state": "open"}, "must change"),
        (ev.ClaimApproved, {"amount": {"asset": "SP", "amount": 10}}, "not redeemable"),
        (ev.ClaimApproved, {"amount": {"asset": "USDC", "amount": 0}}, "must be positive"),
        (ev.PayoutRequested, {"idempotency_key": "has space"}, "should match pattern"),
        (ev.PayoutRequested, {"idempotency_key": "k" * 256}, "should match pattern"),
        (ev.PayoutRequested, {"idempotency_key": ""}, "should match pattern"),
        (ev.PayoutRequested, {"idempotency_key": "a.b"}, "should match pattern"),
        (
            ev.PayoutRequested,
            {"destination": {"type": "stellar_account", "address": "GABC"}},
            "G... public key",
        ),
        (ev.PayoutFailed, {"code": "invalid_destination"}, "terminal"),
        (ev.PayoutFailed, {"retryable": False}, "is final"),
        (ev.PayoutFailed, {"final": True}, "no next attempt"),
        (ev.PayoutFailed, {"code": "made_up"}, "Input should be"),
        (ev.PayoutApproved, {"approval_policy": "dual"}, "exactly 2"),
        (ev.PayoutApproved, {"approval_policy": "dual", "approved_by": ["a", "a"]}, "distinct"),
        (ev.PayoutReturned, {"returned_amount": {"asset": "USDC", "amount": 25_000_001}}, "more cannot"),
        (ev.PoolExhausted, {"requested": 5}, "not exhausted"),
        (ev.SignatureRequested, {"payout_ids": ["po-1"]}, "exactly one intended operation"),
        (ev.SignatureRequested, {"unsigned_xdr": "not base64!"}, "should match pattern"),
        (ev.SignatureRequested, {"unsigned_xdr": "AAAAA"}, "base64"),
        (ev.SignatureRequested, {"source_account": "SBAD"}, "should match pattern"),
        (ev.SignatureRequested, {"max_fee_stroops": 0}, "greater than 0"),
        (ev.SignatureRefused, {"code": "because"}, "Input should be"),
        (ev.TransactionSigned, {"tx_hash": "AB" * 32}, "should match pattern"),
        (
            ev.ProviderEventReceived,
            {"provider_payout_ref": None, "idempotency_key": None},
            "must name its payout",
        ),
        (ev.ProviderEventReceived, {"provider": "wise"}, "Input should be"),
        (ev.AdminActionRecorded, {"actor_roles": []}, "at least 1"),
        (ev.AdminActionRecorded, {"action": "approve"}, "should match pattern"),
        (ev.AdminActionRecorded, {"after": {"Bad Key": "x"}}, "should match pattern"),
    ],
)
def test_bad_values_are_refused(cls: type[EventPayload], overrides: dict[str, Any], match: str) -> None:
    _invalid(cls, match, **overrides)


def test_intent_arguments_are_typed() -> None:
    data = example_data(ev.SignatureRequested)
    invoke = data["intent"][1]
    for arg, match in [
        ({"type": "i128", "value": "1.5"}, "canonical integer"),
        ({"type": "u32", "value": str(2**32)}, "out of range"),
        ({"type": "address", "value": "xyz"}, "address"),
        ({"type": "bool", "value": "yes"}, "bool"),
    ]:
        bad = {**data, "intent": [data["intent"][0], {**invoke, "args": [arg]}]}
        with pytest.raises(ValidationError, match=match):
            ev.SignatureRequested.model_validate(bad)


def test_payment_intent_asset_needs_a_stellar_mapping() -> None:
    data = example_data(ev.SignatureRequested)
    bad = {**data, "intent": [{**data["intent"][0], "asset": "USD"}, data["intent"][1]]}
    with pytest.raises(ValidationError, match="no Stellar mapping"):
        ev.SignatureRequested.model_validate(bad)


def test_ties_share_a_rank_and_the_next_rank_skips() -> None:
    placements = [
        {"player_id": "a", "rank": 1, "score": 9},
        {"player_id": "b", "rank": 1, "score": 9},
        {"player_id": "c", "rank": 3, "score": 1},
    ]
    assert len(example_payload(ev.RoundResultsReported, placements=placements).placements) == 3


def test_distribution_templates_sum_to_the_whole() -> None:
    for template, shares in ev.TEMPLATE_BPS.items():
        assert sum(shares) == 10_000, template
        assert list(shares) == sorted(shares, reverse=True)
    assert set(ev.TEMPLATE_BPS) == set(ev.DistributionTemplate) - {ev.DistributionTemplate.CUSTOM}
    custom = ev.Distribution(template=ev.DistributionTemplate.CUSTOM, custom_bps=[7000, 3000])
    assert custom.shares_bps() == (7000, 3000)


def test_entry_pot_round() -> None:
    opened = example_payload(
        ev.RoundOpened,
        prize_source="entry_pot",
        prize={"asset": "USD"},
        entry_fee={"asset": "USD", "amount": 500},
    )
    assert opened.prize.amount is None
    with pytest.raises(ValidationError, match="entry fee's asset"):
        example_payload(ev.RoundOpened, prize_source="entry_pot", prize={"asset": "USDC"})


def test_refund_issued_to_the_wallet_needs_its_transfer() -> None:
    with pytest.raises(ValidationError, match="transfer_id"):
        example_payload(ev.RefundIssued, transfer_id=None)
    assert example_payload(ev.RefundIssued, transfer_id=None, paid_via="external").transfer_id is None


def test_signature_refusal_retryability() -> None:
    assert example_payload(ev.SignatureRefused, code="backend_unavailable").retryable
    assert not example_payload(ev.SignatureRefused).retryable


def test_signature_refused_names_its_payouts_unless_the_request_was_unreadable() -> None:
    with pytest.raises(ValidationError, match="malformed_request"):
        example_payload(ev.SignatureRefused, payout_ids=[])
    assert example_payload(ev.SignatureRefused, payout_ids=[], code="malformed_request").payout_ids == []
    with pytest.raises(ValidationError, match="live_until"):
        example_payload(ev.SignatureRefused, code="live_signature_exists")
    with pytest.raises(ValidationError, match="live_until"):
        example_payload(ev.SignatureRefused, live_until=1_700_000_000)
    live = example_payload(ev.SignatureRefused, code="live_signature_exists", live_until=1_700_000_000)
    assert live.live_until == 1_700_000_000
    assert not live.retryable


def test_a_ton_batch_request_names_each_payout_once_in_the_message_s_order() -> None:
    data = example_data(ev.TonBatchSignatureRequested)
    _invalid(ev.TonBatchSignatureRequested, "unique", payout_ids=["po-1", "po-1"])
    _invalid(ev.TonBatchSignatureRequested, "one each", payout_ids=["po-2", "po-1"])
    _invalid(ev.TonBatchSignatureRequested, "one each", intents=data["intents"][:1])
    _invalid(ev.TonBatchSignatureRequested, "less than or equal", query_id=2**23)
    _invalid(ev.TonBatchSignatureRequested, "greater than or equal", timeout=0)
    many = [f"po-{i}" for i in range(ev.TON_MAX_BATCH + 1)]
    _invalid(ev.TonBatchSignatureRequested, "at most 254", payout_ids=many)
    refused = ev.SignatureRefused(
        request_id="r", payout_ids=many[: ev.TON_MAX_BATCH], code=ev.SignatureRefusalCode.WRONG_SOURCE, detail="x"
    )
    assert len(refused.payout_ids) == ev.TON_MAX_BATCH  # a whole batch is refused in one answer
