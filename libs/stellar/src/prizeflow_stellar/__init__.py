"""Stellar building blocks shared by the payouts service and the signer.

Exact amounts, StrKey and idempotency-key validation, registry ↔ Stellar assets, transaction builders for
classic payment batches and payout-contract calls (with the intent each one implements), exact envelopes
(canonical only, hashed and signed as received), the checker the signer runs before signing, and result-code
parsing for RPC answers. No I/O.
"""

from prizeflow_stellar.amounts import INT64_MAX, STROOPS_PER_UNIT, AmountError, check_stroops, from_stroops, to_stroops
from prizeflow_stellar.assets import (
    UnsupportedAssetError,
    canonical,
    registry_code_of,
    stellar_asset,
    supported_asset_codes,
)
from prizeflow_stellar.builder import (
    BASE_FEE_STROOPS,
    DEFAULT_METHOD_NAME,
    BuildError,
    BuiltTransaction,
    PaymentInstruction,
    Simulation,
    Winner,
    build_contract_invoke,
    build_payments,
    contract_args,
    invoke_intent,
    payment_intent,
    scarg_to_scval,
    winners_scval,
)
from prizeflow_stellar.checks import CheckedTransaction, CheckPolicy, IntentViolation, decode_and_check
from prizeflow_stellar.envelopes import (
    TIME_BOUND_MARGIN_S,
    EnvelopeError,
    ExactEnvelope,
    NonCanonicalEnvelopeError,
    exact_envelope,
)
from prizeflow_stellar.results import operation_result_codes, transaction_result_code
from prizeflow_stellar.strkeys import (
    AddressKind,
    InvalidAddressError,
    address_kind,
    is_account_id,
    is_contract_id,
    is_muxed_account,
    is_valid_idempotency_key,
    validate_destination,
    validate_idempotency_key,
)

__all__ = [
    "BASE_FEE_STROOPS",
    "DEFAULT_METHOD_NAME",
    "INT64_MAX",
    "STROOPS_PER_UNIT",
    "TIME_BOUND_MARGIN_S",
    "AddressKind",
    "AmountError",
    "BuildError",
    "BuiltTransaction",
    "CheckPolicy",
    "CheckedTransaction",
    "EnvelopeError",
    "ExactEnvelope",
    "IntentViolation",
    "InvalidAddressError",
    "NonCanonicalEnvelopeError",
    "PaymentInstruction",
    "Simulation",
    "UnsupportedAssetError",
    "Winner",
    "address_kind",
    "build_contract_invoke",
    "build_payments",
    "canonical",
    "check_stroops",
    "contract_args",
    "decode_and_check",
    "exact_envelope",
    "from_stroops",
    "invoke_intent",
    "is_account_id",
    "is_contract_id",
    "is_muxed_account",
    "is_valid_idempotency_key",
    "operation_result_codes",
    "payment_intent",
    "registry_code_of",
    "scarg_to_scval",
    "stellar_asset",
    "supported_asset_codes",
    "to_stroops",
    "transaction_result_code",
    "validate_destination",
    "validate_idempotency_key",
    "winners_scval",
]
