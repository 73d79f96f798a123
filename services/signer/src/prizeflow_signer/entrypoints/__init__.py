"""Entrypoints: the Kafka handler (no HTTP routes besides the runtime's health and metrics)."""
