"""Sanctions lists at the edge: the publishers' files over HTTP, and their stored versions on PostgreSQL."""

from prizeflow_compliance.adapters.sanctions.http import HttpListSource
from prizeflow_compliance.adapters.sanctions.store_pg import SqlSanctionsLists

__all__ = ["HttpListSource", "SqlSanctionsLists"]
