"""Adapters: the SQL implementations of the ports."""

from prizeflow_settlement.adapters.sql import SqlRoundQueries, SqlRoundStore, sql_store_factory

__all__ = ["SqlRoundQueries", "SqlRoundStore", "sql_store_factory"]
