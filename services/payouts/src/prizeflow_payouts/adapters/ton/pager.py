"""Reading a TON address's transactions back through time, page by page, each page at most once per pass of
the highload lane (every batch of a pass searches the same pages)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_payouts.adapters.ton.toncenter import ChainTx, TonApiError, ToncenterClient

C = PayoutErrorCode
_PAGE: Final = 100  # toncenter's getTransactions page limit
_MAX_PAGES: Final = 20  # per address and pass; past this without reaching a batch's build time: inconclusive
_SLACK_S: Final = 120  # clock skew allowed between us and the chain's utime when deciding "older than the message"


@dataclass
class Pager:
    """One address's transactions, newest first, read page by page at most once per pass: every batch of the
    pass searches the same pages."""

    client: ToncenterClient
    address: str
    txs: list[ChainTx] = field(default_factory=list)
    exhausted: bool = False
    pages: int = 0

    async def find(self, match: Callable[[ChainTx], bool], *, since: float) -> ChainTx | None:
        """The newest transaction matching, paged back until one older than `since` (minus slack); not found in
        `_MAX_PAGES` pages: a TonApiError (the caller concludes nothing)."""
        i = 0
        while True:
            for t in self.txs[i:]:
                if match(t):
                    return t
            i = len(self.txs)
            if self.exhausted or (self.txs and self.txs[-1].utime < since - _SLACK_S):
                return None
            if self.pages >= _MAX_PAGES:
                raise TonApiError(
                    C.PROVIDER_UNAVAILABLE, f"{_MAX_PAGES * _PAGE} transactions read, not back far enough"
                )
            await self._more()

    async def _more(self) -> None:
        if not self.txs:
            page = await self.client.transactions(self.address, limit=_PAGE)
        else:
            last = self.txs[-1]
            page = await self.client.transactions(self.address, limit=_PAGE, lt=last.lt, tx_hash=last.hash)
            page = [t for t in page if t.lt < last.lt]  # the page starts at the cursor (inclusive)
        self.pages += 1
        if not page:
            self.exhausted = True
        self.txs.extend(page)


@dataclass
class Pass:
    client: ToncenterClient
    pagers: dict[str, Pager] = field(default_factory=dict)
    node_time: int | None = None  # the node's latest masterchain block time, read before any page of the pass

    def of(self, address: str) -> Pager:
        if address not in self.pagers:
            self.pagers[address] = Pager(self.client, address)
        return self.pagers[address]


__all__ = ["Pager", "Pass"]
