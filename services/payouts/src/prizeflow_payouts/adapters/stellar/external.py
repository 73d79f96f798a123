"""External signing (signer backend `external`, admin API): show the envelope built, take it back signed.

An operator's envelope is queued for submission only if it is the stored transaction, byte for byte (canonical,
same hash over the posted bytes, same transaction bytes), with signatures over that hash reaching the medium
threshold of every spending account (read from RPC), before its time bound; exactly the posted bytes are kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stellar_sdk import Keypair
from stellar_sdk.exceptions import BadSignatureError

import prizeflow_stellar as ps
from prizeflow_payouts.adapters.stellar.books import StellarBooks
from prizeflow_payouts.adapters.stellar.options import StellarOptions
from prizeflow_payouts.adapters.stellar.rpc import RpcUnavailableError, SorobanRpcClient
from prizeflow_payouts.adapters.stellar.states import TxState, require_transition
from prizeflow_payouts.application.ports import ExternalSigningError
from prizeflow_runtime.errors import ErrorKind


@dataclass(frozen=True, slots=True)
class ExternalSubmission:
    tx_id: str
    tx_hash: str
    payout_ids: tuple[str, ...]


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class ExternalSigning:
    """`GET /payouts/{id}/unsigned-xdr` and `POST /payouts/{id}/submit-signed` for one provider."""

    def __init__(
        self,
        options: StellarOptions,
        rpc: SorobanRpcClient,
        uow: Callable[[], AbstractAsyncContextManager[StellarBooks]],
    ) -> None:
        self.o = options
        self.rpc = rpc
        self.uow = uow  # the provider's: one unit of work on the rail's books

    async def unsigned_transaction(self, payout_id: str) -> dict[str, Any] | None:
        async with self.uow() as books:
            p = await books.payouts.by_id(payout_id)
            if p is None or p.provider != self.o.name:
                return None
            txs = await books.envelopes.attempts_of(payout_id)
            current = await books.envelopes.by_id(p.tx_id) if p.tx_id is not None else None
        out: dict[str, Any] = {
            "payout_id": payout_id,
            "provider_state": p.state.value,
            "network_passphrase": self.o.network_passphrase,
            "attempts": [{k: _jsonable(v) for k, v in t.items()} for t in txs],
            "transaction": None,
        }
        if current is not None:
            out["transaction"] = {
                "tx_id": current.id,
                "state": current.state.value,
                "source_account": current.lane,
                "sequence": str(current.sequence),
                "tx_hash": current.tx_hash,
                "unsigned_xdr": current.unsigned_xdr,
                "fee": current.fee,
                "max_time": current.max_time,
                "payout_ids": list(current.payout_ids),
                "awaiting_signature": current.awaiting_signature,
            }
        return out

    async def submit_signed(self, payout_id: str, signed_xdr: str) -> ExternalSubmission:
        async with self.uow() as books:
            p = await books.payouts.by_id(payout_id)
            tx = await books.envelopes.by_id(p.tx_id) if p is not None and p.tx_id is not None else None
        if p is None or p.provider != self.o.name:
            raise ExternalSigningError(ErrorKind.NOT_FOUND, "payout_not_found", f"no Stellar payout {payout_id}")
        if tx is None or not tx.awaiting_signature:
            state = tx.state.value if tx is not None else p.state.value
            raise ExternalSigningError(
                ErrorKind.CONFLICT, "not_awaiting_signature", f"no transaction awaits a signature ({state})"
            )
        if time.time() >= tx.max_time:
            raise ExternalSigningError(
                ErrorKind.CONFLICT, "tx_expired", "the transaction's time bound has passed; it will be rebuilt"
            )
        try:
            signed = ps.exact_envelope(signed_xdr, self.o.network_passphrase)
        except ps.NonCanonicalEnvelopeError as err:
            raise ExternalSigningError(
                ErrorKind.INVALID, "non_canonical_xdr", f"the envelope does not re-encode to the bytes posted: {err}"
            ) from err
        except ps.EnvelopeError as err:
            raise ExternalSigningError(
                ErrorKind.INVALID, "malformed_xdr", f"not a transaction envelope: {err}"
            ) from err
        built = ps.exact_envelope(tx.unsigned_xdr, self.o.network_passphrase)
        if signed.tx_hash_hex != tx.tx_hash or signed.transaction_bytes != built.transaction_bytes:
            raise ExternalSigningError(
                ErrorKind.INVALID,
                "tx_hash_mismatch",
                "this is a different transaction from the one built for this payout",
            )
        await self._verify_signatures(signed)
        require_transition(tx.state, TxState.SIGNED)
        async with self.uow() as books:
            # Exactly the bytes verified (canonical: nothing re-encoded).
            kept = await books.envelopes.signed(
                tx.id, self.o.name, tx_hash=tx.tx_hash, signed_xdr=signed_xdr, signed_by="external"
            )
        if not kept:
            raise ExternalSigningError(
                ErrorKind.CONFLICT, "not_awaiting_signature", "the transaction moved on meanwhile"
            )
        return ExternalSubmission(tx.id, tx.tx_hash, tx.payout_ids)

    async def _verify_signatures(self, env: ps.ExactEnvelope) -> None:
        """Every spending account (source, operation sources) has valid signatures reaching its medium threshold,
        over the hash of the stored transaction's bytes."""
        tx = env.sdk_envelope.transaction
        spenders = {tx.source.account_id}
        for op in tx.operations:
            if op.source is not None:
                spenders.add(op.source.account_id)
        tx_hash = env.tx_hash
        for account in sorted(spenders):
            try:
                info = await self.rpc.account(account)
            except RpcUnavailableError as err:
                raise ExternalSigningError(ErrorKind.UNAVAILABLE, "rpc_unavailable", str(err)) from err
            signers = info.signers if info is not None else {account: 1}
            threshold = max(1, info.med_threshold if info is not None else 1)
            weight = 0
            for key, w in signers.items():
                kp = Keypair.from_public_key(key)
                for sig in env.signatures:
                    if sig.hint.signature_hint != kp.signature_hint():
                        continue
                    try:
                        kp.verify(tx_hash, sig.signature.signature)
                    except BadSignatureError:
                        continue
                    weight += w
                    break
            if weight < threshold:
                raise ExternalSigningError(
                    ErrorKind.INVALID, "signature_invalid", f"the signatures are not valid for source account {account}"
                )


__all__ = ["ExternalSigning", "ExternalSubmission"]
