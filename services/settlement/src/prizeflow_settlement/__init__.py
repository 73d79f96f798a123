"""Prizeflow settlement service."""
