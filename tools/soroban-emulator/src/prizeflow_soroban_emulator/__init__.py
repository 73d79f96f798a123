"""A small real Soroban JSON-RPC 2.0 server: ledgers on a clock, stellar-sdk verification, fault injection."""

from prizeflow_soroban_emulator.ledger import Ledger, Payment, SendStatus, TxStatus
from prizeflow_soroban_emulator.server import Emulator, build_emulator, create_app
from prizeflow_soroban_emulator.settings import EmulatorSettings, Faults

__all__ = [
    "Emulator",
    "EmulatorSettings",
    "Faults",
    "Ledger",
    "Payment",
    "SendStatus",
    "TxStatus",
    "build_emulator",
    "create_app",
]
