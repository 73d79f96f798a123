"""The ugly cases a real game server produces: duplicate deliveries, out-of-order events, malformed records."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from prizeflow_contracts.envelope import Envelope


@dataclass(frozen=True)
class ChaosConfig:
    duplicate_rate: float = 0.0  # per event: published a second time
    out_of_order_rate: float = 0.0  # per round: two adjacent events swapped
    malformed_rate: float = 0.0  # per round: one malformed record injected


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_type: str  # "malformed" for injected garbage


def _record(env: Envelope[Any]) -> Record:
    return Record(env.key, env.encode(), env.headers(), env.type)


MALFORMED_SAMPLES: tuple[bytes, ...] = (
    b"{not json",
    b'{"specversion": "1.0", "type": "prizeflow.game.RoundExploded.v1"}',
    b"[]",
)


def apply_chaos(
    rng: random.Random, events: list[Envelope[Any]], config: ChaosConfig, counts: dict[str, int]
) -> list[Record]:
    """The records to publish for one round, with the configured ugliness applied (and counted)."""
    records = [_record(e) for e in events]
    if len(records) > 2 and rng.random() < config.out_of_order_rate:
        i = rng.randrange(1, len(records) - 1)  # never the RoundOpened: late opens are a different failure
        records[i], records[i + 1] = records[i + 1], records[i]
        counts["out_of_order"] = counts.get("out_of_order", 0) + 1
    out: list[Record] = []
    for record in records:
        out.append(record)
        if rng.random() < config.duplicate_rate:
            out.append(record)
            counts["duplicate"] = counts.get("duplicate", 0) + 1
    if records and rng.random() < config.malformed_rate:
        garbage = rng.choice([*MALFORMED_SAMPLES, _invalid_payload(events[0])])
        out.insert(rng.randrange(len(out) + 1), Record(records[0].key, garbage, [], "malformed"))
        counts["malformed"] = counts.get("malformed", 0) + 1
    return out


def _invalid_payload(env: Envelope[Any]) -> bytes:
    """A well-formed envelope whose payload breaks a rule (a negative prize)."""
    doc = env.model_dump(mode="json")
    if isinstance(doc.get("data"), dict) and isinstance(doc["data"].get("prize"), dict):
        doc["data"]["prize"]["amount"] = -1
    else:
        doc["data"] = {"round_id": ""}
    return json.dumps(doc).encode()
