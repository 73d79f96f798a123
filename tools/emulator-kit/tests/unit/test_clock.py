"""The emulated clock: wall time plus what tests moved it, forward only, stopped and started where it was."""

from __future__ import annotations

import pytest

from prizeflow_emulator_kit.clock import Clock


class Wall:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_advance_moves_forward_only_and_keeps_pace_with_the_wall() -> None:
    wall = Wall()
    clock = Clock(wall)
    assert clock.advance(3600) == 4600.0
    wall.t += 5
    assert clock.now() == 4605.0
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_a_frozen_clock_stands_still_moves_when_advanced_and_runs_on_from_there() -> None:
    wall = Wall()
    clock = Clock(wall)
    clock.freeze(frozen=True)
    wall.t += 50
    assert clock.now() == 1000.0
    clock.advance(10)
    assert clock.to_json() == {"now": 1010.0, "offset_s": 0.0, "frozen": True}
    clock.freeze(frozen=False)
    wall.t += 1
    assert clock.now() == 1011.0
    clock.reset()
    assert clock.now() == wall.t
