"""Identity-verification vendors (`KycProvider`, docs/adr/0012): Sumsub-shaped."""

from prizeflow_compliance.adapters.kyc.countries import alpha2
from prizeflow_compliance.adapters.kyc.sumsub import SumsubKycProvider, build_sumsub, request_signature, review_status

__all__ = ["SumsubKycProvider", "alpha2", "build_sumsub", "request_signature", "review_status"]
