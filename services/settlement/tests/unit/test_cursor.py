from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prizeflow_contracts.ids import IDENTIFIER_PATTERN
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_settlement.application.cursor import decode_cursor, encode_cursor


@given(st.from_regex(IDENTIFIER_PATTERN, fullmatch=True))
def test_a_cursor_names_the_round_it_was_made_from(round_id: str) -> None:
    assert decode_cursor(encode_cursor(round_id)) == round_id


@pytest.mark.parametrize("cursor", ["%%%", "a", "_w", "", "AA"])  # not base64, a lone char, not UTF-8, empty, a NUL
def test_anything_else_is_an_invalid_cursor_400(cursor: str) -> None:
    with pytest.raises(UseCaseError) as err:
        decode_cursor(cursor)
    assert (err.value.kind, err.value.code) == (ErrorKind.BAD_REQUEST, "invalid_cursor")
