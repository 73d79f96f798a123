"""Adapters: the SQL implementations of the ports, and `bind` (the books on one session)."""

from prizeflow_settlement.adapters.books import bind
from prizeflow_settlement.adapters.outbox_pg import SqlOutbox
from prizeflow_settlement.adapters.queries_pg import SqlRoundQueries
from prizeflow_settlement.adapters.rounds_pg import SqlRoundStore
from prizeflow_settlement.adapters.spec_cache import SpecCache

__all__ = ["SpecCache", "SqlOutbox", "SqlRoundQueries", "SqlRoundStore", "bind"]
