"""The upi rail under unlucky networks and careless operators, against a scripted RazorpayX (no process): what a
RazorpayX answer proves about a payout must never be read as a failure that voids its reservation."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    PayoutLookup,
    ProviderType,
)
from prizeflow_payouts.adapters.upi import Mode, payout_key
from prizeflow_payouts.adapters.upi.book import FundAccount, Validation
from prizeflow_payouts.adapters.upi.options import Purpose, UpiKeys, UpiOptions
from prizeflow_payouts.adapters.upi.provider import UpiPayoutProvider
from prizeflow_payouts.domain.retry import AfterFailure, plan_after_failure

C = PayoutErrorCode
ACCOUNT = "7878780080316316"
VPA = "player@okaxis"
PAYOUT_ID = "po-0123456789abcdef0123456789abcdef"


class MemoryBook:
    """`FundAccountBook` in memory: the destination already validated (`active`)."""

    def __init__(self) -> None:
        self.accounts = {("upi", VPA): FundAccount("upi", VPA, "cont_1", "fa_1", Validation.ACTIVE, "fav_1")}

    async def get(self, provider: str, destination: str) -> FundAccount | None:
        return self.accounts.get((provider, destination))

    async def remember(self, account: FundAccount) -> FundAccount:
        return self.accounts.setdefault((account.provider, account.destination), account)

    async def validated(self, account: FundAccount, validation: Validation, validation_id: str) -> FundAccount:
        found = replace(account, validation=validation, validation_id=validation_id)
        self.accounts[(account.provider, account.destination)] = found
        return found

    async def destinations(self, provider: str, fund_account_ids: list[str]) -> dict[str, str]:
        ours = self.accounts.values()
        return {a.fund_account_id: a.destination for a in ours if a.fund_account_id in fund_account_ids}


class RazorpayX:
    """Payouts under idempotency keys as RazorpayX keeps them: the same key and body answer the first payout, the
    same key with another body is a 400 naming the header. `listed`: whether a payout made is listed yet by
    `GET /v1/payouts?reference_id=` (a create still committing there is not); `lose_answer`: the next create is
    carried out and its answer lost (a read timeout)."""

    def __init__(self) -> None:
        self.payouts: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # key -> (body, payout)
        self.listed = True
        self.lose_answer = False
        self.validations: list[str] = []  # each validation's status, by its number
        self.next_validation = "completed"

    def validation(self, n: int) -> dict[str, Any]:
        status = self.validations[n - 1]
        results = {"account_status": "active"} if status == "completed" else {}
        return {"id": f"fav_{n}", "entity": "fund_account.validation", "status": status, "results": results}

    def handler(self, request: httpx.Request) -> httpx.Response:
        if (request.method, request.url.path) == ("POST", "/v1/payouts"):
            key, body = request.headers["X-Payout-Idempotency"], json.loads(request.content)
            if key in self.payouts:
                first, payout = self.payouts[key]
                if first != body:
                    error = {"code": "BAD_REQUEST_ERROR", "reason": "input_validation_failed",
                             "description": "Different request body sent for the same Idempotency Header",
                             "field": "X-Payout-Idempotency"}  # fmt: skip
                    return httpx.Response(400, json={"error": error})
                return httpx.Response(200, json=payout)
            payout = {"id": f"pout_{len(self.payouts) + 1}", "entity": "payout", "status": "processing",
                      "reference_id": body["reference_id"], "amount": body["amount"], "fees": 0,
                      "notes": body["notes"], "created_at": 1_750_000_000}  # fmt: skip
            self.payouts[key] = (body, payout)
            if self.lose_answer:
                self.lose_answer = False
                raise httpx.ReadTimeout("the answer was lost", request=request)
            return httpx.Response(200, json=payout)
        if (request.method, request.url.path) == ("POST", "/v1/fund_accounts/validations"):
            self.validations.append(self.next_validation)
            return httpx.Response(200, json=self.validation(len(self.validations)))
        if request.method == "GET" and request.url.path.startswith("/v1/fund_accounts/validations/"):
            return httpx.Response(200, json=self.validation(int(request.url.path.rsplit("_", 1)[1])))
        if (request.method, request.url.path) == ("GET", "/v1/payouts"):
            reference = request.url.params["reference_id"]
            items = [p for _, p in self.payouts.values() if p["reference_id"] == reference] if self.listed else []
            return httpx.Response(200, json={"entity": "collection", "count": len(items), "items": items})
        return httpx.Response(404, json={"error": {"code": "BAD_REQUEST_ERROR", "description": "no such route"}})


def rail(razorpayx: RazorpayX, book: MemoryBook, **changed: Any) -> UpiPayoutProvider:
    options = UpiOptions(
        name="upi",
        provider_type=ProviderType.UPI,
        api_base="http://razorpayx.test",
        account_number=ACCOUNT,
        limits={Mode.UPI: 10_000_000},
        queue_if_low_balance=True,
        purpose=Purpose.PAYOUT,
        contact_name="Prizeflow player",
        narration="Prizeflow prize",
        timeout_s=1.0,
        validate_accounts=True,
    )
    keys = UpiKeys(key_id="rzp_test_abc", key_secret="secret-value-0123456789", webhook_secrets=())
    return UpiPayoutProvider(
        replace(options, **changed), keys=keys, book=book, transport=httpx.MockTransport(razorpayx.handler)
    )


def instruction() -> PayoutInstruction:
    return PayoutInstruction(
        payout_id=PAYOUT_ID,
        idempotency_key="claim-1:payout:1",
        amount=Money(asset="INR", amount=50_000),
        destination=PayoutDestination(type=DestinationType.UPI, address=VPA),
    )


def lookup() -> PayoutLookup:
    i = instruction()
    return PayoutLookup(
        payout_id=i.payout_id, idempotency_key=i.idempotency_key, amount=i.amount, destination=i.destination
    )


async def test_a_reused_key_refused_for_another_body_is_a_payout_at_razorpayx_never_a_final_failure() -> None:
    """Attempt 1's create lands and its answer is lost; its sync-first finds nothing yet (RazorpayX still committing
    it); meanwhile an operator changed an option that goes into the body (the narration here; `queue_if_low_balance`,
    a limit that picks another mode, the purpose alike). Attempt 2 creates under the same key with another body:
    RazorpayX refuses it, which proves a payout exists under our key. Read as `duplicate_request` (terminal), the
    payout failed for good, its reservation went back to the wallet, and RazorpayX paid attempt 1: paid twice."""
    razorpayx, book = RazorpayX(), MemoryBook()
    razorpayx.lose_answer = True
    with pytest.raises(PayoutProviderError) as lost:
        await rail(razorpayx, book).create_payout(instruction())
    assert lost.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    razorpayx.listed = False
    changed = rail(razorpayx, book, narration="Prize")
    with pytest.raises(PayoutProviderError) as absent:
        await changed.sync_status(lookup())
    assert absent.value.code is C.PAYOUT_NOT_FOUND  # the worker then creates again, under the same key
    with pytest.raises(PayoutProviderError) as refused:
        await changed.create_payout(instruction())
    assert list(razorpayx.payouts) == [payout_key(PAYOUT_ID)]  # one payout at RazorpayX, under our key
    err = refused.value.error
    plan = plan_after_failure(code=err.code, retryable=err.retryable, attempts=20, max_attempts=20)
    assert plan.after is not AfterFailure.FINAL, f"{err.code.value}: the reservation would be voided"
    assert err.code is C.TIMEOUT_UNKNOWN_OUTCOME
    razorpayx.listed = True  # once listed, its sync reads attempt 1's payout
    assert (await changed.sync_status(lookup())).provider_ref == "pout_1"


async def test_a_validation_the_bank_did_not_answer_does_not_hold_every_later_payout_to_the_destination() -> None:
    """The bank did not answer a destination's validation (`failed`): its payout is held until a person cancels it,
    and the runbook tells them to, the player "may claim again" (docs/runbooks/upi-payouts.md). The next payout to
    the destination read the same failed validation again and was held too: the player could never be paid there.
    A new payout asks for a new validation; a held payout's syncs never ask (no penny drop a poll)."""
    razorpayx, book = RazorpayX(), MemoryBook()
    razorpayx.validations = ["failed"]
    book.accounts[("upi", VPA)] = replace(
        book.accounts[("upi", VPA)], validation=Validation.FAILED, validation_id="fav_1"
    )
    upi = rail(razorpayx, book)
    held = await upi.sync_status(lookup())  # the held payout's sync: the old validation, read again
    assert held.raw_status == "validation:failed"
    assert razorpayx.validations == ["failed"]
    later = instruction().model_copy(
        update={"payout_id": "po-fedcba9876543210fedcba9876543210", "idempotency_key": "claim-2:payout:1"}
    )
    sent = await upi.create_payout(later)  # the bank answers now
    assert razorpayx.validations == ["failed", "completed"]
    assert (sent.raw_status, sent.provider_ref) == ("processing", "pout_1")
    # The held payout, not cancelled meanwhile: the account exists, nothing is at RazorpayX under its reference, so
    # the worker creates it (a retry, asking the provider first), under its own key.
    with pytest.raises(PayoutProviderError) as free:
        await upi.sync_status(lookup())
    assert free.value.code is C.PAYOUT_NOT_FOUND
    resumed = await upi.create_payout(instruction())
    assert (resumed.raw_status, resumed.provider_ref) == ("processing", "pout_2")
    assert razorpayx.validations == ["failed", "completed"]
