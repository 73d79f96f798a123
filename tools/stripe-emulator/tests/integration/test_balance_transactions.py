"""Balance transactions and discrepancies over HTTP, through the official library: Stripe's list (cursor paging,
`created` range, `expand[]`), a connected account's with `Stripe-Account`, and `POST /_emulator/discrepancies`."""

from __future__ import annotations

import time

import httpx
import pytest
import stripe
from stripe.params._balance_transaction_list_params import BalanceTransactionListParams

from prizeflow_testkit.stripe import StripeAdmin, StripeEmulator

pytestmark = pytest.mark.integration


def transfer(client: stripe.StripeClient, key: str, account: str, amount: int = 1_000) -> stripe.Transfer:
    return client.v1.transfers.create(
        {
            "amount": amount,
            "currency": "usd",
            "destination": account,
            "transfer_group": f"pay-{key}",
            "metadata": {"payout_id": f"pay-{key}", "idempotency_key": key},
        },
        {"idempotency_key": key},
    )


async def test_balance_transactions_page_with_stripes_cursor_and_expand_their_source(
    admin: StripeAdmin, client: stripe.StripeClient
) -> None:
    await admin.fund("usd", 100_000)
    account = (await admin.create_account())["id"]
    made = [transfer(client, f"k{n}", account, 100 + n) for n in range(3)]
    since = int(time.time()) - 60
    params: BalanceTransactionListParams = {
        "limit": 2,
        "created": {"gte": since},
        "type": "transfer",
        "expand": ["data.source"],
    }
    first = client.v1.balance_transactions.list(params)
    assert first.has_more
    assert first.url == "/v1/balance_transactions"
    rest = client.v1.balance_transactions.list({**params, "starting_after": first.data[-1].id})
    assert not rest.has_more
    listed = [*first.data, *rest.data]
    assert [bt.amount for bt in listed] == [-102, -101, -100]  # newest first, money out is negative
    sources = [bt.to_dict()["source"] for bt in listed]
    assert [s["id"] for s in sources] == [t.id for t in reversed(made)]
    assert sources[0]["metadata"]["idempotency_key"] == "k2"
    none_yet = client.v1.balance_transactions.list({"created": {"lt": since}})
    assert none_yet.data == []
    theirs = client.v1.balance_transactions.list(None, {"stripe_account": account})
    assert [bt.type for bt in theirs.data] == ["payment"] * 3


async def test_discrepancies_answer_the_line_they_made_and_refuse_what_they_cannot(
    emulator: StripeEmulator, admin: StripeAdmin, client: stripe.StripeClient
) -> None:
    await admin.fund("usd", 100_000)
    account = (await admin.create_account())["id"]
    made = transfer(client, "k1", account)
    async with httpx.AsyncClient(base_url=emulator.url + "/_emulator", timeout=10) as http:
        fee = await http.post("/discrepancies", json={"kind": "fee", "reference": "k1", "amount": 25})
        assert (fee.status_code, fee.json()) == (201, {"line_id": f"{made.balance_transaction}:fee"})
        unknown = await http.post("/discrepancies", json={"kind": "amount", "reference": "nobody", "amount": 5})
        assert unknown.status_code == 404
        bad = await http.post("/discrepancies", json={"kind": "teleport", "reference": "k1"})
        assert bad.status_code == 400
        missing = await http.post("/discrepancies", json={"kind": "missing", "reference": "pay-k1"})
        assert (missing.status_code, missing.json()) == (201, {"line_id": None})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.retrieve(made.id)
    bt = client.v1.balance_transactions.list({"type": "transfer"})
    assert bt.data == []
