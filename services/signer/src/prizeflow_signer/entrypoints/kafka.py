"""SignatureRequested in: one handler call per request, on the books of the runtime's transaction; and the refusal
hook that answers a request the signer could not read, on the books of the transaction that dead-letters it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from prizeflow_runtime.dead_letter import DeadLetter
from prizeflow_signer.application.books import Books
from prizeflow_signer.application.refuse_unreadable import RefuseUnreadableRequest, UnreadableRequest

CONSUMER_NAME: Final = "signer"


def refusal_hook(refuse: RefuseUnreadableRequest) -> Callable[[Books, DeadLetter], Awaitable[None]]:
    """The runtime's `on_refusal`: a dead-lettered record that names a request id gets that request's answer."""

    async def hook(books: Books, letter: DeadLetter) -> None:
        request = UnreadableRequest.from_document(
            letter.readable(),
            reason=letter.reason,
            detail=letter.detail,
            event_id=letter.event_id,
            correlation_id=letter.correlation_id,
            digest=letter.digest,
        )
        if request is not None:
            await refuse(books, request)

    return hook


__all__ = ["CONSUMER_NAME", "refusal_hook"]
