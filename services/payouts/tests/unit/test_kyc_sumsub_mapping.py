"""Sumsub's review and country vocabulary mapped to ours, rule by rule (pure)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from prizeflow_compliance.adapters.kyc.countries import ALPHA3_TO_ALPHA2, alpha2
from prizeflow_compliance.adapters.kyc.sumsub import request_signature, review_status
from prizeflow_contracts.policy import VerificationStatus

V = VerificationStatus


@pytest.mark.parametrize(
    ("review", "want"),
    [
        (None, (V.PENDING, "no_review")),
        ({"reviewStatus": "init"}, (V.PENDING, "init")),
        ({"reviewStatus": "pending"}, (V.PENDING, "pending")),
        ({"reviewStatus": "onHold"}, (V.PENDING, "onHold")),
        ({"reviewStatus": "completed", "reviewResult": {"reviewAnswer": "GREEN"}}, (V.VERIFIED, "GREEN")),
        (
            {"reviewStatus": "completed", "reviewResult": {"reviewAnswer": "RED", "reviewRejectType": "RETRY"}},
            (V.RETRY, "RED/RETRY"),
        ),
        (
            {"reviewStatus": "completed", "reviewResult": {"reviewAnswer": "RED", "reviewRejectType": "FINAL"}},
            (V.FAILED, "RED/FINAL"),
        ),
        ({"reviewStatus": "completed", "reviewResult": {"reviewAnswer": "RED"}}, (V.FAILED, "RED")),
        ({"reviewStatus": "completed"}, (V.PENDING, "unknown")),  # completed without an answer: never verified
        ({"reviewStatus": "pending", "reviewResult": {"reviewAnswer": "GREEN"}}, (V.PENDING, "pending")),
        ({"reviewStatus": "somethingNew"}, (V.PENDING, "unknown")),
    ],
)
def test_review_status(review: Any, want: tuple[VerificationStatus, str]) -> None:
    assert review_status(review) == want


def test_every_iso_country_maps_once() -> None:
    assert len(ALPHA3_TO_ALPHA2) == 249
    assert len(set(ALPHA3_TO_ALPHA2.values())) == 249
    assert (alpha2("DEU"), alpha2("gbr"), alpha2("USA"), alpha2("XKX")) == ("DE", "GB", "US", "XK")
    assert (alpha2("DE"), alpha2("ZZZ"), alpha2(""), alpha2(None)) == ("DE", None, None, None)


def test_request_signature_matches_sumsubs_recipe() -> None:
    body = b'{"externalUserId":"p-1"}'
    path = "/resources/applicants?levelName=basic-kyc-level"
    want = hmac.new(b"key", b"1700000000POST" + path.encode() + body, hashlib.sha256).hexdigest()
    assert request_signature("key", "1700000000", "post", path, body) == want
