"""The Telegram rail without Telegram: its configuration refusals, what it refuses before anything is reserved or
created (`validate`, and so routing), its capabilities, and how Bot API failures map to stable codes. Flows against
the emulator and PostgreSQL are in the conformance kit (tests/conformance -k telegram) and tests/e2e."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from telegram import error as tg

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    PayoutLookup,
    ProviderType,
)
from prizeflow_payouts.adapters.telegram import TelegramErrors, TelegramGiftProvider
from prizeflow_payouts.application.create import CreatePayouts
from prizeflow_payouts.application.payout_requests import CreatePayoutCommand
from prizeflow_payouts.application.rail import may_have_landed
from prizeflow_payouts.bootstrap import parse_config, provider_factories
from prizeflow_payouts.domain.approval import ApprovalBook
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext
from prizeflow_testkit.conformance.telegram import telegram_provider_doc

C = PayoutErrorCode
TOKEN = "123456789:AAEhBP0av28sIqKr7mU-synthetic-token-0000"
ENV = {"TELEGRAM_BOT_TOKEN": TOKEN}
CTX = ProviderContext(live_execution=False, database_url="postgresql+asyncpg://x@127.0.0.1:1/x", provider_timeout_s=10)


def doc(**options: Any) -> dict[str, Any]:
    entry = telegram_provider_doc(
        name="telegram", api_base="http://127.0.0.1:1", token_env="TELEGRAM_BOT_TOKEN", settle_after_s=300
    )
    entry["options"] = {**entry["options"], **options}  # type: ignore[dict-item]
    return {k: v for k, v in entry.items() if v is not None}


def build(entry: dict[str, Any], env: dict[str, str] | None = None, ctx: ProviderContext = CTX) -> Any:
    return parse_config({"providers": [entry]}, ctx, env=ENV if env is None else env)


def rail() -> TelegramGiftProvider:
    p = next(iter(build(doc()).registry)).provider
    assert isinstance(p, TelegramGiftProvider)
    return p


def instruction(address: str = "4242", amount: int = 15, asset: str = "XTR", dtype: str = "telegram_user") -> Any:
    return PayoutInstruction(
        payout_id="po-1",
        idempotency_key="claim-1:payout:1",
        amount=Money(asset=asset, amount=amount),
        destination=PayoutDestination(type=DestinationType(dtype), address=address),
    )


def test_the_type_has_a_factory_and_builds_a_rail_that_says_what_it_cannot_do() -> None:
    assert ProviderType.TELEGRAM_IF_SUPPORTED in provider_factories()
    entry = next(iter(build(doc()).registry))
    p = entry.provider
    assert isinstance(p, TelegramGiftProvider)
    assert entry.rail.validator is p
    assert entry.rail.engine is p
    assert entry.rail.database is p
    assert entry.rail.amounts is p
    caps = entry.capabilities
    assert (caps.supports_cancel, caps.supports_quote, caps.supports_webhooks) == (False, False, False)
    assert (caps.supports_batching, caps.supports_returns, caps.requires_signature) == (False, False, False)
    assert caps.async_confirmation
    assert caps.assets == ("XTR",)
    assert caps.destination_types == (DestinationType.TELEGRAM_USER,)
    assert entry.polls_status
    assert TOKEN not in repr(p)
    assert TOKEN not in str(entry.public)


@pytest.mark.parametrize(
    ("entry", "env", "ctx", "message"),
    [
        (doc(), {}, CTX, "needs environment variable TELEGRAM_BOT_TOKEN"),
        (doc(), {"TELEGRAM_BOT_TOKEN": "not-a-token-at-all"}, CTX, "is not a Telegram bot token"),
        ({**doc(), "assets": ["USD"]}, None, CTX, "Telegram Stars only"),
        ({**doc(), "destination_types": ["email"]}, None, CTX, "telegram_user destinations only"),
        (doc(gifts={}), None, CTX, "gifts"),
        (doc(gifts={"a": 15, "b": 15}), None, CTX, "both cost 15 stars"),
        (doc(gifts={"a": 0}), None, CTX, "positive star price"),
        (doc(api_base="http://bot.example.com"), None, CTX, "https outside loopback"),
        (doc(api_base="https://api.telegram.org"), None, CTX, "PAYOUTS_LIVE_EXECUTION is false"),
        (doc(api_base_env="TELEGRAM_API_URL"), None, CTX, "give api_base or api_base_env"),
        (doc(timeout_s=10), None, CTX, "below PAYOUTS_PROVIDER_TIMEOUT_MS"),
        (doc(settle_after_s=1, timeout_s=2), None, CTX, "settle_after_s must be longer"),
        (doc(text="x" * 129), None, CTX, "text"),
        (doc(pay_for_upgrade=True), None, CTX, "unknown option"),
    ],
)
def test_unusable_configuration_is_refused_naming_it(
    entry: dict[str, Any], env: dict[str, str] | None, ctx: ProviderContext, message: str
) -> None:
    with pytest.raises(ProviderConfigError, match="provider 'telegram'") as info:
        build(entry, env, ctx)
    assert message in str(info.value)
    assert TOKEN not in str(info.value)


def test_the_real_bot_api_is_used_only_with_live_execution() -> None:
    live = ProviderContext(live_execution=True, database_url="x", provider_timeout_s=10)
    assert next(iter(build(doc(api_base="https://api.telegram.org"), ctx=live).registry)).name == "telegram"


def test_api_base_env_reads_the_emulator_address() -> None:
    entry = doc()
    del entry["options"]["api_base"]
    entry["options"]["api_base_env"] = "TELEGRAM_API_URL"
    p = next(iter(build(entry, {**ENV, "TELEGRAM_API_URL": "http://127.0.0.1:9/"}).registry)).provider
    assert p.options.api_base == "http://127.0.0.1:9"


# -- refused before anything is reserved or created ------------------------------------------------------------
@pytest.mark.parametrize(
    ("instr", "code"),
    [
        (instruction(amount=16), C.UNSUPPORTED_OPERATION),  # no gift costs 16 stars: no arbitrary amounts
        (instruction(amount=1), C.UNSUPPORTED_OPERATION),
        (instruction(asset="USD", amount=1500), C.UNSUPPORTED_ASSET),
        (instruction(address="@player"), C.INVALID_DESTINATION),
        (instruction(address="0"), C.INVALID_DESTINATION),
        (instruction(address="4242", dtype="email"), C.INVALID_DESTINATION),
    ],
)
def test_a_payout_the_rail_cannot_make_is_refused_with_a_stable_terminal_code(instr: Any, code: C) -> None:
    error = rail().validate(instr)
    assert error is not None
    assert error.code is code
    assert not error.retryable


def test_a_gift_priced_amount_to_a_user_id_passes() -> None:
    assert rail().validate(instruction(amount=15)) is None
    assert rail().validate(instruction(amount=25, address="9007199254740991")) is None


def test_routing_refuses_an_amount_no_gift_matches_with_its_code_not_a_payout() -> None:
    cfg = build(doc())
    create = CreatePayouts(registry=cfg.registry, approvals=ApprovalBook({}), max_attempts=3, source="/test")
    cmd = CreatePayoutCommand(
        payout_request_id="pr-1",
        claim_id="cl-1",
        player_id="p-1",
        amount=Money(asset="XTR", amount=16),
        destination=PayoutDestination(type=DestinationType.TELEGRAM_USER, address="4242"),
        idempotency_key="cl-1:payout:1",
        requested_by="p-1",
        provider=None,
        correlation_id="corr-1",
    )
    entry, error = create._screen(cmd)
    assert entry is None
    assert error is not None
    assert error.code is C.UNSUPPORTED_OPERATION
    entry, error = create._screen(replace(cmd, amount=Money(asset="XTR", amount=15)))
    assert error is None
    assert entry is not None
    assert entry.name == "telegram"


async def test_what_the_bot_api_does_not_allow_is_refused_as_unsupported() -> None:
    p = rail()
    lookup = PayoutLookup(payout_id="po-1", idempotency_key="claim-1:payout:1")
    for call in (p.quote(instruction()), p.cancel(lookup), p.parse_webhook({}, b"{}")):
        with pytest.raises(PayoutProviderError) as err:
            await call
        assert err.value.code is C.UNSUPPORTED_OPERATION


# -- Bot API failures -> stable codes ----------------------------------------------------------------------------
def _caused(err: tg.TelegramError, cause: BaseException) -> tg.TelegramError:
    err.__cause__ = cause
    return err


@pytest.mark.parametrize(
    ("err", "code", "maybe"),
    [
        (tg.BadRequest("Balance_too_low"), C.INSUFFICIENT_PROVIDER_FUNDS, False),
        (tg.BadRequest("User_id_invalid"), C.DESTINATION_NOT_FOUND, False),
        (tg.BadRequest("Stargift_usage_limited"), C.UNSUPPORTED_OPERATION, False),
        (tg.BadRequest("Stargift_invalid"), C.UNSUPPORTED_OPERATION, False),
        (tg.BadRequest("Something new"), C.INVALID_REQUEST, False),
        (tg.Forbidden("Forbidden: bot was blocked by the user"), C.DESTINATION_BLOCKED, False),
        (tg.InvalidToken("Unauthorized"), C.AUTHENTICATION_FAILED, False),
        (tg.RetryAfter(3), C.RATE_LIMITED, False),
        (_caused(tg.NetworkError("connect"), httpx.ConnectError("refused")), C.PROVIDER_UNAVAILABLE, False),
        (_caused(tg.TimedOut("connect"), httpx.ConnectTimeout("slow")), C.PROVIDER_UNAVAILABLE, False),
        (tg.TimedOut("read"), C.TIMEOUT_UNKNOWN_OUTCOME, True),
        (tg.NetworkError("Internal Server Error"), C.TIMEOUT_UNKNOWN_OUTCOME, True),
        (tg.NetworkError("Bad Gateway"), C.TIMEOUT_UNKNOWN_OUTCOME, True),
        (tg.TelegramError("odd"), C.TIMEOUT_UNKNOWN_OUTCOME, True),
    ],
)
def test_a_send_failure_maps_to_a_stable_code_and_says_whether_the_gift_may_be_out(
    err: tg.TelegramError, code: C, maybe: bool
) -> None:
    error = TelegramErrors("telegram").classify(err, mutating=True)
    assert error.code is code
    assert may_have_landed(error) is maybe


def test_a_read_that_fails_is_only_unavailable() -> None:
    assert TelegramErrors("t").classify(tg.TimedOut("read"), mutating=False).code is C.PROVIDER_UNAVAILABLE
    assert TelegramErrors("t").classify(tg.NetworkError("500"), mutating=False).code is C.PROVIDER_UNAVAILABLE


def test_the_bot_token_in_a_librarys_url_log_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    rail()  # python-telegram-bot logs its API URL (/bot<token>) when the Bot is built
    logging.getLogger("httpx").info("HTTP Request: %s %s", "POST", f"http://127.0.0.1:1/bot{TOKEN}/sendGift")
    logging.getLogger("telegram.Bot").debug("Calling Bot API endpoint `sendGift` with parameters `user_id=4242`")
    assert "<bot-token>" in caplog.text
    assert TOKEN not in caplog.text
    assert "4242" not in caplog.text


def test_the_routes_announced_to_rewards_carry_the_gifts_prices() -> None:
    """Rewards refuses a claim of another amount before reserving anything (PayoutRoute.amounts)."""
    sandbox = {"name": "sandbox", "type": "sandbox", "assets": ["XTR"], "destination_types": ["telegram_user"]}
    only_gifts = build(doc()).registry.routes()
    assert only_gifts == [("XTR", DestinationType.TELEGRAM_USER, ProviderType.TELEGRAM_IF_SUPPORTED, (15, 25))]
    both = parse_config({"providers": [doc(), sandbox]}, CTX, env=ENV).registry.routes()
    assert (("XTR", DestinationType.TELEGRAM_USER, ProviderType.SANDBOX, None)) in both  # any amount: not fixed
    assert rail().payable_amounts("USD") == ()


class _ScanBooks:
    """The rail's scan-floor row, in memory: its unit of work and its books at once (the statements are told apart
    by identity)."""

    def __init__(self) -> None:
        self.floor: int | None = None

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[Any]:
        yield self

    async def scan_floor(self, provider: str) -> int | None:
        return self.floor

    async def change(self, statement: Any, params: Mapping[str, Any]) -> int:
        from prizeflow_payouts.adapters.telegram import journal

        assert statement is journal.ADVANCE_FLOOR
        self.floor = max(self.floor or 0, int(params["floor"]))
        return 1


class _LongHistoryBot:
    """getStarTransactions over a long history of old transactions; the call after `fail_after` pages is cut off
    (the worker's timeout)."""

    def __init__(self, old: int, fail_after: int | None) -> None:
        day_ago = datetime.now(UTC) - timedelta(days=2)
        self.txs = [SimpleNamespace(id=f"t{n}", amount=1, date=day_ago, source=None, receiver=None) for n in range(old)]
        self.fail_after = fail_after
        self.offsets: list[int] = []

    async def get_star_transactions(self, *, offset: int, limit: int) -> Any:
        if self.fail_after is not None and len(self.offsets) >= self.fail_after:
            raise TimeoutError
        self.offsets.append(offset)
        return SimpleNamespace(transactions=self.txs[offset : offset + limit])


async def test_the_transactions_scan_keeps_its_progress_page_by_page_across_timeouts_and_restarts() -> None:
    books = _ScanBooks()
    first = rail()
    first._uow = books  # type: ignore[assignment]
    first._bot = _LongHistoryBot(old=350, fail_after=2)  # type: ignore[assignment]
    with pytest.raises(TimeoutError):
        await first._outgoing(since=0)  # cut off on its third page
    assert books.floor == 200  # the two pages read are kept
    restarted = rail()  # a new process: nothing in memory
    restarted._uow = books  # type: ignore[assignment]
    bot = _LongHistoryBot(old=350, fail_after=None)
    restarted._bot = bot  # type: ignore[assignment]
    assert await restarted._outgoing(since=0) == ([], set())
    assert bot.offsets == [200, 300]
    assert books.floor == 350


def _second(prices: dict[str, int], *, name: str = "telegram_big", token_env: str = "BIG_BOT_TOKEN") -> Any:
    entry = doc()
    return {**entry, "name": name, "secrets": {"bot_token": token_env},
            "options": {**entry["options"], "gifts": prices}}  # fmt: skip


def test_two_telegram_providers_route_each_amount_to_the_one_that_pays_it() -> None:
    small = doc()
    big = _second({"9000000000000000001": 500})
    other_token = TOKEN.replace("0000", "1111")
    cfg = parse_config({"providers": [small, big]}, CTX, env={**ENV, "BIG_BOT_TOKEN": other_token})
    [(_, _, _, amounts)] = cfg.registry.routes()
    assert 500 in (amounts or ())
    create = CreatePayouts(registry=cfg.registry, approvals=ApprovalBook({}), max_attempts=3, source="/test")
    cmd = CreatePayoutCommand(
        payout_request_id="pr-1",
        claim_id="cl-1",
        player_id="p-1",
        amount=Money(asset="XTR", amount=500),
        destination=PayoutDestination(type=DestinationType.TELEGRAM_USER, address="4242"),
        idempotency_key="cl-1:payout:1",
        requested_by="p-1",
        provider=None,
        correlation_id="corr-1",
    )
    entry, error = create._screen(cmd)
    assert error is None
    assert entry is not None
    assert entry.name == "telegram_big"
    entry, error = create._screen(replace(cmd, amount=Money(asset="XTR", amount=15)))
    assert (entry.name if entry else None, error) == ("telegram", None)


@pytest.mark.parametrize("env", [{"BIG_BOT_TOKEN": TOKEN}, {}])
def test_two_telegram_providers_on_one_bot_are_refused(env: dict[str, str]) -> None:
    big = _second({"9000000000000000001": 500}, token_env="BIG_BOT_TOKEN" if env else "TELEGRAM_BOT_TOKEN")
    with pytest.raises(ProviderConfigError, match=r"telegram_big.*also provider 'telegram'"):
        parse_config({"providers": [doc(), big]}, CTX, env={**ENV, **env})


class _SendBooks:
    """telegram_gift_sends in memory for one create, as its unit of work and its books: no row yet, every change
    recorded."""

    def __init__(self) -> None:
        self.statements: list[Any] = []

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[Any]:
        yield self

    async def get(self, payout_id: str) -> dict[str, Any] | None:
        return None

    async def change(self, statement: Any, params: Mapping[str, Any]) -> int:
        self.statements.append(statement)
        return 1


class _RepricedBot:
    """The Bot API once Telegram has repriced the configured gift: sendGift charges the gift's price now."""

    def __init__(self, gift_id: str, star_count: int) -> None:
        self.catalogue = SimpleNamespace(gifts=(SimpleNamespace(id=gift_id, star_count=star_count),))
        self.sent: list[str] = []

    async def get_available_gifts(self) -> Any:
        return self.catalogue

    async def send_gift(self, *, gift_id: str, user_id: int, text: str | None) -> bool:
        self.sent.append(gift_id)
        return True


@pytest.mark.parametrize("price_now", [25, 5])
async def test_a_gift_whose_price_is_no_longer_the_amount_is_never_sent(price_now: int) -> None:
    """sendGift takes no price: the bot pays whatever the gift costs now. A gift repriced by Telegram (or priced
    wrongly in the providers file) would pay the player more or less than the prize, and its transaction, of
    another amount, would never settle the payout. It is refused before anything is recorded or sent."""
    p = rail()
    books = _SendBooks()
    p._uow = books  # type: ignore[assignment]
    gift_id = p.options.prices[15]
    bot = _RepricedBot(gift_id, price_now)
    p._bot = bot  # type: ignore[assignment]
    result = await p.create_payout(instruction(amount=15))
    assert bot.sent == []
    assert result.error is not None
    assert result.error.code is C.UNSUPPORTED_OPERATION
    from prizeflow_payouts.adapters.telegram import journal

    assert journal.INSERT_SENDING not in books.statements
