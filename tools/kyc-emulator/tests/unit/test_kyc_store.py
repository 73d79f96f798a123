"""The applicant life cycle in the emulator's books: Sumsub's review statuses, transition by transition."""

from __future__ import annotations

from datetime import date

import pytest

from prizeflow_kyc_emulator.state import ApiError, AutoReview, Event, Info, Store


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def store(auto: AutoReview = AutoReview.NONE) -> tuple[Store, list[Event], Clock]:
    events: list[Event] = []
    clock = Clock()
    return (
        Store(levels=("lvl",), auto_review=auto, review_delay_ms=1000, listener=events.append, clock=clock),
        events,
        clock,
    )


INFO = Info("Ann", "Lee", date(1990, 1, 2), "DEU", "X1")


def test_create_once_per_external_user_then_409() -> None:
    s, events, _ = store()
    a = s.create("lvl", "player-1")
    assert a.review.status == "init"
    assert len(a.id) == 24
    with pytest.raises(ApiError) as err:
        s.create("lvl", "player-1")
    assert err.value.status == 409
    assert a.id in err.value.description
    with pytest.raises(ApiError) as missing:
        s.create("other-level", "player-2")
    assert missing.value.status == 404
    assert s.by_external("player-1") is a
    assert [e.type for e in events] == ["applicantCreated"]


def test_submit_pending_then_auto_review_green_when_due() -> None:
    s, events, clock = store(AutoReview.GREEN)
    a = s.create("lvl", "p")
    s.submit(a.id, INFO)
    assert a.review.status == "pending"
    assert a.review.attempt_cnt == 1
    s.advance()
    assert a.review.status == "pending"
    clock.now += 1.0
    s.advance()
    assert a.review.status == "completed"
    assert a.review.answer == "GREEN"
    assert [e.type for e in events] == ["applicantCreated", "applicantPending", "applicantReviewed"]
    assert events[-1].to_json()["reviewResult"] == {"reviewAnswer": "GREEN"}
    assert "firstName" not in str(events[-1].to_json())  # a webhook never carries the person


def test_red_retry_may_resubmit_red_final_may_not() -> None:
    s, _, _ = store()
    a = s.create("lvl", "p")
    s.submit(a.id, INFO)
    s.complete(a.id, "RED", reject_type="RETRY")
    assert a.status_json()["reviewResult"]["reviewRejectType"] == "RETRY"
    s.submit(a.id, INFO)
    assert a.review.status == "pending"
    assert a.review.attempt_cnt == 2
    s.complete(a.id, "RED", reject_type="FINAL")
    with pytest.raises(ApiError) as err:
        s.submit(a.id, INFO)
    assert err.value.status == 409
    with pytest.raises(ApiError):
        s.complete(a.id, "RED")  # RED needs a reject type


def test_hold_and_reset() -> None:
    s, events, _ = store()
    a = s.create("lvl", "p")
    s.submit(a.id, INFO)
    s.hold(a.id)
    assert a.review.status == "onHold"
    s.reset(a.id)
    assert a.review.status == "init"
    assert a.info is None
    assert [e.type for e in events][-2:] == ["applicantOnHold", "applicantReset"]


def test_links_expire_and_create_the_applicant_on_first_use() -> None:
    s, _, clock = store()
    link = s.link("lvl", "player-9", 600)
    a = s.open_link(link.token)
    assert a.external_user_id == "player-9"
    assert s.open_link(link.token) is a
    clock.now += 601
    with pytest.raises(ApiError) as err:
        s.open_link(link.token)
    assert err.value.status == 404
