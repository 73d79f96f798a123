"""Valid example payloads for every event type, for tests here and in services (`example_payload(cls)`).

Override any field: `example_payload(PayoutPaid, player_id="p-2")`. Examples are deterministic.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from prizeflow_contracts import events as ev
from prizeflow_contracts.envelope import EventPayload, event_types
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    ProviderPayoutStatus,
    ProviderType,
)

E = TypeVar("E", bound=EventPayload)

AT: Final = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
PLAYER_KEY: Final = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"
SOURCE_KEY: Final = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"
CONTRACT_ID: Final = "CAAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQC526"
TX_HASH: Final = "ab" * 32
DIGEST: Final = "cd" * 32
XDR: Final = base64.b64encode(b"\x00\x00\x00\x02example-transaction-envelope").decode()
TESTNET: Final = "Test SDF Network ; September 2015"


def _usdc(amount: int = 25_000_000) -> dict[str, Any]:
    return {"asset": "USDC", "amount": amount}


_DESTINATION: Final = PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=PLAYER_KEY)
_PAYOUT: Final[dict[str, Any]] = {
    "payout_id": "po-1",
    "payout_request_id": "pr-1",
    "claim_id": "cl-1",
    "player_id": "p-1",
    "amount": _usdc(),
    "provider": ProviderType.STELLAR,
    "idempotency_key": "cl-1:payout",
}
_SUMMARY: Final[dict[str, Any]] = {
    "reported_at": AT,
    "placement_count": 2,
    "digest": DIGEST,
    "top": [{"player_id": "p-1", "rank": 1, "score": 900}, {"player_id": "p-2", "rank": 2, "score": 700}],
}

_EXAMPLES: Final[dict[type[EventPayload], Callable[[], dict[str, Any]]]] = {
    ev.RoundOpened: lambda: {
        "round_id": "r-1",
        "competition_id": "c-1",
        "game_id": "g-1",
        "organizer_id": "org-1",
        "opened_at": AT,
        "entry_fee": {"asset": "USD", "amount": 500},
        "prize": {"asset": "USDC", "amount": 100_000_000, "campaign_id": "camp-1"},
        "distribution": {"template": "top3"},
        "platform_fee_bps": 1000,
        "organizer_fee_bps": 500,
    },
    ev.EntryRecorded: lambda: {
        "round_id": "r-1",
        "entry_id": "e-1",
        "player_id": "p-1",
        "fee": {"asset": "USD", "amount": 500},
        "paid_via": "wallet",
        "recorded_at": AT,
    },
    ev.RoundClosed: lambda: {"round_id": "r-1", "closed_at": AT, "entry_count": 2},
    ev.RoundResultsReported: lambda: {
        "round_id": "r-1",
        "placements": [
            {"player_id": "p-1", "rank": 1, "score": 900},
            {"player_id": "p-2", "rank": 2, "score": 700},
        ],
        "reported_at": AT,
    },
    ev.GameRoundVoided: lambda: {"round_id": "r-1", "reason": "server crashed", "voided_at": AT},
    ev.RoundStateChanged: lambda: {
        "round_id": "r-1",
        "from_state": "closed",
        "to_state": "resolved",
        "reason": "results reported",
        "changed_at": AT,
    },
    ev.RoundSettled: lambda: {
        "round_id": "r-1",
        "competition_id": "c-1",
        "asset": "USDC",
        "prize_source": "sponsored",
        "campaign_id": "camp-1",
        "distributable": 100_000_000,
        "allocations": [
            {"player_id": "p-1", "rank": 1, "amount": 50_000_000, "source": "pool"},
            {"player_id": "p-2", "rank": 2, "amount": 30_000_000, "source": "pool"},
        ],
        "remainder": 20_000_000,
        "fees": [
            {"party": "platform", "account_id": "rev-platform", "amount": {"asset": "USD", "amount": 100}},
            {"party": "organizer", "account_id": "rev-org-1", "amount": {"asset": "USD", "amount": 50}},
        ],
        "settled_at": AT,
    },
    ev.RoundVoided: lambda: {
        "round_id": "r-1",
        "reason": "server crashed",
        "refunds": [
            {
                "player_id": "p-1",
                "entry_id": "e-1",
                "amount": {"asset": "USD", "amount": 500},
                "paid_via": "wallet",
            }
        ],
        "voided_at": AT,
    },
    ev.EntryAccepted: lambda: {
        "round_id": "r-1",
        "entry_id": "e-1",
        "player_id": "p-1",
        "fee": {"asset": "USD", "amount": 500},
        "paid_via": "wallet",
        "accepted_at": AT,
    },
    ev.RoundDisputed: lambda: {
        "round_id": "r-1",
        "existing": _SUMMARY,
        "conflicting": {**_SUMMARY, "digest": "ef" * 32},
        "disputed_at": AT,
    },
    ev.RewardAllocated: lambda: {
        "allocation_id": "r-1:p-1",
        "round_id": "r-1",
        "competition_id": "c-1",
        "player_id": "p-1",
        "rank": 1,
        "amount": _usdc(50_000_000),
        "source": "pool",
        "campaign_id": "camp-1",
        "transfer_id": "tr-1",
        "allocated_at": AT,
    },
    ev.RefundIssued: lambda: {
        "refund_id": "rf-1",
        "round_id": "r-1",
        "entry_id": "e-1",
        "player_id": "p-1",
        "amount": {"asset": "USD", "amount": 500},
        "paid_via": "wallet",
        "transfer_id": "tr-2",
        "issued_at": AT,
    },
    ev.ClaimHeld: lambda: {
        "claim_id": "cl-1",
        "player_id": "p-1",
        "amount": _usdc(),
        "code": "amount_over_threshold",
        "held_at": AT,
    },
    ev.ClaimApproved: lambda: {"claim_id": "cl-1", "player_id": "p-1", "amount": _usdc(), "approved_at": AT},
    ev.ClaimRejected: lambda: {
        "claim_id": "cl-1",
        "player_id": "p-1",
        "amount": _usdc(),
        "code": "insufficient_balance",
        "rejected_at": AT,
    },
    ev.PoolLow: lambda: {"campaign_id": "camp-1", "asset": "USDC", "remaining": 10, "threshold": 1000},
    ev.PoolExhausted: lambda: {
        "campaign_id": "camp-1",
        "asset": "USDC",
        "remaining": 10,
        "requested": 1000,
        "round_id": "r-1",
    },
    ev.PayoutRequested: lambda: {
        "payout_request_id": "pr-1",
        "claim_id": "cl-1",
        "player_id": "p-1",
        "amount": _usdc(),
        "destination": _DESTINATION,
        "idempotency_key": "cl-1:payout",
        "requested_by": "p-1",
        "requested_at": AT,
    },
    ev.PayoutRequestRefused: lambda: {
        "payout_request_id": "pr-1",
        "claim_id": "cl-1",
        "code": "no_provider_route",
        "detail": "no provider pays USDC to a stellar_account",
        "refused_at": AT,
    },
    ev.PayoutRoutesPublished: lambda: {
        "sequence": 1,
        "routes": [{"asset": "USDC", "destination_type": "stellar_account", "provider": "stellar"}],
        "published_at": AT,
    },
    ev.PayoutCreated: lambda: {
        **_PAYOUT,
        "destination": _DESTINATION,
        "approval_policy": "single",
        "created_at": AT,
    },
    ev.PayoutApproved: lambda: {
        **_PAYOUT,
        "approval_policy": "single",
        "approved_by": ["admin-1"],
        "approved_at": AT,
    },
    ev.PayoutSubmitted: lambda: {
        **_PAYOUT,
        "attempt": 1,
        "tx_hash": TX_HASH,
        "valid_until": AT,
        "submitted_at": AT,
    },
    ev.PayoutPaid: lambda: {**_PAYOUT, "tx_hash": TX_HASH, "paid_at": AT},
    ev.PayoutFailed: lambda: {
        **_PAYOUT,
        "attempt": 1,
        "code": PayoutErrorCode.TX_BAD_SEQ,
        "retryable": True,
        "final": False,
        "detail": "sequence number too low",
        "next_attempt_at": AT,
        "failed_at": AT,
    },
    ev.PayoutCancelled: lambda: {
        **_PAYOUT,
        "cancelled_by": "admin-1",
        "reason": "player asked",
        "cancelled_at": AT,
    },
    ev.PayoutRejected: lambda: {
        **_PAYOUT,
        "rejected_by": "admin-2",
        "reason": "suspicious",
        "rejected_at": AT,
    },
    ev.PayoutReturned: lambda: {
        **_PAYOUT,
        "returned_amount": _usdc(),
        "reason": "destination closed",
        "returned_at": AT,
    },
    ev.LedgerPosted: lambda: {
        "transfer_id": "0b7c4f1e-3f55-5d8e-9a51-2b9f8e7c6d5a",
        "kind": "payout",
        "provider": "stripe",
        "amount": _usdc(),
        "claim_id": "claim-1",
        "payout_id": "po-1",
        "posted_at": AT,
    },
    ev.ReconciliationAdjusted: lambda: {
        "adjustment_id": "recon-7",
        "exception_id": 7,
        "kind": "write_off",
        "provider": "stripe",
        "provider_name": "stripe",
        "amount": _usdc(),
        "payout_id": "po-1",
        "approved_by": ["ops-1", "approver-2"],
        "reason": "paid twice at the provider; recovery refused",
        "adjusted_at": AT,
    },
    ev.SignatureRequested: lambda: {
        "request_id": "sig-1",
        "payout_ids": ["po-1", "po-2"],
        "unsigned_xdr": XDR,
        "network_passphrase": TESTNET,
        "source_account": SOURCE_KEY,
        "intent": [
            {
                "type": "payment",
                "payout_id": "po-1",
                "destination": PLAYER_KEY,
                "asset": "USDC",
                "amount_stroops": 25_000_000,
            },
            {
                "type": "invoke_contract",
                "payout_ids": ["po-2"],
                "contract_id": CONTRACT_ID,
                "method": "distribute_winnings",
                "args": [
                    {"type": "address", "value": PLAYER_KEY},
                    {"type": "i128", "value": "25000000"},
                ],
            },
        ],
        "max_fee_stroops": 2_000_000,
    },
    ev.TransactionSigned: lambda: {
        "request_id": "sig-1",
        "payout_ids": ["po-1", "po-2"],
        "signed_xdr": XDR,
        "tx_hash": TX_HASH,
        "signed_by": SOURCE_KEY,
    },
    ev.TonSignatureRequested: lambda: {
        "request_id": "ton-sig-1",
        "payout_ids": ["po-1"],
        "wallet": "0:" + "11" * 32,
        "unsigned_body_boc": XDR,
        "seqno": 7,
        "valid_until": 1_900_000_000,
        "intent": {
            "type": "ton_transfer",
            "payout_id": "po-1",
            "destination": "0:" + "22" * 32,
            "asset": "USDT",
            "amount": 2_500_000,
            "bounce": False,
            "jetton_master": "0:" + "44" * 32,
            "jetton_wallet": "0:" + "33" * 32,
        },
    },
    ev.TonBatchSignatureRequested: lambda: {
        "request_id": "ton-batch-1",
        "payout_ids": ["po-1", "po-2"],
        "wallet": "0:" + "11" * 32,
        "unsigned_inner_boc": XDR,
        "query_id": (3 << 10) | 17,
        "created_at": 1_900_000_000,
        "timeout": 3600,
        "intents": [
            {
                "type": "ton_transfer",
                "payout_id": "po-1",
                "destination": "0:" + "22" * 32,
                "asset": "TON",
                "amount": 1_500_000_000,
                "bounce": False,
            },
            {
                "type": "ton_transfer",
                "payout_id": "po-2",
                "destination": "0:" + "55" * 32,
                "asset": "USDT",
                "amount": 2_500_000,
                "bounce": True,
                "jetton_master": "0:" + "44" * 32,
                "jetton_wallet": "0:" + "33" * 32,
            },
        ],
    },
    ev.TonBatchSigned: lambda: {
        "request_id": "ton-batch-1",
        "payout_ids": ["po-1", "po-2"],
        "signed_boc": XDR,
        "message_hash": TX_HASH,
        "signed_by": "ab" * 32,
    },
    ev.TonMessageSigned: lambda: {
        "request_id": "ton-sig-1",
        "payout_ids": ["po-1"],
        "signed_boc": XDR,
        "message_hash": TX_HASH,
        "signed_by": "ab" * 32,
    },
    ev.SignatureRefused: lambda: {
        "request_id": "sig-1",
        "payout_ids": ["po-1"],
        "code": "amount_mismatch",
        "detail": "payment of 25000001 stroops, intent says 25000000",
    },
    ev.ProviderEventReceived: lambda: {
        "provider": "stripe",
        "provider_event_id": "evt_1",
        "provider_payout_ref": "po_123",
        "idempotency_key": "cl-1:payout",
        "kind": "payout.paid",
        "received_at": AT,
        "verified": True,
        "status": ProviderPayoutStatus.PAID,
        "payload_digest": DIGEST,
    },
    ev.PaymentEventReceived: lambda: {
        "provider": "stripe",
        "provider_event_id": "evt_2",
        "kind": "checkout.session.completed",
        "received_at": AT,
        "verified": True,
        "status": ev.PaymentEventStatus.PAID,
        "top_up_id": "tu-1",
        "session_ref": "cs_test_1",
        "payment_ref": "pi_1",
        "amount": {"asset": "USD", "amount": 2_500},
        "payload_digest": DIGEST,
    },
    ev.VerificationEventReceived: lambda: {
        "provider": "sumsub",
        "provider_name": "sumsub",
        "provider_event_id": "5cb56e8e0a975a35f333cb83:applicantReviewed:20240221132319002",
        "applicant_ref": "5cb56e8e0a975a35f333cb83",
        "player_id": "p-1",
        "kind": "applicantReviewed",
        "received_at": AT,
        "payload_digest": DIGEST,
    },
    ev.TopUpCredited: lambda: {
        "top_up_id": "tu-1",
        "player_id": "p-1",
        "amount": {"asset": "USD", "amount": 2_500},
        "provider": "stripe",
        "session_ref": "cs_test_1",
        "transfer_id": "tr-9",
        "credited_at": AT,
    },
    ev.TopUpAdjusted: lambda: {
        "top_up_id": "tu-1",
        "player_id": "p-1",
        "kind": ev.TopUpAdjustmentKind.REFUND,
        "adjustment_ref": "re_1",
        "amount": {"asset": "USD", "amount": 2_500},
        "debited": 2_000,
        "receivable": 500,
        "adjusted_at": AT,
    },
    ev.PlayerVerificationChanged: lambda: {
        "player_id": "p-1",
        "reference": "kyc-p-1",
        "status": "verified",
        "sequence": 3,
        "changed_at": AT,
    },
    ev.RiskPolicyActivated: lambda: {
        "policy": {
            "version": 2,
            "rules": [
                {
                    "scope": {"asset": "USDC"},
                    "kyc_above": {"amount": 100_000, "window_s": 2_592_000},
                    "velocity": {"count": 5, "window_s": 3_600},
                    "allowed_rails": ["stellar", "stripe"],
                }
            ],
            "note": "verify above 1,000 USDC a month",
        },
        "proposed_by": "admin-1",
        "approved_by": "admin-2",
        "activated_at": AT,
    },
    ev.AdminActionRecorded: lambda: {
        "action_id": "act-1",
        "actor_user_id": "admin-1",
        "actor_roles": ["admin", "approver"],
        "action": "payout.approve",
        "target_type": "payout",
        "target_id": "po-1",
        "reason": "verified with player",
        "before": {"status": "pending_approval"},
        "after": {"status": "approved"},
        "service": "payouts",
        "occurred_at": AT,
    },
}


def example_data(cls: type[EventPayload]) -> dict[str, Any]:
    """The raw fields of the example for `cls` (a fresh dict each call)."""
    try:
        return _EXAMPLES[cls]()
    except KeyError:
        raise KeyError(f"no example for {cls.__name__}; add one to prizeflow_testkit.events") from None


def example_payload(cls: type[E], **overrides: Any) -> E:
    """A valid instance of `cls`, with `overrides` applied on top of the example."""
    return cls.model_validate({**example_data(cls), **overrides})


def all_examples() -> list[EventPayload]:
    """One example per registered event type."""
    return [example_payload(cls) for _, cls in sorted(event_types().items())]


__all__ = ["AT", "all_examples", "example_data", "example_payload"]
