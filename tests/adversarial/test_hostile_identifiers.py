"""Every id a client hands a service, hostile: each path parameter of every route in each service's own OpenAPI
document, each id-shaped field of each JSON body, and each path parameter of the console's pages, sent as a
spreadsheet formula, a control character, a 10 kB string, a Unicode look-alike or a dot-dot segment, with a token
holding every role (so no guard hides the check). Each is refused with a 4xx naming the parameter (a problem for the
APIs, the error page for the console), and no service's database changes.

The routes come from the documents, not a list here: a route added tomorrow is attacked too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, get_args
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx
import pytest
from litestar import Router
from pydantic.fields import FieldInfo
from support import Api
from walk import APIS, ROLES, changed, fill, properties, quiet_counts, row_counts, segment, send_all, variants

from prizeflow_contracts.ids import IDENTIFIER_PATTERN, PROVIDER_REF_PATTERN, ProviderRef
from prizeflow_devstack.platform import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ACTOR = "hostile-actor"
# One of each class: what a spreadsheet evaluates, what a log or a header splits on, what no column holds, what
# looks like an id to a person and is not one (a Cyrillic letter, fullwidth digits), and a segment that climbs a path.
HOSTILE = {
    "formula": "=1+2",
    "formula_plus": "+cmd|' -C calc'!A0",
    "formula_at": "@SUM(1+1)*cmd",
    "formula_minus": "-1+1",
    "nul": "p\x00x",
    "crlf": "p\r\nx-injected: 1",
    "trailing_newline": "p-1\n",
    "tab": "p\t1",
    "ten_kb": "p" * 10_240,
    "cyrillic": "p\u0430yout-1",
    "fullwidth_digits": "\uff11\uff12\uff13",
    "dot_dot": "..",
    "space": "p 1",
}
# What a row's serial id must not be mistaken for either: a sign, an underscore, past int64.
HOSTILE_SERIAL = {**HOSTILE, "plus_sign": "+1", "underscore": "1_0", "past_int64": "9" * 20, "zero": "0"}
# A reference an outside provider minted (a payment's, a withdrawal's) is any printable ASCII by its contract, so
# `=1+2` may be one (a CSV export neutralizes it, `prizeflow_runtime.csv_stream`): the rest is hostile there too.
# The documents name no body pattern (Litestar leaves it out), so such a field is told by its contract's description,
# or by name where an optional field lost it too (reconciliation's `params.withdrawal_id`).
HOSTILE_PROVIDER_REF = {k: v for k, v in HOSTILE.items() if not re.fullmatch(PROVIDER_REF_PATTERN, v)}
PROVIDER_REF_DESCRIPTION = next(m.description for m in get_args(ProviderRef)[1:] if isinstance(m, FieldInfo))
PROVIDER_REFS_UNDESCRIBED = {"withdrawal_id"}
ID_FIELD_SUFFIXES = ("_id", "_ref", "_account")
ID_FIELDS = {"id", "reference", "provider"}


def _is_id_shaped(name: str, schemas: list[dict[str, Any]]) -> bool:
    if any(s.get("pattern") == IDENTIFIER_PATTERN for s in schemas):
        return True
    strings = any(s.get("type") == "string" for s in schemas)
    return strings and (name in ID_FIELDS or name.endswith(ID_FIELD_SUFFIXES))


Field = tuple[list[str | int], str, dict[str, str]]


def _id_fields(doc: dict[str, Any], schema: dict[str, Any]) -> Iterator[Field]:
    """Each id-shaped string field of a body schema: where it sits in the body, its name, and the values hostile to
    it; objects and arrays in."""
    for where, name, sub in properties(doc, schema):
        subs = variants(doc, sub)
        if _is_id_shaped(name, subs):
            described = any(s.get("description") == PROVIDER_REF_DESCRIPTION for s in [sub, *subs])
            ref = described or name in PROVIDER_REFS_UNDESCRIBED
            yield where, name, HOSTILE_PROVIDER_REF if ref else HOSTILE


def _body(where: list[str | int], value: str) -> Any:
    """A body holding `value` at `where` (an account name as `<kind>:<value>`: its owner is the id)."""
    head, *rest = where
    if not rest and isinstance(head, str) and head.endswith("_account"):
        value = "player_wallet:" + value
    inner = value if not rest else _body(rest, value)
    return [inner] if isinstance(head, int) else {head: inner}


def _cases(service: str, doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """(method, path, json body, the name the refusal must give) for every hostile id the document admits."""
    for template, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = [p for p in op.get("parameters", []) if p.get("in") == "path"]
            body: dict[str, Any] | None = {} if method in ("post", "put", "patch") else None
            for p in params:
                serial = p.get("schema", {}).get("type") == "integer"
                for label, value in (HOSTILE_SERIAL if serial else HOSTILE).items():
                    path = fill(template, params, (p["name"], value))
                    yield {"service": service, "method": method.upper(), "path": path, "json": body,
                           "field": p["name"], "label": label}  # fmt: skip
            content = (op.get("requestBody") or {}).get("content", {}).get("application/json")
            if content is None:
                continue
            for where, leaf, hostile in _id_fields(doc, content["schema"]):
                for label, value in hostile.items():
                    yield {"service": service, "method": method.upper(), "path": fill(template, params),
                           "json": _body(where, value), "field": leaf, "label": label}  # fmt: skip


def _names(answer: httpx.Response) -> list[str]:
    try:
        errors = answer.json().get("errors") or []
    except ValueError:
        return []
    return [str(e.get("key", "")).rsplit(".", 1)[-1] for e in errors if isinstance(e, dict)]


def _judge_api(case: dict[str, Any], answer: httpx.Response) -> str | None:
    """None when refused as it should be: a 4xx problem that names the field."""
    media = answer.headers.get("content-type", "")
    if not (400 <= answer.status_code < 500 and media.startswith("application/problem+json")):
        return f"{answer.status_code} {media} {answer.text[:160]!r}"
    if case["field"] not in _names(answer):
        return f"{answer.status_code} does not name {case['field']}: {answer.text[:200]!r}"
    return None


async def test_every_api_refuses_hostile_ids_in_paths_and_bodies_and_writes_nothing(
    platform: Platform, api: Api
) -> None:
    docs = {s: (await api.http.get(platform.url(s) + "/schema/openapi.json")).raise_for_status().json() for s in APIS}
    cases = [c for service, doc in docs.items() for c in _cases(service, doc)]
    fields = {(c["service"], c["field"]) for c in cases}
    # The walk reaches what it must: the issue's own route, the runtime's routes, every service with an API.
    assert {("rewards", "player_id"), ("payouts", "payout_id"), ("payouts", "player_id")} <= fields, sorted(fields)
    assert {("rewards", "correlation_id"), ("payouts", "dead_letter_id"), ("settlement", "round_id")} <= fields
    assert {("webhooks", "delivery_id"), ("rewards", "campaign_id"), ("payouts", "exception_id")} <= fields
    assert len(cases) > 500, len(cases)
    headers = {s: api.token(ACTOR, *ROLES, service=s) for s in APIS}

    async def send(case: dict[str, Any]) -> str | None:
        answer = await api.http.request(
            case["method"], platform.url(case["service"]) + case["path"], headers=headers[case["service"]],
            json=case["json"],
        )  # fmt: skip
        return _judge_api(case, answer)

    before = await quiet_counts(platform)
    wrong = await send_all(cases, send)
    # The provider's segment of the webhook ingress (ADR 0006): no such provider, refused, nothing stored.
    for label, value in HOSTILE.items():
        answer = await api.http.post(
            f"{platform.url('webhooks')}/providers/{segment(value)}/events", json={"id": "evt-1"}
        )
        if not (answer.status_code in (400, 404) and answer.headers["content-type"].startswith("application/problem")):
            wrong.append(f"webhooks ingress provider={label}: {answer.status_code} {answer.text[:160]!r}")
    after = await row_counts(platform)
    assert wrong == [], f"{len(wrong)} of {len(cases)} not refused as they should be:\n" + "\n".join(wrong[:200])
    assert changed(before, after) == {}


# Writes with a body the route takes, so that only the id in the path is wrong: the walk above sends `{}`, which a
# route refuses for its body too; these reach the handler whenever the path is let through (the issue's own case).
WRITES: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("rewards", "POST", "/wallets/{}/top-ups", "player_id",
     {"asset": "USDC", "amount": 1, "provider": "card", "reference": "r-1"}),
    ("rewards", "POST", "/campaigns/{}/fund", "campaign_id", {"amount": 1, "reference": "fund-1"}),
    ("rewards", "PUT", "/players/{}/risk-flag", "player_id", {"flagged": True, "reason": "hostile"}),
    ("rewards", "POST", "/holds/{}/reject", "claim_id", {"reason": "hostile"}),
    ("settlement", "POST", "/rounds/{}/void", "round_id", {"reason": "hostile"}),
    ("payouts", "POST", "/payouts/{}/cancel", "payout_id", {"reason": "hostile"}),
    ("payouts", "POST", "/payouts/{}/mark-paid", "payout_id", {"reference": "ref-1"}),
]  # fmt: skip


async def test_a_write_to_a_hostile_id_with_a_good_body_is_refused_naming_it_and_moves_nothing(
    platform: Platform, api: Api
) -> None:
    """`POST /wallets/=1+2/top-ups` by an admin answered 500: the audit event refused the id after the handler ran."""
    cases = [
        {"service": service, "method": method, "path": template.format(segment(value)), "json": body,
         "field": field, "label": label}
        for service, method, template, field, body in WRITES
        for label, value in HOSTILE.items()
    ]  # fmt: skip
    headers = {s: api.token(ACTOR, *ROLES, service=s) for s in APIS}

    async def send(case: dict[str, Any]) -> str | None:
        answer = await api.http.request(
            case["method"], platform.url(case["service"]) + case["path"], headers=headers[case["service"]],
            json=case["json"],
        )  # fmt: skip
        return _judge_api(case, answer)

    before = await quiet_counts(platform)
    wrong = await send_all(cases, send)
    after = await row_counts(platform)
    assert wrong == [], f"{len(wrong)} of {len(cases)} not refused as they should be:\n" + "\n".join(wrong[:200])
    assert changed(before, after) == {}


async def _console_session(platform: Platform) -> httpx.AsyncClient:
    """A console session for a person holding every role, through the real sign-in (code + PKCE at the dev IdP),
    with the console's CSRF cookie."""
    base = platform.url("console")
    client = httpx.AsyncClient(base_url=base, timeout=30, follow_redirects=False)
    to_idp = await client.get("/auth/login")
    assert to_idp.status_code == 302, to_idp.text[:300]
    authorize = to_idp.headers["location"]
    form = [*parse_qsl(urlsplit(authorize).query), ("user", ACTOR), *(("roles", r) for r in ROLES)]
    idp = authorize.split("?", 1)[0]
    back = await client.post(
        idp, content=urlencode(form), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert back.status_code in (302, 303), back.text[:300]
    signed = await client.get(urljoin(base, back.headers["location"]))
    assert signed.status_code == 303, signed.text[:300]
    home = await client.get("/")
    assert home.status_code == 200, home.text[:300]
    return client


async def test_the_console_refuses_hostile_ids_in_its_pages_and_calls_nothing(platform: Platform) -> None:
    from prizeflow_console.entrypoints.http import PAGES

    routes = [r for r in Router(path="/", route_handlers=list(PAGES)).routes if r.path_parameters]
    cases: list[dict[str, Any]] = []
    for route in routes:
        for method in sorted(route.methods - {"OPTIONS", "HEAD"}):
            params: list[dict[str, Any]] = [{"name": n, "schema": {"type": "string"}} for n in route.path_parameters]
            template = route.path.replace(":str", "").replace(":int", "")
            for p in params:
                for label, value in HOSTILE.items():
                    cases.append({"service": "console", "method": method, "field": p["name"], "label": label,
                                  "path": fill(template, params, (p["name"], value))})  # fmt: skip
    assert len({c["field"] for c in cases}) >= 8, cases[:3]
    client = await _console_session(platform)
    try:
        csrf = next(v for k, v in client.cookies.items() if k.endswith("pf_csrf"))

        async def send(case: dict[str, Any]) -> str | None:
            extra = {"x-csrftoken": csrf} if case["method"] == "POST" else {}
            answer = await client.request(case["method"], case["path"], headers=extra, data={"reason": "hostile"})
            if not (400 <= answer.status_code < 500 and answer.headers["content-type"].startswith("text/html")):
                return f"{answer.status_code} {answer.headers.get('content-type')} {answer.text[:160]!r}"
            if case["field"] not in answer.text:
                return f"{answer.status_code} page does not name {case['field']}"
            return None

        before = await quiet_counts(platform)
        wrong = await send_all(cases, send)
        after = await row_counts(platform)
    finally:
        await client.aclose()
    assert wrong == [], f"{len(wrong)} of {len(cases)} not refused as they should be:\n" + "\n".join(wrong[:200])
    assert changed(before, after) == {}
