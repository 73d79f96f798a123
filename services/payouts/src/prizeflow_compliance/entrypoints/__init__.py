"""Compliance's HTTP edges (verification, the risk policy, the sanctions screen) and its Kafka handler."""
