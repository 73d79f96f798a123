"""Thin entrypoints: decode, call a use case, encode."""

from prizeflow_settlement.entrypoints.http import ResolveRequest, RoundsController, VoidRequest
from prizeflow_settlement.entrypoints.kafka import CONSUMER_NAME, RoundEventsHandler

__all__ = ["CONSUMER_NAME", "ResolveRequest", "RoundEventsHandler", "RoundsController", "VoidRequest"]
