"""The one state machine type: moves from the table, finals and sources derived, one refusal for every machine."""

from __future__ import annotations

from enum import StrEnum

import pytest

from prizeflow_contracts.transitions import IllegalTransition, Transitions


class Light(StrEnum):
    RED = "red"
    GREEN = "green"
    AMBER = "amber"
    BROKEN = "broken"


LIGHTS = Transitions(
    "light",
    {
        Light.RED: frozenset({Light.GREEN, Light.BROKEN}),
        Light.GREEN: frozenset({Light.AMBER, Light.BROKEN}),
        Light.AMBER: frozenset({Light.RED, Light.BROKEN}),
        Light.BROKEN: frozenset(),
    },
    initial=frozenset({Light.RED}),
)


def test_a_move_is_allowed_exactly_when_the_table_lists_it() -> None:
    for src in Light:
        for dst in Light:
            assert LIGHTS.allows(src, dst) is (dst in LIGHTS.table[src])


def test_a_refused_move_names_the_machine_and_both_states() -> None:
    with pytest.raises(IllegalTransition) as refused:
        LIGHTS.check(Light.RED, Light.AMBER)
    assert (refused.value.kind, refused.value.src, refused.value.dst) == ("light", Light.RED, Light.AMBER)
    assert str(refused.value) == "light: red → amber is not allowed"
    LIGHTS.check(Light.RED, Light.GREEN)  # allowed: nothing raised


def test_a_new_thing_starts_only_in_an_initial_state() -> None:
    assert LIGHTS.allows(None, Light.RED)
    with pytest.raises(IllegalTransition, match="light: nothing → green"):
        LIGHTS.check(None, Light.GREEN)


def test_finals_and_sources_are_derived_from_the_table() -> None:
    assert LIGHTS.finals == frozenset({Light.BROKEN})
    assert LIGHTS.is_final(Light.BROKEN)
    assert not LIGHTS.is_final(Light.RED)
    assert LIGHTS.sources_of(Light.BROKEN) == frozenset({Light.RED, Light.GREEN, Light.AMBER})
    assert LIGHTS.sources_of(Light.RED) == frozenset({Light.AMBER})
    assert set(LIGHTS) == {(s, d) for s, ds in LIGHTS.table.items() for d in ds}


def test_a_state_forgotten_in_the_table_fails_when_the_machine_is_built() -> None:
    with pytest.raises(ValueError, match="no row for broken"):
        Transitions("light", {Light.RED: frozenset({Light.GREEN}), Light.GREEN: frozenset(), Light.AMBER: frozenset()})
