"""`prizeflow-ops preflight` without a socket: a configuration it cannot read is a usage error naming the setting
(nothing is fetched), each provider type has an API or calls nothing, a refusing egress proxy (a ProxyError) is a
failure naming the target. The fetches themselves, against real servers: tests/integration/test_preflight.py."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import pytest

from prizeflow_ops import ExitCode, run
from prizeflow_ops import preflight as preflight_module
from prizeflow_ops.preflight import Expect, Target, check, probe, provider_api, targets


def preflight(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run(["preflight", *argv], env=env, stdout=stdout, stderr=stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def test_a_setting_that_cannot_be_read_is_a_usage_error_naming_it() -> None:
    """Nothing fetched: the EU list's `${VAR}` not given to the preflight, a vendor without its API, nothing at all."""
    code, _, stderr = preflight({"PAYOUTS_SANCTIONS_SOURCES": "eu=https://lists.test/eu.xml?token=${EU_TOKEN}"})
    assert code == ExitCode.USAGE
    assert "eu's URL reads ${EU_TOKEN}, which is not set here" in stderr
    assert preflight({"PAYOUTS_KYC_PROVIDER": "sumsub"})[::2] == (
        ExitCode.USAGE,
        "preflight: PAYOUTS_KYC_BASE_URL: the vendor sumsub is configured, and its API is not\n",
    )
    assert preflight({})[0] == ExitCode.USAGE


def test_a_refusing_proxy_fails_naming_the_target() -> None:
    """The egress proxy refusing a CONNECT to a host not on its allow-list (httpx raises ProxyError)."""

    def squid(request: httpx.Request) -> httpx.Response:
        raise httpx.ProxyError("403 Forbidden", request=request)

    with httpx.Client(transport=httpx.MockTransport(squid)) as client:
        outcome = probe(client, Target("rail upi (upi)", "https://api.razorpay.com", Expect.API))
    assert outcome.problem == "GET https://api.razorpay.com: ProxyError: 403 Forbidden"
    assert outcome.chain == ["GET https://api.razorpay.com -> no answer"]


def test_a_connection_refused_at_first_is_tried_again_and_an_answer_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new pod's first connections can be refused until its network policy is programmed: the preflight tries a
    refused connection again (and reports the target reached once it answers); a refusal by the proxy is an answer."""
    monkeypatch.setattr(preflight_module, "CONNECT_RETRIES_S", (0.0, 0.0))
    calls: list[str] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        if len(calls) < 3:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(flaky)) as client:
        outcome = probe(client, Target("identity provider JWKS", "https://id.test/jwks.json", Expect.FILE))
    assert (outcome.reached, len(calls)) == (True, 3)

    calls.clear()

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(refused)) as client:
        outcome = probe(client, Target("identity provider JWKS", "https://id.test/jwks.json", Expect.FILE))
    assert outcome.problem == "GET https://id.test/jwks.json: ConnectError: refused"

    def squid(request: httpx.Request) -> httpx.Response:
        calls.append("proxy")
        raise httpx.ProxyError("403 Forbidden", request=request)

    calls.clear()
    with httpx.Client(transport=httpx.MockTransport(squid)) as client:
        probe(client, Target("rail upi (upi)", "https://api.razorpay.com", Expect.API))
    assert calls == ["proxy"], "a proxy's refusal is an answer: never tried again"


def test_each_provider_type_has_an_api_or_calls_nothing() -> None:
    api: Callable[[dict[str, object]], str | None] = lambda p: provider_api(p, {})  # noqa: E731
    assert api({"type": "ton_wallet", "options": {"network": "mainnet"}}) == "https://toncenter.com"
    assert api({"type": "crypto_exchange", "options": {"exchange": "binance"}}) == "https://api.binance.com"
    assert api({"type": "telegram_if_supported"}) == "https://api.telegram.org"
    assert api({"type": "manual"}) is None
    assert [t.label for t in targets({"SOROBAN_RPC_URL": "https://rpc.test"})] == [], "no stellar part: not called"


def test_check_takes_a_transport_for_callers_that_bring_their_own() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200)

    stdout, stderr = io.StringIO(), io.StringIO()
    code = check(
        {"JWT_JWKS_URL": "https://login.test/keys"}, None, stdout, stderr, transport=httpx.MockTransport(answer)
    )
    assert (code, seen) == (ExitCode.OK, ["https://login.test/keys"])
