"""Stripe's form encoding: `metadata[k]=v`, `line_items[0][price_data][currency]=eur`, `expand[]=x` → nested
dicts and lists of strings. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from prizeflow_stripe_emulator.errors import StripeError

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_MAX_DEPTH = 8


def parse_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nested params from decoded form pairs; a dict whose keys are all indices becomes a list in index order."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        match = _KEY.match(raw_key)
        if match is None:
            raise StripeError.invalid(f"Invalid parameter name: {raw_key}", param=raw_key)
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        if len(path) > _MAX_DEPTH:
            raise StripeError.invalid(f"Parameter nested too deeply: {raw_key}", param=raw_key)
        node = root
        for i, part in enumerate(path[:-1]):
            nxt = path[i + 1]
            child = node.get(part)
            if child is None:
                child = {}
                node[part] = child
            if not isinstance(child, dict):
                raise StripeError.invalid(f"Invalid parameter: {raw_key}", param=raw_key)
            node = child
            if nxt == "":  # `a[]=x`: append
                path[i + 1] = str(len(node))
        leaf = path[-1] or str(len(node))
        if isinstance(node.get(leaf), dict):
            raise StripeError.invalid(f"Invalid parameter: {raw_key}", param=raw_key)
        node[leaf] = value
    out: dict[str, Any] = _listify(root)
    return out


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v) for k, v in node.items()}
    if out and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out


__all__ = ["parse_form"]
