"""One rule of what an id is: the pydantic type the events carry and `is_identifier` (what the HTTP boundary and the
normalizers check with) accept exactly the same strings, a newline after an id included."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from prizeflow_contracts.envelope import CORRELATION_ID_PATTERN
from prizeflow_contracts.ids import IDENTIFIER_PATTERN, Identifier, ProviderRef, is_identifier, is_provider_ref

_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)
_PROVIDER_REF: TypeAdapter[str] = TypeAdapter(ProviderRef)


def _accepts(adapter: TypeAdapter[str], value: str) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


ids = st.from_regex(IDENTIFIER_PATTERN, fullmatch=True)
near_ids = st.one_of(
    st.text(max_size=140),
    ids.map(lambda v: v + "\n"),
    ids.map(lambda v: "\n" + v),
    st.builds(lambda a, b: a + b, ids, st.sampled_from(["\r\n", "\x00", " ", "\t", "\u0430", "\uff11", "=", "/"])),
)


@given(st.one_of(ids, near_ids))
@example("p-1\n")
@example("=1+2")
@example("\uff11\uff12\uff13")
@example("p\u0430yout")
@example("..")
@example("p" * 128)
@example("p" * 129)
def test_is_identifier_and_the_event_type_agree_on_every_string(value: str) -> None:
    assert is_identifier(value) == _accepts(_IDENTIFIER, value)


@given(st.one_of(st.text(max_size=260), st.from_regex(r"^[\x21-\x7e]{1,255}$", fullmatch=True).map(lambda v: v + "\n")))
@example("ref-1\n")
def test_is_provider_ref_and_the_type_agree_on_every_string(value: str) -> None:
    assert is_provider_ref(value) == _accepts(_PROVIDER_REF, value)


def test_a_correlation_id_is_an_id() -> None:
    assert CORRELATION_ID_PATTERN == IDENTIFIER_PATTERN
    assert not is_identifier(None)
    assert not is_identifier(12)
