"""Adapters: the SQL implementations of the ports."""

from prizeflow_settlement.adapters.sql import (
    SqlRoundQueries,
    SqlRoundStore,
    decode_cursor,
    encode_cursor,
    sql_store_factory,
)

__all__ = ["SqlRoundQueries", "SqlRoundStore", "decode_cursor", "encode_cursor", "sql_store_factory"]
