"""Sumsub's request signature and webhook digest, against values computed independently (hashlib, by hand)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from prizeflow_kyc_emulator.settings import EmulatorSettings, SettingsError
from prizeflow_kyc_emulator.signing import DIGEST_ALGS, payload_digest, request_signature


def test_request_signature_is_hmac_sha256_of_ts_method_path_and_body() -> None:
    body = b'{"externalUserId":"player-1"}'
    want = hmac.new(
        b"secret", b"1700000000POST/resources/applicants?levelName=basic-kyc-level" + body, hashlib.sha256
    ).hexdigest()
    got = request_signature("secret", "1700000000", "post", "/resources/applicants?levelName=basic-kyc-level", body)
    assert got == want
    assert got == got.lower()
    assert len(got) == 64


def test_request_signature_covers_every_part() -> None:
    base = request_signature("k", "1", "GET", "/resources/applicants/a/one", b"")
    assert request_signature("k", "2", "GET", "/resources/applicants/a/one", b"") != base
    assert request_signature("k", "1", "POST", "/resources/applicants/a/one", b"") != base
    assert request_signature("k", "1", "GET", "/resources/applicants/b/one", b"") != base
    assert request_signature("k", "1", "GET", "/resources/applicants/a/one", b"x") != base
    assert request_signature("j", "1", "GET", "/resources/applicants/a/one", b"") != base


@pytest.mark.parametrize(("alg", "hash_name"), [("HMAC_SHA256_HEX", "sha256"), ("HMAC_SHA512_HEX", "sha512")])
def test_payload_digest_per_algorithm(alg: str, hash_name: str) -> None:
    body = b'{"type":"applicantReviewed"}'
    assert payload_digest("whsecret", body, alg) == hmac.new(b"whsecret", body, hash_name).hexdigest()
    assert alg in DIGEST_ALGS


def test_settings_need_the_app_token_pair_and_a_known_digest_algorithm() -> None:
    with pytest.raises(SettingsError, match="KYC_EMULATOR_APP_TOKEN"):
        EmulatorSettings.from_env({})
    base = {"KYC_EMULATOR_APP_TOKEN": "t", "KYC_EMULATOR_SECRET_KEY": "s"}
    with pytest.raises(SettingsError, match="KYC_EMULATOR_WEBHOOK_ALG"):
        EmulatorSettings.from_env({**base, "KYC_EMULATOR_WEBHOOK_ALG": "MD5"})
    with pytest.raises(SettingsError, match="go together"):
        EmulatorSettings.from_env({**base, "KYC_EMULATOR_WEBHOOK_URL": "http://x/y"})
    s = EmulatorSettings.from_env(
        {
            **base,
            "WEBHOOKS_URL": "http://127.0.0.1:9",
            "KYC_EMULATOR_WEBHOOK_URL": "${WEBHOOKS_URL}/providers/sumsub/events",
            "KYC_EMULATOR_WEBHOOK_SECRET": "w" * 32,
        }
    )
    assert s.webhook_url == "http://127.0.0.1:9/providers/sumsub/events"
    assert "s" not in repr(s).split("secret_key")[-1][:3]
