"""Every outbound HTTP client of the product honours HTTPS_PROXY / NO_PROXY.

On Kubernetes the services reach the internet only through the egress proxy (deploy/k8s/README.md, "Egress"):
their NetworkPolicies admit port 443 to the proxy and nothing else, and HTTPS_PROXY names it. A client that
ignores the environment dials the provider directly and is dropped: that rail is down in production while every
test, which runs without a proxy, passes. So the clients are checked where they are made, by parsing (not
importing) every module under `services/*/src` and `libs/*/src`:

- `aiohttp.ClientSession(...)` passes `trust_env=True` (aiohttp's default is False);
- `httpx.AsyncClient(...)` / `httpx.Client(...)` never pass `trust_env=False` (httpx's default is True);
- `stripe.AIOHTTPClient(...)` passes `proxy=` (the library never reads the environment);
- a module building ccxt exchanges (`ccxt.async_support`) sets `aiohttp_trust_env`.

The scanner is run on planted code first, so a scanner that stopped seeing calls fails too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_SRC = sorted([*ROOT.glob("libs/*/src"), *ROOT.glob("services/*/src")])


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def problems(source: str, where: str) -> list[str]:
    found: list[str] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            callee = _name(node.func)
            line = f"{where}:{node.lineno}"
            if callee.endswith("ClientSession") and "aiohttp" in callee:
                value = _keyword(node, "trust_env")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    found.append(f"{line}: aiohttp.ClientSession without trust_env=True")
            elif callee in ("httpx.AsyncClient", "httpx.Client"):
                value = _keyword(node, "trust_env")
                if isinstance(value, ast.Constant) and value.value is False:
                    found.append(f"{line}: {callee} with trust_env=False")
            elif callee.endswith("AIOHTTPClient") and _keyword(node, "proxy") is None:
                found.append(f"{line}: stripe.AIOHTTPClient without proxy=")
    # An exchange is built by calling ccxt's asyncio flavour by name: `getattr(ccxt_async, name)(config)` or
    # `ccxt_async.binance(config)` (its error classes, CamelCase, are only caught).
    aliases = {
        a.asname or a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for a in node.names
        if a.name == "ccxt.async_support"
    }

    def builds_exchange(call: ast.Call) -> bool:
        func = call.func
        if isinstance(func, ast.Call) and _name(func.func) == "getattr" and func.args:
            return _name(func.args[0]) in aliases
        return isinstance(func, ast.Attribute) and _name(func.value) in aliases and func.attr[:1].islower()

    if (
        any(isinstance(n, ast.Call) and builds_exchange(n) for n in ast.walk(tree))
        and "aiohttp_trust_env" not in source
    ):
        found.append(f"{where}: a ccxt exchange configured without aiohttp_trust_env")
    return found


def test_the_scanner_sees_clients_that_ignore_the_environment() -> None:
    planted = """
import aiohttp, httpx, stripe
import ccxt.async_support as ccxt_async
x = ccxt_async.binance({})
a = aiohttp.ClientSession(timeout=1)
b = aiohttp.ClientSession(trust_env=False)
c = httpx.AsyncClient(trust_env=False)
d = stripe.AIOHTTPClient(timeout=1)
ok = aiohttp.ClientSession(trust_env=True)
also_ok = httpx.AsyncClient(timeout=1)
"""
    found = problems(planted, "planted.py")
    assert sorted(f.split(": ", 1)[1] for f in found) == sorted(
        [
            "aiohttp.ClientSession without trust_env=True",
            "aiohttp.ClientSession without trust_env=True",
            "httpx.AsyncClient with trust_env=False",
            "stripe.AIOHTTPClient without proxy=",
            "a ccxt exchange configured without aiohttp_trust_env",
        ]
    )


@pytest.mark.parametrize("src", PRODUCT_SRC, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_outbound_client_goes_through_the_egress_proxy_when_one_is_named(src: Path) -> None:
    found = [
        problem
        for path in sorted(src.rglob("*.py"))
        for problem in problems(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert not found, "\n".join(found)
