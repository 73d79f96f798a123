"""Use cases and ports of the signer."""

from prizeflow_signer.application.books import Books
from prizeflow_signer.application.ports import BackendUnavailableError, SignatureBackend
from prizeflow_signer.application.refuse_unreadable import RefuseUnreadableRequest, UnreadableRequest
from prizeflow_signer.application.schemes import HIGHLOAD, V4R2, StellarScheme, TonScheme, TonWallet
from prizeflow_signer.application.sign_pipeline import Signable, SigningScheme, SignPipeline

__all__ = [
    "HIGHLOAD",
    "V4R2",
    "BackendUnavailableError",
    "Books",
    "RefuseUnreadableRequest",
    "SignPipeline",
    "Signable",
    "SignatureBackend",
    "SigningScheme",
    "StellarScheme",
    "TonScheme",
    "TonWallet",
    "UnreadableRequest",
]
