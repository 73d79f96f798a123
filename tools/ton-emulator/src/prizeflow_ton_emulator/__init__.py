"""A small real TON HTTP API (the toncenter v2 subset a sender uses) for tests and `make run`."""

from prizeflow_ton_emulator.chain import ApiError, Chain, Faults

__all__ = ["ApiError", "Chain", "Faults"]
