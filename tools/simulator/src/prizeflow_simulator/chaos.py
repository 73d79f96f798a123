"""The ugly cases a real game server produces: duplicate deliveries, out-of-order events, malformed records; and,
in periodic bursts, what an attacker or a broken integration does (forged webhooks), so alerts fire and resolve."""

from __future__ import annotations

import json
import random
import re
import secrets
import uuid
from dataclasses import dataclass, replace
from typing import Any

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.webhook_signatures import PRIZEFLOW_SIGNATURE_HEADER, signature_header

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)?$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """`30`, `30s`, `15m`, `1h` → seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 30s, 15m)")
    return float(match.group(1)) * _UNIT_S[match.group(2) or "s"]


@dataclass(frozen=True)
class Burst:
    """A chaos window that opens `delay_s` after the start, stays open `duration_s` and comes back every
    `period_s`: an alert on what it injects fires during the window and resolves once the rule's own window has
    passed without more (e.g. the DLQ alert looks at the last 10 minutes)."""

    duration_s: float
    period_s: float
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.duration_s < self.period_s or self.delay_s < 0:
            raise ValueError(f"a burst needs 0 < duration < period and delay >= 0, got {self}")

    def active(self, elapsed_s: float) -> bool:
        if elapsed_s < self.delay_s:
            return False
        return (elapsed_s - self.delay_s) % self.period_s < self.duration_s

    @classmethod
    def parse(cls, text: str) -> Burst:
        """`DURATION/PERIOD[@DELAY]`, e.g. `30s/15m@45s`: 30 s of chaos every 15 min, the first 45 s in."""
        window, _, delay = text.partition("@")
        duration, sep, period = window.partition("/")
        if not sep:
            raise ValueError(f"not a burst: {text!r} (DURATION/PERIOD[@DELAY], e.g. 30s/15m@45s)")
        return cls(parse_duration(duration), parse_duration(period), parse_duration(delay) if delay else 0.0)


@dataclass(frozen=True)
class ChaosConfig:
    duplicate_rate: float = 0.0  # per event: published a second time
    out_of_order_rate: float = 0.0  # per round: two adjacent events swapped
    malformed_rate: float = 0.0  # per round: one malformed record injected
    burst: Burst | None = None  # periodic windows in which the burst_* settings apply
    burst_malformed_rate: float = 1.0  # per round, inside a burst (instead of malformed_rate)
    burst_forged_webhooks: float = 0.0  # forged webhook deliveries per second, inside a burst

    def in_burst(self, elapsed_s: float) -> bool:
        return self.burst is not None and self.burst.active(elapsed_s)

    def at(self, elapsed_s: float) -> ChaosConfig:
        """The settings in force `elapsed_s` after the start: the burst's malformed rate while a burst is open."""
        if not self.in_burst(elapsed_s):
            return self
        return replace(self, malformed_rate=max(self.malformed_rate, self.burst_malformed_rate))


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


SANDBOX_EVENTS_PATH = "/providers/sandbox/events"


def forged_webhook(rng: random.Random, timestamp: int) -> tuple[bytes, dict[str, str]]:
    """A sandbox payout event signed with a secret nobody configured: the ingress must refuse it
    (`signature_mismatch`), store nothing and publish nothing."""
    body = json.dumps(
        {
            "id": f"evt_forged_{uuid.UUID(int=rng.getrandbits(128)).hex}",
            "type": "payout.paid",
            "created": timestamp,
            "data": {"reference": f"forged-{rng.getrandbits(32):08x}"},
        }
    ).encode()
    header = signature_header(secrets.token_hex(24), timestamp, body)
    return body, {PRIZEFLOW_SIGNATURE_HEADER: header, "content-type": "application/json"}
