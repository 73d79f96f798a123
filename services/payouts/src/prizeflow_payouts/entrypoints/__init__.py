"""Thin entrypoints: decode, call a use case, encode."""
