"""Stripe's idempotency keys: a key is scoped to the API key (and the `Stripe-Account`); the same key with the
same endpoint and parameters replays the stored answer, with anything else it is an `idempotency_error`. Keys
expire after 24 h. Only successful answers are stored: every refusal here happens before the operation runs
(Stripe does not store a result for a request that failed validation)."""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_stripe_emulator.errors import StripeError

KEY_TTL_S = 24 * 3600
MAX_KEY_CHARS = 255

Scope = tuple[str, str | None, str]  # (API key, Stripe-Account, Idempotency-Key)


@dataclass(frozen=True)
class Stored:
    method: str
    path: str
    fingerprint: tuple[tuple[str, str], ...]
    status: int
    body: bytes
    request_id: str
    at: float


class IdempotencyStore:
    def __init__(self) -> None:
        self._entries: dict[Scope, Stored] = {}

    def lookup(
        self, scope: Scope, method: str, path: str, fingerprint: tuple[tuple[str, str], ...], now: float
    ) -> Stored | None:
        """The stored answer to replay, None if the key is new; raises if the key was used differently."""
        key = scope[2]
        if len(key) > MAX_KEY_CHARS:
            raise StripeError.invalid(f"Invalid Idempotency-Key: keys can be at most {MAX_KEY_CHARS} characters long.")
        stored = self._entries.get(scope)
        if stored is None:
            return None
        if now - stored.at > KEY_TTL_S:
            del self._entries[scope]
            return None
        if (stored.method, stored.path) != (method, path):
            raise StripeError(
                400,
                "idempotency_error",
                f"Keys for idempotent requests can only be used for the same endpoint they were first used for "
                f"('{stored.method} {stored.path}' vs '{method} {path}'). Try using a key other than '{key}' if you "
                "meant to execute a different request.",
            )
        if stored.fingerprint != fingerprint:
            raise StripeError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                f"Try using a key other than '{key}' if you meant to execute a different request.",
            )
        return stored

    def store(self, scope: Scope, stored: Stored) -> None:
        self._entries[scope] = stored

    def clear(self) -> None:
        self._entries.clear()


__all__ = ["KEY_TTL_S", "IdempotencyStore", "Scope", "Stored"]
