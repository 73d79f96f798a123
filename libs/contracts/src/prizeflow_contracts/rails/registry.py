"""Every rail's webhook face, by the name of its signing scheme (the providers file's `scheme`): what the webhook
ingress reads and nothing else. A rail's module in this package declares its reader as `READER` and is found here
by that name; no list of rails is kept. The rails without a scheme of their own sign as Prizeflow does
(`prizeflow.PrizeflowSignatureReader`, which serves every provider type no other reader does)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from prizeflow_contracts import rails
from prizeflow_contracts.discovery import declared
from prizeflow_contracts.rails.prizeflow import PrizeflowSignatureReader
from prizeflow_contracts.rails.reading import WebhookReader

# The `READER` of each module of this package, in module order.
_OWN: Final[tuple[WebhookReader, ...]] = tuple(declared(rails, "READER"))
_READERS: Final[tuple[WebhookReader, ...]] = (
    *_OWN,
    PrizeflowSignatureReader(own=frozenset().union(*(r.terms.serves for r in _OWN))),
)
WEBHOOK_READERS: Final[Mapping[str, WebhookReader]] = {r.terms.scheme: r for r in _READERS}

# What the ingress relies on, held at import: one reader a scheme, one scheme a provider type, and each names its
# signature header first, in lower case (how ASGI gives header names; a name in another case would never match and
# refuse every delivery).
if len(WEBHOOK_READERS) != len(_READERS):
    raise RuntimeError("two webhook readers claim one scheme")
if sum(len(r.terms.serves) for r in _OWN) != len(frozenset().union(*(r.terms.serves for r in _OWN))):
    raise RuntimeError("two webhook readers serve one provider type")
for _reader in _READERS:
    if not _reader.terms.headers or any(h != h.lower() for h in _reader.terms.headers):
        raise RuntimeError(f"reader {_reader.terms.scheme}: headers must be named, lower case, the signature's first")

__all__ = ["WEBHOOK_READERS"]
