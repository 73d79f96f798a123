"""The gift-card rail's test doubles: the emulator's own books (`prizeflow_giftcard_emulator.state.Store`) behind
an `httpx` transport, so the payouts adapter is exercised on the emulator's rules without a socket, and a
providers-file entry builder. Imported by tests only.

    transport = StoreTransport()
    provider = build_test_provider(transport=transport)
    transport.fail_next("timeout_after_success")           # the order is placed, the answer lost
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

import httpx

from prizeflow_giftcard_emulator.server import json_default
from prizeflow_giftcard_emulator.state import ApiError, Store
from prizeflow_payouts.adapters.giftcard import GiftCardPayoutProvider, build_giftcard
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec

TEST_API_KEY: Final = "TEST_prizeflow_giftcard_unit_key"
TEST_WEBHOOK_KEY: Final = "giftcard-webhook-key-for-unit-tests"
API_BASE: Final = "http://giftcard-api"  # a local service name: plain http is allowed
FAULTS: Final = (
    "pass",
    "rate_limit",
    "server_error",
    "unauthorized",
    "connect_error",
    "timeout_after_success",
    "read_error",
)


def giftcard_provider_doc(
    *,
    name: str = "giftcards",
    assets: tuple[str, ...] = ("USD",),
    api_key_env: str = "GIFTCARD_API_KEY",
    webhook_key_env: str | None = "GIFTCARD_WEBHOOK_KEY",
    **options: Any,
) -> dict[str, Any]:
    """A providers-file entry for the gift_card rail (options override the defaults)."""
    secrets = {"api_key": api_key_env}
    if webhook_key_env is not None:
        secrets["webhook_key"] = webhook_key_env
    return {
        "name": name,
        "type": "gift_card",
        "assets": list(assets),
        "destination_types": ["email"],
        "secrets": secrets,
        "options": {
            "api_base": API_BASE,
            "products": {"USD": ["OKMHM2X2OHYV"], "INR": ["ET0ZVETV5ILN"]}
            if "INR" in assets
            else {"USD": ["OKMHM2X2OHYV"]},
            "timeout_s": 2.0,
            **options,
        },
    }


class StoreTransport(httpx.AsyncBaseTransport):
    """The emulator's API on its in-memory `Store`: auth, the routes the rail calls, and one-shot faults."""

    def __init__(self, store: Store | None = None, *, api_key: str = TEST_API_KEY) -> None:
        self.store = store or Store(balances={"USD": Decimal(1_000_000), "INR": Decimal(10_000_000)})
        self.api_key = api_key
        self.calls: list[tuple[str, str]] = []
        self._faults: list[str] = []
        # Runs on the books before the next call with this method and path prefix is answered (a race).
        self._before: list[tuple[str, str, Callable[[Store], object]]] = []

    def before(self, method: str, path_prefix: str, action: Callable[[Store], object]) -> None:
        """Do `action` on the books just before the next `method` call under `path_prefix` is answered."""
        self._before.append((method, path_prefix, action))

    def fail_next(self, *kinds: str) -> None:
        """Faults for the next calls, in order (`pass`: that call is answered normally)."""
        assert all(k in FAULTS for k in kinds), kinds
        self._faults.extend(kinds)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v2")
        self.calls.append((request.method, path))
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._answer(401, ApiError(401, "Authentication failed").to_json())
        for hook in list(self._before):
            if hook[0] == request.method and path.startswith(hook[1]):
                self._before.remove(hook)
                hook[2](self.store)
        fault = self._faults.pop(0) if self._faults else None
        if fault == "connect_error":
            raise httpx.ConnectError("refused", request=request)
        if fault == "read_error":
            raise httpx.ReadError("reset", request=request)
        if fault in ("rate_limit", "server_error", "unauthorized"):
            status = {"rate_limit": 429, "server_error": 500, "unauthorized": 401}[fault]
            return self._answer(status, ApiError(status, fault).to_json())
        try:
            status, doc = self._route(request.method, path, request)
        except ApiError as err:
            return self._answer(err.status, err.to_json())
        if fault == "timeout_after_success":
            raise httpx.ReadTimeout("timed out", request=request)
        return self._answer(status, doc)

    def _route(self, method: str, path: str, request: httpx.Request) -> tuple[int, dict[str, Any]]:  # noqa: PLR0911 - a route table
        s = self.store
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["orders"]:
            status, order = s.create_order(json.loads(request.content, parse_float=Decimal))
            return status, {"order": order.to_json()}
        if method == "GET" and parts == ["orders"]:
            found = s.find(request.url.params.get("external_id", ""))
            return 200, {"orders": [o.to_json() for o in found]}
        if method == "GET" and len(parts) == 2 and parts[0] == "orders":
            return 200, {"order": s.order(parts[1]).to_json()}
        if method == "GET" and len(parts) == 2 and parts[0] == "rewards":
            return 200, {"reward": s.reward(parts[1]).to_json()}
        if method == "POST" and len(parts) == 3 and parts[0] == "rewards" and parts[2] == "cancel":
            return 200, {"reward": s.cancel_reward(parts[1]).to_json()}
        if method == "POST" and len(parts) == 3 and parts[0] == "order_approvals":
            order = s.approve(parts[1]) if parts[2] == "approve" else s.reject(parts[1])
            return 200, {"order": order.to_json()}
        if method == "GET" and parts == ["products"]:
            return 200, {"products": [p.to_json() for p in s.products.values()]}
        raise ApiError(404, "Resource not found")

    @staticmethod
    def _answer(status: int, doc: Any) -> httpx.Response:
        return httpx.Response(
            status, content=json.dumps(doc, default=json_default).encode(), headers={"content-type": "application/json"}
        )


def build_test_provider(
    transport: httpx.AsyncBaseTransport, *, webhook: bool = True, **doc: Any
) -> GiftCardPayoutProvider:
    env = {"GIFTCARD_API_KEY": TEST_API_KEY, "GIFTCARD_WEBHOOK_KEY": TEST_WEBHOOK_KEY}
    entry = giftcard_provider_doc(webhook_key_env="GIFTCARD_WEBHOOK_KEY" if webhook else None, **doc)
    spec = ProviderSpec.model_validate(entry, context={"env": env})
    ctx = ProviderContext(
        live_execution=False, database_url="postgresql+asyncpg://x@127.0.0.1:1/x", provider_timeout_s=10
    )
    provider = build_giftcard(spec, ctx, transport=transport).payouts
    assert isinstance(provider, GiftCardPayoutProvider)
    return provider


__all__ = [
    "API_BASE",
    "TEST_API_KEY",
    "TEST_WEBHOOK_KEY",
    "StoreTransport",
    "build_test_provider",
    "giftcard_provider_doc",
]
