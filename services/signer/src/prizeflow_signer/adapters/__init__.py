"""Adapters: key backends and the SQL store."""
