"""A body that fails its model's validation is a problem naming each failing field (`errors[].key`), however Litestar
hands the model's error over (the text of one pydantic error about the whole body)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, ValidationError

from prizeflow_runtime.http import field_errors


class _Destination(BaseModel):
    address: Annotated[str, Field(min_length=3)]


class _Body(BaseModel):
    amount: Annotated[int, Field(strict=True, le=2**63 - 1)]
    destination: _Destination


def _litestar_error(payload: object) -> dict[str, str]:
    try:
        _Body.model_validate(payload)
    except ValidationError as err:
        # What Litestar's signature model keeps of it: the text up to its first " - ", about `data`.
        return {"message": str(err).split(" - ", maxsplit=1)[0], "key": "data", "source": "body"}
    raise AssertionError("valid")


def test_each_failing_field_of_a_body_is_named() -> None:
    errors = field_errors([_litestar_error({"amount": 2**63, "destination": {"address": "x"}})])
    assert [e["key"] for e in errors] == ["amount", "destination.address"]
    assert errors[0]["message"] == "Input should be less than or equal to 9223372036854775807"
    assert all(e["source"] == "body" for e in errors)
    assert all("type=" not in e["message"] and "errors.pydantic.dev" not in e["message"] for e in errors)


def test_other_errors_are_kept_as_they_are() -> None:
    query = {"message": "Expected `int`, got `str`", "key": "limit", "source": "query"}
    whole = {"message": "Expected `object`, got `array`", "key": "data", "source": "body"}
    assert field_errors([query, whole]) == [query, whole]
    assert field_errors(None) == []
