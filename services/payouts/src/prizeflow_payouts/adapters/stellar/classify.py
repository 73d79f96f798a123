"""Stellar answers (sendTransaction statuses, transaction and operation result codes, signer refusals) mapped to
the contract's stable `PayoutErrorCode`. Retryable or terminal comes from the contract's table, not from here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.signer import SignatureRefusalCode

C = PayoutErrorCode

# sendTransaction `errorResultXdr` / getTransaction `resultXdr` codes (prizeflow_stellar.transaction_result_code).
TX_CODES: Final[Mapping[str, PayoutErrorCode]] = {
    "tx_bad_seq": C.TX_BAD_SEQ,
    "tx_insufficient_fee": C.TX_INSUFFICIENT_FEE,
    "tx_too_late": C.TX_EXPIRED,
    "tx_too_early": C.INTERNAL_ERROR,
    "tx_bad_auth": C.AUTHENTICATION_FAILED,
    "tx_bad_auth_extra": C.AUTHENTICATION_FAILED,
    "tx_no_account": C.AUTHENTICATION_FAILED,
    "tx_insufficient_balance": C.INSUFFICIENT_PROVIDER_FUNDS,
    "tx_missing_operation": C.INVALID_REQUEST,
    "tx_malformed": C.INVALID_REQUEST,
    "tx_bad_sponsorship": C.INVALID_REQUEST,
    "tx_soroban_invalid": C.INVALID_REQUEST,
    "tx_internal_error": C.INTERNAL_ERROR,
    "tx_failed": C.TX_FAILED,
}

# Per-operation codes of a failed transaction (prizeflow_stellar.operation_result_codes).
OP_CODES: Final[Mapping[str, PayoutErrorCode]] = {
    "payment_no_destination": C.DESTINATION_NOT_FOUND,
    "payment_no_trust": C.DESTINATION_NO_TRUSTLINE,
    "payment_not_authorized": C.DESTINATION_BLOCKED,
    "payment_line_full": C.AMOUNT_ABOVE_MAXIMUM,
    "payment_no_issuer": C.UNSUPPORTED_ASSET,
    "payment_malformed": C.INVALID_REQUEST,
    "payment_underfunded": C.INSUFFICIENT_PROVIDER_FUNDS,
    "payment_src_no_trust": C.INSUFFICIENT_PROVIDER_FUNDS,
    "payment_src_not_authorized": C.AUTHENTICATION_FAILED,
    "op_bad_auth": C.AUTHENTICATION_FAILED,
    "op_no_account": C.AUTHENTICATION_FAILED,
    "op_not_supported": C.UNSUPPORTED_OPERATION,
    "op_too_many_subentries": C.INVALID_REQUEST,
    "invoke_host_function_trapped": C.TX_FAILED,
    "invoke_host_function_resource_limit_exceeded": C.TX_INSUFFICIENT_FEE,
    "invoke_host_function_insufficient_refundable_fee": C.TX_INSUFFICIENT_FEE,
    "invoke_host_function_entry_archived": C.TX_FAILED,
    "invoke_host_function_malformed": C.INVALID_REQUEST,
}

SUCCESS_OP_CODES: Final = frozenset({"payment_success", "invoke_host_function_success", "op_inner"})


def tx_code(code: str) -> PayoutErrorCode:
    return TX_CODES.get(code, C.TX_FAILED)


def op_code(code: str) -> PayoutErrorCode | None:
    """None: this operation did not fail (it only went down with its transaction)."""
    if code in SUCCESS_OP_CODES:
        return None
    return OP_CODES.get(code, C.TX_FAILED)


def refusal_code(code: SignatureRefusalCode) -> PayoutErrorCode:
    if code is SignatureRefusalCode.BACKEND_UNAVAILABLE:
        return C.SIGNER_UNAVAILABLE
    return C.SIGNATURE_REFUSED


# sendTransaction ERROR codes after which resubmitting the same envelope is pointless (it can only land if it
# was accepted earlier, which getTransaction tells); the envelope still waits for its time bound before release.
STOP_RESUBMITTING: Final = frozenset(
    {
        "tx_bad_auth",
        "tx_bad_auth_extra",
        "tx_no_account",
        "tx_insufficient_balance",
        "tx_missing_operation",
        "tx_malformed",
        "tx_too_late",
    }
)

__all__ = ["OP_CODES", "STOP_RESUBMITTING", "TX_CODES", "op_code", "refusal_code", "tx_code"]
