"""Use cases and ports of the signer."""

from prizeflow_signer.application.ports import BackendUnavailableError, SignatureBackend, SignerStore
from prizeflow_signer.application.refuse_unreadable import RefuseUnreadableRequest, UnreadableRequest
from prizeflow_signer.application.sign_request import SignRequest

__all__ = [
    "BackendUnavailableError",
    "RefuseUnreadableRequest",
    "SignRequest",
    "SignatureBackend",
    "SignerStore",
    "UnreadableRequest",
]
