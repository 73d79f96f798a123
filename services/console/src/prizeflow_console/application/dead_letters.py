"""Dead letters across the services that consume records: one board, grouped by service and topic, and one
letter as an operator reads it (its record's destination masked, no credential-like header shown)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from prizeflow_console.application.ports import ApiProblem, PlatformApi, Service
from prizeflow_console.domain.money import mask_destination

# The services that consume Kafka records and so serve `/admin/dead-letters` (prizeflow_runtime.admin_http).
# Webhooks consumes none (it publishes what providers send), and the signer has no inbound API by design.
DEAD_LETTER_SERVICES: Final[tuple[Service, ...]] = ("settlement", "rewards", "payouts")
STATUSES: Final = ("open", "redriven", "discarded")
# Reasons whose records can never apply as they are (prizeflow_runtime.dead_letters.NOT_REDRIVABLE): the
# service refuses their redrive; the console does not offer it.
NOT_REDRIVABLE: Final = frozenset({"event_id_reused", "malformed_json", "invalid_envelope", "beyond_dedup_horizon"})
PAGE_SIZE: Final = 100
MAX_SHOWN_PAYLOAD: Final = 64 * 1024
_SECRET_HEADER_WORDS: Final = (
    "authorization",
    "secret",
    "token",
    "signature",
    "password",
    "cookie",
    "api-key",
    "apikey",
)
# A payout destination is a string in some records and an object (`{"type", "address", "memo"}`, the contracts'
# PayoutDestination) in others: the address and memo are masked wherever they sit, at any depth.
_MASKED_FIELDS: Final = frozenset({"destination", "address", "memo", "destination_address", "destination_memo"})


@dataclass(frozen=True, slots=True)
class LetterGroup:
    service: str
    topic: str
    letters: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class DeadLetterBoard:
    groups: list[LetterGroup]
    problems: list[ApiProblem]  # services that could not answer: said, never hidden
    more: dict[str, int] = field(default_factory=dict)  # service → the `after` of its next page
    reasons: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(g.letters) for g in self.groups)


@dataclass(frozen=True, slots=True)
class LetterFilter:
    service: Service | None = None
    status: str = "open"
    reason: str | None = None
    topic: str | None = None
    after: int | None = None  # paging within one service


@dataclass(frozen=True)
class ListDeadLetters:
    apis: PlatformApi

    async def __call__(self, f: LetterFilter, *, token: str) -> DeadLetterBoard:
        services = (f.service,) if f.service else DEAD_LETTER_SERVICES

        async def one(service: Service) -> dict[str, Any] | ApiProblem:
            query = {"status": f.status, "reason": f.reason, "limit": PAGE_SIZE,
                     "after": f.after if f.service else None}  # fmt: skip
            try:
                answer = await self.apis.get(service, "/admin/dead-letters", token=token, query=query)
            except ApiProblem as problem:
                return problem
            return answer if isinstance(answer, dict) else {}

        answers = await asyncio.gather(*(one(s) for s in services))
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        problems: list[ApiProblem] = []
        more: dict[str, int] = {}
        reasons: set[str] = set()
        topics: set[str] = set()
        for service, answer in zip(services, answers, strict=True):
            if isinstance(answer, ApiProblem):
                problems.append(answer)
                continue
            if isinstance(after := answer.get("next_after"), int):
                more[service] = after
            for letter in answer.get("items") or []:
                if not isinstance(letter, dict):
                    continue
                topic = str(letter.get("topic") or "")
                reasons.add(str(letter.get("reason") or ""))
                topics.add(topic)
                if f.topic and topic != f.topic:
                    continue
                grouped.setdefault((service, topic), []).append({**letter, "service": service})
        groups = [LetterGroup(s, t, grouped[(s, t)]) for s, t in sorted(grouped)]
        return DeadLetterBoard(groups, problems, more, sorted(reasons - {""}), sorted(topics - {""}))


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: mask_destination(v) if k in _MASKED_FIELDS and isinstance(v, str) else _masked(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def shown_payload(value: str) -> tuple[str, bool]:
    """The record as an operator reads it: indented JSON with any payout destination masked, or the bytes as
    the service decoded them when they are not JSON (that is often why they were refused); and whether it was
    cut short."""
    try:
        doc = json.loads(value)
    except ValueError:
        text = value
    else:
        text = json.dumps(_masked(doc), indent=2, ensure_ascii=False, sort_keys=False)
    return text[:MAX_SHOWN_PAYLOAD], len(text) > MAX_SHOWN_PAYLOAD


def shown_headers(headers: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The record's own headers; one whose name sounds like a credential is named but never shown."""
    out = []
    for name, value in sorted((headers or {}).items()):
        secret = any(word in name.lower() for word in _SECRET_HEADER_WORDS)
        out.append((name, "(not shown)" if secret else str(value)))
    return out


def redrivable(letter: Mapping[str, Any]) -> bool:
    return (
        letter.get("status") == "open" and bool(letter.get("event_id")) and letter.get("reason") not in NOT_REDRIVABLE
    )


__all__ = [
    "DEAD_LETTER_SERVICES",
    "NOT_REDRIVABLE",
    "STATUSES",
    "DeadLetterBoard",
    "LetterFilter",
    "LetterGroup",
    "ListDeadLetters",
    "redrivable",
    "shown_headers",
    "shown_payload",
]
