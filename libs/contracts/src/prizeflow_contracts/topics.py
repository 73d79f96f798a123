"""Topic registry (docs/architecture.md §2).

Every topic has a `.dlq` sibling; the Kafka key of every record is the correlation id, so all events of
one flow (a round, a claim, an admin action) land on one partition and keep their order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DLQ_SUFFIX: Final = ".dlq"


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic: its name, who produces it and which events it carries."""

    name: str
    producer: str
    events: tuple[str, ...]
    partitions: int = 6

    @property
    def dlq(self) -> str:
        return self.name + DLQ_SUFFIX

    def __str__(self) -> str:
        return self.name


GAME_ROUNDS: Final = Topic(
    "prizeflow.game.rounds.v1",
    "game servers",
    ("RoundOpened", "EntryRecorded", "RoundClosed", "RoundResultsReported", "RoundVoided"),
)
SETTLEMENT_ROUNDS: Final = Topic(
    "prizeflow.settlement.rounds.v1",
    "settlement",
    ("RoundStateChanged", "EntryAccepted", "RoundSettled", "RoundVoided", "RoundDisputed"),
)
REWARDS_EVENTS: Final = Topic(
    "prizeflow.rewards.events.v1",
    "rewards",
    (
        "RewardAllocated",
        "RefundIssued",
        "ClaimHeld",
        "ClaimApproved",
        "ClaimRejected",
        "PoolLow",
        "PoolExhausted",
        "TopUpCredited",
        "TopUpAdjusted",
    ),
)
PAYOUT_REQUESTS: Final = Topic("prizeflow.payouts.requests.v1", "rewards", ("PayoutRequested", "LedgerPosted"))
PAYOUT_EVENTS: Final = Topic(
    "prizeflow.payouts.events.v1",
    "payouts",
    (
        "PayoutCreated",
        "PayoutApproved",
        "PayoutSubmitted",
        "PayoutPaid",
        "PayoutFailed",
        "PayoutCancelled",
        "PayoutRejected",
        "PayoutReturned",
        "PayoutRequestRefused",
        "PayoutRoutesPublished",
        "ReconciliationAdjusted",
        "PlayerVerificationChanged",
        "RiskPolicyActivated",
    ),
)
SIGNER_REQUESTS: Final = Topic(
    "prizeflow.signer.requests.v1",
    "payouts",
    ("SignatureRequested", "TonSignatureRequested", "TonBatchSignatureRequested"),
)
SIGNER_RESULTS: Final = Topic(
    "prizeflow.signer.results.v1",
    "signer",
    ("TransactionSigned", "SignatureRefused", "TonMessageSigned", "TonBatchSigned"),
)
WEBHOOK_PROVIDER_EVENTS: Final = Topic(
    "prizeflow.webhooks.provider-events.v1",
    "webhooks",
    ("ProviderEventReceived", "PaymentEventReceived", "VerificationEventReceived"),
)
AUDIT: Final = Topic("prizeflow.audit.v1", "every service", ("AdminActionRecorded",))

ALL_TOPICS: Final[tuple[Topic, ...]] = (
    GAME_ROUNDS,
    SETTLEMENT_ROUNDS,
    REWARDS_EVENTS,
    PAYOUT_REQUESTS,
    PAYOUT_EVENTS,
    SIGNER_REQUESTS,
    SIGNER_RESULTS,
    WEBHOOK_PROVIDER_EVENTS,
    AUDIT,
)
_BY_NAME: Final = {t.name: t for t in ALL_TOPICS}


def topic_named(name: str) -> Topic:
    """Look a topic up by name; a DLQ name resolves to its parent topic."""
    base = name.removesuffix(DLQ_SUFFIX)
    try:
        return _BY_NAME[base]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {sorted(_BY_NAME)}") from None


def all_topic_names(*, with_dlq: bool = True) -> list[str]:
    names = [t.name for t in ALL_TOPICS]
    return names + [t.dlq for t in ALL_TOPICS] if with_dlq else names


def partition_key(correlation_id: str) -> bytes:
    """The key rule: records are keyed by the flow's correlation id."""
    return correlation_id.encode()
