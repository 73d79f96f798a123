"""Prizeflow webhook ingress."""
