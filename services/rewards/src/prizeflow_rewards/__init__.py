"""Prizeflow rewards service."""
