"""`NodeFreshness`: is the API node's view from after a message's last moment of acceptance?

A "never landed" verdict rests on what the node shows: the message's transaction absent, the seqno unmoved, the
query id not processed. A node behind the chain (a stuck liteserver, a load-balanced backend answering from an
older state) shows all of that for a message that landed shortly before it expired. So a verdict also needs the
node's time: the latest masterchain block's `gen_utime`, read BEFORE the reads it vouches for (a node never goes
backwards), and, when a get-method answer names the block it was read from, that block's time too. Both must be at
least `deadline` (valid_until or created_at + timeout, plus `expiry_margin_s`). Otherwise nothing is concluded:
the message waits, and the lag is logged once per message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from prizeflow_payouts.adapters.ton.toncenter import TonApiError, ToncenterClient

log = logging.getLogger(__name__)
_REMEMBERED: Final = 10_000  # messages warned about, kept to log each once (cleared past this)
LAGGING: Final = "ton API node lags the chain: not concluding that a message expired"


class NodeFreshness:
    def __init__(self, provider: str, client: ToncenterClient, clock: Callable[[], float]) -> None:
        self.provider = provider
        self.client = client
        self.clock = clock
        self._warned: set[str] = set()

    async def node_time(self) -> int | None:
        """The node's latest masterchain block time; None (logged) when it cannot be read: no evidence."""
        try:
            return await self.client.masterchain_time()
        except TonApiError as err:
            log.warning("ton node time unavailable", extra={"provider": self.provider, "code": err.code.value})
            return None

    def fresh(self, request_id: str, deadline: int, node_time: int | None, block_time: int | None = None) -> bool:
        """True only if the node's time (and the get-method's block time, when named) is at least `deadline`."""
        if node_time is None:
            return False
        seen = node_time if block_time is None else min(node_time, block_time)
        if seen >= deadline:
            self._warned.discard(request_id)
            return True
        if request_id not in self._warned:
            if len(self._warned) >= _REMEMBERED:
                self._warned.clear()
            self._warned.add(request_id)
            log.warning(
                LAGGING,
                extra={
                    "provider": self.provider,
                    "request_id": request_id,
                    "lag_s": max(0, int(self.clock()) - seen),
                    "short_s": deadline - seen,
                },
            )
        return False


__all__ = ["LAGGING", "NodeFreshness"]
