"""The Sumsub-shaped KYC adapter against the KYC emulator (a process): applicants created once per player, a fresh
hosted-flow link each start, the vendor's review mapped to our status, the identity read (in memory only), and the
vendor's failures as retryable or final errors."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import date

import httpx
import pytest
from prometheus_client import CollectorRegistry

from prizeflow_compliance.adapters.kyc.sumsub import SumsubKycProvider
from prizeflow_compliance.application.ports import KycProviderError
from prizeflow_compliance.metrics import ComplianceMetrics
from prizeflow_contracts.policy import VerificationStatus
from prizeflow_testkit.kyc import KycAdmin, KycEmulator, kyc_emulator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KycEmulator]:
    with kyc_emulator(tmp_path_factory.mktemp("kyc") / "emulator.log") as em:
        yield em


@pytest.fixture
async def admin(emulator: KycEmulator) -> AsyncIterator[KycAdmin]:
    async with emulator.admin() as a:
        await a.reset()
        yield a


def provider(
    em: KycEmulator, *, secret: str | None = None, timeout_s: float = 5.0, metrics: ComplianceMetrics | None = None
) -> SumsubKycProvider:
    return SumsubKycProvider(
        base_url=em.url,
        app_token=em.app_token,
        secret_key=secret or em.secret_key,
        level=em.level,
        timeout_s=timeout_s,
        metrics=metrics,
    )


async def test_start_creates_the_applicant_once_and_links_to_the_hosted_flow(
    emulator: KycEmulator, admin: KycAdmin
) -> None:
    kyc = provider(emulator)
    try:
        first = await kyc.start("player-1")
        again = await kyc.start("player-1")  # 409 at the vendor: found by our id
        assert first.reference == again.reference
        assert first.url != again.url
        assert "/websdk/p/" in first.url
        [applicant] = await admin.applicants("player-1")
        assert applicant["id"] == first.reference
        review = await kyc.review(first.reference)
        assert (review.status, review.country, review.detail) == (VerificationStatus.PENDING, None, "init")

        # The player fills the hosted form in: pending until the vendor reviews.
        async with httpx.AsyncClient(timeout=5) as browser:
            page = await browser.get(first.url)
            assert page.status_code == 200
            assert "<form" in page.text
            form = {"firstName": "Ann", "lastName": "Lee", "dob": "1990-01-02", "country": "DEU", "number": "X1"}
            assert (await browser.post(first.url, data=form)).status_code == 200
        assert (await kyc.review(first.reference)).status is VerificationStatus.PENDING

        await admin.review(first.reference, "GREEN")
        verified = await kyc.review(first.reference)
        assert (verified.status, verified.country, verified.detail) == (VerificationStatus.VERIFIED, "DE", "GREEN")
        assert verified.subject == "player-1"  # the applicant's externalUserId: the player it was started for
        identity = await kyc.identity(first.reference)
        assert (identity.full_name, identity.birth_date, identity.country) == ("Ann Lee", date(1990, 1, 2), "DE")
        assert "Ann" not in repr(identity)
        assert "Lee" not in repr(identity)
    finally:
        await kyc.close()


@pytest.mark.parametrize(
    ("answer", "reject_type", "status", "detail"),
    [
        ("RED", "RETRY", VerificationStatus.RETRY, "RED/RETRY"),
        ("RED", "FINAL", VerificationStatus.FAILED, "RED/FINAL"),
    ],
)
async def test_red_reviews_map_to_retry_or_failed_without_a_country(
    emulator: KycEmulator,
    admin: KycAdmin,
    answer: str,
    reject_type: str,
    status: VerificationStatus,
    detail: str,
) -> None:
    kyc = provider(emulator)
    try:
        session = await kyc.start("player-red")
        await admin.submit(session.reference, first_name="Bo", last_name="Ng", dob="1985-05-05", country="FRA")
        await admin.review(session.reference, answer, reject_type=reject_type)
        review = await kyc.review(session.reference)
        assert (review.status, review.country, review.detail) == (status, None, detail)
        await admin.reset_applicant(session.reference)
        assert (await kyc.review(session.reference)).status is VerificationStatus.PENDING
        with pytest.raises(KycProviderError) as err:
            await kyc.identity(session.reference)  # reset: nothing submitted any more
        assert err.value.code == "no_identity"
    finally:
        await kyc.close()


async def test_on_hold_is_pending(emulator: KycEmulator, admin: KycAdmin) -> None:
    kyc = provider(emulator)
    try:
        session = await kyc.start("player-hold")
        await admin.submit(session.reference, first_name="Cy", last_name="Ro", dob="1970-07-07", country="XKX")
        await admin.hold(session.reference)
        review = await kyc.review(session.reference)
        assert (review.status, review.detail) == (VerificationStatus.PENDING, "onHold")
        await admin.review(session.reference, "GREEN")
        assert (await kyc.review(session.reference)).country == "XK"
    finally:
        await kyc.close()


async def test_vendor_failures_are_retryable_or_final(emulator: KycEmulator, admin: KycAdmin) -> None:
    registry = CollectorRegistry()
    metrics = ComplianceMetrics.create(registry)
    kyc = provider(emulator, timeout_s=0.5, metrics=metrics)
    try:
        session = await kyc.start("player-faults")
        for kind, code in (("server_error", "unavailable"), ("rate_limit", "rate_limited")):
            await admin.fault(kind)
            with pytest.raises(KycProviderError) as err:
                await kyc.review(session.reference)
            assert (err.value.code, err.value.retryable) == (code, True)
        await admin.fault("timeout_after_success", delay_ms=2000)
        with pytest.raises(KycProviderError) as timeout:
            await kyc.review(session.reference)
        assert (timeout.value.code, timeout.value.retryable) == ("timeout", True)
        await admin.fault("server_error", method="POST", path_prefix="/resources/applicants")
        with pytest.raises(KycProviderError) as create:
            await kyc.start("player-faults-2")
        assert create.value.retryable
        with pytest.raises(KycProviderError) as missing:
            await kyc.review("000000000000000000000000")
        assert (missing.value.code, missing.value.retryable) == ("not_found", False)
        assert await kyc.review(session.reference)  # the outage is over
        series = "prizeflow_payouts_kyc_requests_total"
        ok = registry.get_sample_value(series, {"operation": "status", "outcome": "ok"})
        errors = registry.get_sample_value(series, {"operation": "status", "outcome": "error"})
        assert (ok, errors) == (1.0, 4.0)
    finally:
        await kyc.close()


async def test_a_wrong_secret_is_refused_as_our_credentials(emulator: KycEmulator, admin: KycAdmin) -> None:
    kyc = provider(emulator, secret="not-the-secret-key")
    try:
        with pytest.raises(KycProviderError) as err:
            await kyc.start("player-2")
        assert (err.value.code, err.value.retryable) == ("authentication_failed", False)
        assert not re.search("not-the-secret-key", str(err.value))
        assert await admin.applicants("player-2") == []
    finally:
        await kyc.close()
