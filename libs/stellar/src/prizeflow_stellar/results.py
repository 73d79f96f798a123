"""Reading Soroban RPC results: transaction result codes as stable snake_case strings."""

from __future__ import annotations

import re

from stellar_sdk import xdr


def _snake(name: str) -> str:
    """ "txBAD_SEQ" → "tx_bad_seq", "PAYMENT_NO_DESTINATION" → "payment_no_destination"."""
    return re.sub(r"^(tx|op)(?=[A-Z])", r"\1_", name).lower()


def transaction_result_code(result_xdr: str) -> str:
    """The code of a TransactionResult XDR (sendTransaction `errorResultXdr`, getTransaction `resultXdr`)."""
    result = xdr.TransactionResult.from_xdr(result_xdr)
    return _snake(result.result.code.name)


def operation_result_codes(result_xdr: str) -> list[str]:
    """Per-operation inner result codes of a failed transaction (e.g. ["payment_no_destination"])."""
    result = xdr.TransactionResult.from_xdr(result_xdr)
    codes: list[str] = []
    for op in result.result.results or []:
        if op.code != xdr.OperationResultCode.opINNER or op.tr is None:
            codes.append(_snake(op.code.name))
            continue
        inner = next((v for k, v in vars(op.tr).items() if k != "type" and v is not None and hasattr(v, "code")), None)
        codes.append(_snake(inner.code.name) if inner is not None else "unknown")
    return codes


__all__ = ["operation_result_codes", "transaction_result_code"]
