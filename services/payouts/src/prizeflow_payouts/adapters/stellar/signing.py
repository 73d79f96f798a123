"""The signer's answers (consumer `payouts-signer-results`, inside the runtime's inbox transaction).

A signed envelope is accepted only if it is exactly the transaction built here (its hash over the received bytes
equals the stored one, same transaction bytes, canonical) with a valid signature of the key it names; anything
else is never submitted and waits for its own time bound. A refusal releases the lane; its payouts go back to the
queue or fail, by the refusal's code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

import prizeflow_stellar as ps
from prizeflow_contracts.envelope import Envelope, event_id_for, new_event
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.signer import (
    SignatureRefusalCode,
    SignatureRefused,
    SignatureRequested,
    TransactionSigned,
)
from prizeflow_payouts.adapters.stellar.books import StellarBooks, bind
from prizeflow_payouts.adapters.stellar.options import StellarOptions
from prizeflow_payouts.adapters.stellar.states import StoredTx, TxState, require_transition

log = logging.getLogger(__name__)

C = PayoutErrorCode
# stellar_txs.error_code of a TransactionSigned that is not exactly the transaction built (never submitted).
SIGNED_ENVELOPE_MISMATCH: Final = "signed_envelope_mismatch"


def sign_event(source: str, tx_id: str, request: SignatureRequested, n: int) -> Envelope[SignatureRequested]:
    """The n-th SignatureRequested of envelope `tx_id`: a resend keeps the request id (the signer dedupes)."""
    return new_event(
        request,
        source=source,
        correlation_id=tx_id,
        subject=tx_id,
        event_id=event_id_for("stellar-sign-request", tx_id, n),
    )


def not_the_transaction_built(data: TransactionSigned, tx: StoredTx, network_passphrase: str) -> str | None:
    """Why `data` is not the stored transaction with a valid signature of its signer, or None."""
    try:
        signed = ps.exact_envelope(data.signed_xdr, network_passphrase)
    except ps.NonCanonicalEnvelopeError as err:
        return f"not canonical XDR ({err})"
    except ps.EnvelopeError as err:
        return f"undecodable ({err})"
    built = ps.exact_envelope(tx.unsigned_xdr, network_passphrase)
    if signed.tx_hash_hex != tx.tx_hash or signed.transaction_bytes != built.transaction_bytes:
        return f"transaction {signed.tx_hash_hex} is not the one built ({tx.tx_hash})"
    if data.tx_hash != tx.tx_hash:
        return f"the answer names transaction {data.tx_hash}, not the one built ({tx.tx_hash})"
    if not signed.signed_by(data.signed_by):
        return f"no valid signature of {data.signed_by} over the transaction built"
    return None


class SignerResultsSink:
    """TransactionSigned / SignatureRefused for this provider's envelopes, applied in the caller's transaction (the
    rail's stores bound on the session it is handed)."""

    def __init__(self, options: StellarOptions) -> None:
        self.o = options

    async def apply(self, session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> None:
        books = bind(session)  # the consumer's inbox transaction: the rail's stores join it
        for env in envelopes:
            data = env.data
            if isinstance(data, TransactionSigned):
                await self._signed(books, data)
            elif isinstance(data, SignatureRefused):
                await self._refused(books, data)

    async def _signed(self, books: StellarBooks, data: TransactionSigned) -> None:
        """Accept the envelope only if it is exactly the transaction built here, validly signed by `signed_by`."""
        tx = await books.envelopes.for_signature(data.request_id, self.o.name)
        if tx is None:
            return  # not ours
        if not tx.awaiting_signature:
            return  # decided meanwhile (a duplicate or late answer)
        why = not_the_transaction_built(data, tx, self.o.network_passphrase)
        if why is not None:
            log.error(
                "signed envelope refused",
                extra={"request_id": data.request_id, "code": SIGNED_ENVELOPE_MISMATCH, "reason": why},
            )
            detail = f"signed envelope refused, never submitted: {why}"
            await books.envelopes.reject_signed(
                data.request_id, self.o.name, error_code=SIGNED_ENVELOPE_MISMATCH, detail=detail[:1000]
            )
            return
        require_transition(tx.state, TxState.SIGNED)
        await books.envelopes.signed(
            data.request_id, self.o.name, tx_hash=tx.tx_hash, signed_xdr=data.signed_xdr, signed_by=data.signed_by
        )

    async def _refused(self, books: StellarBooks, data: SignatureRefused) -> None:
        tx_id, provider, detail = data.request_id, self.o.name, data.detail[:1000]
        envelopes = books.envelopes
        if data.code is SignatureRefusalCode.BACKEND_UNAVAILABLE:
            await envelopes.ask_signer_later(
                tx_id,
                provider,
                error_code=C.SIGNER_UNAVAILABLE.value,
                detail=detail,
                check_in_s=self.o.resign_after_s,
            )
            return
        if data.code is SignatureRefusalCode.EXTERNAL_SIGNING_REQUIRED:
            await envelopes.await_operator(tx_id, provider, detail=detail)
            return
        refused = await envelopes.refuse(
            tx_id, provider, error_code=f"signature_refused:{data.code.value}", detail=detail
        )
        if refused is None:
            return
        await books.lanes.release_to_resync(refused.lane, tx_id, refused.sequence - 1)
        why = f"signer refused: {data.code.value}: {data.detail}"[:1000]
        payout_ids = refused.payout_ids
        if data.code is SignatureRefusalCode.LIVE_SIGNATURE_EXISTS:
            # Not a verdict on the payouts: an earlier transaction signed for them may still land. Never fail
            # them now (it could pay them); rebuild once the signer says it can no longer land.
            until = data.live_until if data.live_until is not None else int(time.time()) + self.o.validity_s
            await books.payouts.requeue(
                tx_id,
                payout_ids,
                isolate=False,
                refund=1,
                delay_s=0,
                live_until=until + 1,
                error_code=None,
                detail=why,
            )
            return
        if data.code in (SignatureRefusalCode.OVER_TX_CAP,) and len(payout_ids) > 1:
            await books.payouts.requeue(
                tx_id, payout_ids, isolate=True, refund=1, delay_s=0, live_until=0, error_code=None, detail=why
            )
            return
        await books.payouts.fail(tx_id, payout_ids, error_code=C.SIGNATURE_REFUSED.value, detail=why)


__all__ = ["SIGNED_ENVELOPE_MISMATCH", "SignerResultsSink", "not_the_transaction_built", "sign_event"]
