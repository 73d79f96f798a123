"""SignatureRequested in: one handler call per request, inside the runtime's transaction."""

from __future__ import annotations

from typing import Final

CONSUMER_NAME: Final = "signer"
