"""Prizeflow payouts service."""
