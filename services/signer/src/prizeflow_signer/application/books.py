"""The signer's books: its stores, bound to the one transaction a request is decided in."""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_signer.application.ports import AuditStore, Outbox, ResultStore, SignatureStore, SpendStore


@dataclass(frozen=True, slots=True)
class Books:
    """What the signing pipeline (and the refusal of an unreadable request) reads, locks, writes and stages."""

    results: ResultStore
    spend: SpendStore
    signatures: SignatureStore
    audit: AuditStore
    outbox: Outbox


__all__ = ["Books"]
