"""One flow across every service, in time order: what `/timeline` shows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from prizeflow_console.application.ports import SERVICES, ApiProblem, PlatformApi, Service


@dataclass(frozen=True, slots=True)
class Trace:
    correlation_id: str
    entries: list[dict[str, Any]]
    problems: list[ApiProblem]  # services that could not answer (shown, never hidden)
    truncated: bool


def _at(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(entry.get("at", "")).replace("Z", "+00:00"))


@dataclass(frozen=True)
class TraceFlow:
    apis: PlatformApi

    async def __call__(self, correlation_id: str, *, token: str) -> Trace:
        async def one(service: Service) -> dict[str, Any] | ApiProblem:
            try:
                answer = await self.apis.get(service, f"/admin/timeline/{quote(correlation_id, safe='')}", token=token)
            except ApiProblem as problem:
                return problem
            return answer if isinstance(answer, dict) else {}

        answers = await asyncio.gather(*(one(s) for s in SERVICES))
        keyed: list[tuple[datetime, int, int, dict[str, Any]]] = []
        problems: list[ApiProblem] = []
        truncated = False
        for rank, answer in enumerate(answers):
            if isinstance(answer, ApiProblem):
                problems.append(answer)
                continue
            truncated = truncated or bool(answer.get("truncated"))
            for position, entry in enumerate(answer.get("entries") or []):
                if isinstance(entry, dict):
                    keyed.append((_at(entry), rank, position, entry))
        keyed.sort(key=lambda k: k[:3])
        return Trace(correlation_id, [k[3] for k in keyed], problems, truncated)


__all__ = ["Trace", "TraceFlow"]
