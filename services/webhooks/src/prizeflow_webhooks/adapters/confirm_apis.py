"""The clients a rail's reader asks its provider back through, by the reader's scheme: each implements the port
its rail declares (`prizeflow_contracts.rails.<rail>`). A module of this package named `<rail>_api` declares the
scheme it confirms (`CONFIRMS`) and its client (`CLIENT`, built from the provider's `ConfirmConfig`) and is found here
by those names; no list of rails is kept (`test_app` holds the schemes that confirm and the clients together)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, Protocol

from prizeflow_contracts.discovery import modules
from prizeflow_webhooks import adapters
from prizeflow_webhooks.adapters.config import ConfirmConfig


class ConfirmClient(Protocol):
    """A provider API client: what its rail's port asks (not typed here), and `close` at shutdown."""

    async def close(self) -> None: ...


def _declared() -> dict[str, Callable[[ConfirmConfig], ConfirmClient]]:
    found: dict[str, Callable[[ConfirmConfig], ConfirmClient]] = {}
    for module in modules(adapters, suffix="_api"):
        scheme: str = module.CONFIRMS
        if scheme in found:
            raise RuntimeError(f"two confirmation clients for scheme {scheme}")
        found[scheme] = module.CLIENT
    return found


CONFIRM_CLIENTS: Final[Mapping[str, Callable[[ConfirmConfig], ConfirmClient]]] = _declared()


def confirm_client(scheme: str, config: ConfirmConfig) -> ConfirmClient:
    """The client of `scheme`'s provider API, configured."""
    make = CONFIRM_CLIENTS.get(scheme)
    if make is None:
        raise ValueError(f"scheme {scheme} has no confirmation client")
    return make(config)


__all__ = ["CONFIRM_CLIENTS", "ConfirmClient", "confirm_client"]
