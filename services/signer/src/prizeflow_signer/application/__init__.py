"""Use cases and ports of the signer."""

from prizeflow_signer.application.ports import BackendUnavailableError, SignatureBackend, SignerStore
from prizeflow_signer.application.sign_request import SignRequest

__all__ = ["BackendUnavailableError", "SignRequest", "SignatureBackend", "SignerStore"]
