"""The identity-verification vendor's webhook face (Sumsub-shaped): `X-Payload-Digest`, the HMAC of the body under
the algorithm `X-Payload-Digest-Alg` names, no timestamp (a replay is a duplicate). Published without the review's
answer — payouts fetches the applicant's status from the vendor — and stored without the vendor's free text
(`kyc_events`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from prizeflow_contracts.kyc import (
    SUMSUB_DIGEST_ALG_HEADER,
    SUMSUB_DIGEST_HEADER,
    VerificationVendor,
    verify_sumsub_digest,
)
from prizeflow_contracts.rails import kyc_events
from prizeflow_contracts.rails.reading import Caller, Confirmed, NormalizationError, Normalized, ReaderTerms
from prizeflow_contracts.webhook_signatures import SignatureFailure, SignatureRefused


class SumsubReader:
    terms: Final = ReaderTerms(
        scheme="sumsub_digest",
        headers=(SUMSUB_DIGEST_HEADER, SUMSUB_DIGEST_ALG_HEADER),
        serves=frozenset({VerificationVendor.SUMSUB}),
    )

    def verify(self, caller: Caller, headers: Mapping[str, str], body: bytes, *, now: float) -> int | None:
        if not isinstance(caller.type, VerificationVendor):
            raise SignatureRefused(SignatureFailure.MISMATCH, "the provider is no identity-verification vendor")
        verify_sumsub_digest(headers, body, secrets=caller.secrets)
        return None

    def identify(self, doc: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
        return None

    async def confirm_with(self, api: Any, doc: Mapping[str, Any], headers: Mapping[str, str]) -> Confirmed:
        raise RuntimeError("sumsub_digest events are never confirmed here (payouts fetches the applicant's status)")

    def normalize(
        self, caller: Caller, confirmed: Confirmed, headers: Mapping[str, str], *, digest: str, received_at: datetime
    ) -> Normalized:
        vendor = caller.type
        if not isinstance(vendor, VerificationVendor):
            raise NormalizationError("the provider is no identity-verification vendor")
        return kyc_events.normalize(
            confirmed.doc, provider=vendor, provider_name=caller.name, digest=digest, received_at=received_at
        )

    def kept(self, doc: Mapping[str, Any]) -> bytes | None:
        return kyc_events.kept_body(doc)  # never the vendor's free text (a name, a date of birth)


# This rail's webhook face, found by the registry under this name.
READER: Final = SumsubReader()

__all__ = ["READER", "SumsubReader"]
