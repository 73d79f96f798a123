"""One guard for what a client writes into a request: every string of a JSON body and every query parameter of every
route, before a handler, a model or a use case sees it (issue 56, class 6).

A string is refused, with a 400 problem naming its field (`errors: [{key, message, source}]`), when it holds:
- a control character: C0 (NUL, ESC, ...) and DEL and C1, what a terminal, a log line or PostgreSQL takes as an
  order or refuses (a NUL reached PostgreSQL from a free-text filter: a 500). A body's free text may hold a tab or a
  line break (a note has lines); a query parameter holds none;
- a bidirectional embedding, override or isolate (U+202A-U+202E, U+2066-U+2069): it reorders what a person reads
  (an id or an amount shown backwards in the console, in a CSV opened in a spreadsheet). The implicit marks
  (U+200E, U+200F, U+061C), which a phone's keyboard writes into right-to-left text, reorder nothing around them
  and pass;
- a lone surrogate (`"\\ud800"` is valid JSON, and no UTF-8 can store it; msgspec refuses the body whole first);
- more than `MAX_QUERY_CHARS` characters, in a query parameter (a body's fields have their own limits).

An integer query parameter is ASCII digits with an optional minus, within int64: Litestar's own reading takes `1e3`
as 1000, and a 20-digit value reached PostgreSQL (a 500).

Not guarded here: the webhook ingress reads a provider's signed body as bytes, verifies and stores it as sent (its
own ASGI app, before Litestar).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from litestar.enums import ParamType
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import ParameterKwarg
from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from prizeflow_contracts.money import INT64_MAX

MAX_QUERY_CHARS: Final = 512
# C0 but tab, line feed and carriage return; DEL; C1; bidirectional embeddings, overrides, isolates; lone surrogates.
_BODY_FORBIDDEN: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_QUERY_FORBIDDEN: Final = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_INTEGER: Final = re.compile(r"-?[0-9]{1,19}")


def _forbidden(value: str, pattern: re.Pattern[str]) -> str | None:
    """What is wrong with a string (None: nothing), named by the first character that is not allowed."""
    found = pattern.search(value)
    if found is None:
        return None
    char = found.group()
    kind = "a bidirectional control" if "\u202a" <= char <= "\u2069" else None
    if kind is None:
        kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
    return f"holds {kind} (U+{ord(char):04X}) at position {found.start()}"


def hostile_strings(value: Any, where: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string in a decoded JSON value (object keys too) that a body must not hold: where it is, and why."""
    if isinstance(value, str):
        if (why := _forbidden(value, _BODY_FORBIDDEN)) is not None:
            yield where, why
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and (why := _forbidden(key, _BODY_FORBIDDEN)) is not None:
                yield (where or ("body",)), f"a key {why}"  # named by its object: the key is not echoed back
                continue
            yield from hostile_strings(item, (*where, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from hostile_strings(item, (*where, i))


def refuse_hostile_body(title: str, value: Any) -> None:
    """Raise pydantic's ValidationError (as a body model would: the app names each field) for every hostile string
    of a body; nothing when it has none."""
    found = list(hostile_strings(value))
    if found:
        errors = [
            InitErrorDetails(
                type=PydanticCustomError("hostile_text", "{why}", {"why": why}),
                loc=where,
                input="<withheld>",
            )
            for where, why in found
        ]
        raise ValidationError.from_exception_data(title, errors)


def query_problems(query: Mapping[str, list[str]], integers: frozenset[str]) -> list[dict[str, str]]:
    """What is wrong with a request's query parameters: one error per parameter (`key`, `message`, `source`)."""
    problems = []
    for name, values in query.items():
        for value in values:
            why = _query_problem(name, value, integers)
            if why is not None:
                problems.append({"key": name, "message": why, "source": "query"})
                break
        else:
            if (why := _forbidden(name, _QUERY_FORBIDDEN)) is not None:
                problems.append({"key": "<query>", "message": f"a parameter's name {why}", "source": "query"})
    return problems


def _query_problem(name: str, value: str, integers: frozenset[str]) -> str | None:
    if len(value) > MAX_QUERY_CHARS:
        return f"longer than {MAX_QUERY_CHARS} characters"
    if (why := _forbidden(value, _QUERY_FORBIDDEN)) is not None:
        return why
    if name in integers and not (_INTEGER.fullmatch(value) and abs(int(value)) <= INT64_MAX):
        return f"not a whole number in ASCII digits within ±{INT64_MAX}"
    return None


def integer_query_names(handler: HTTPRouteHandler) -> frozenset[str]:
    """The query parameters a route reads as integers, by the names a client sends (read once per handler)."""
    cached = handler.opt.get("_integer_query")
    if isinstance(cached, frozenset):
        return cached
    path_names = {p["name"] for path in handler.paths for p in _path_parameters(path)}
    names = set()
    for name, field in handler.parsed_fn_signature.parameters.items():
        if name in path_names or name in {"data", "request", "scope", "state", "headers", "cookies", "query", "body"}:
            continue
        kinds = [t.annotation for t in field.inner_types] if field.is_optional else [field.annotation]
        if not any(isinstance(k, type) and issubclass(k, int) and not issubclass(k, bool) for k in kinds):
            continue
        kwarg = field.kwarg_definition
        if isinstance(kwarg, ParameterKwarg):
            if kwarg.param_type is not ParamType.QUERY:
                continue
            names.add(kwarg.name or name)
            continue
        names.add(name)
    found = frozenset(names)
    handler.opt["_integer_query"] = found
    return found


def _path_parameters(path: str) -> list[dict[str, str]]:
    return [{"name": m.group(1)} for m in re.finditer(r"\{(\w+)(?::\w+)?\}", path)]


def guard_query(handler: HTTPRouteHandler, query: Mapping[str, list[str]], method: str, path: str) -> None:
    """Refuse the request (400, each parameter named) when a query parameter is hostile or not its integer."""
    problems = query_problems(query, integer_query_names(handler))
    if problems:
        raise ValidationException(detail=f"Validation failed for {method} {path}", extra=problems)


__all__ = [
    "MAX_QUERY_CHARS",
    "guard_query",
    "hostile_strings",
    "integer_query_names",
    "query_problems",
    "refuse_hostile_body",
]
