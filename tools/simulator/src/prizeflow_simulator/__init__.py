"""A game server for Prizeflow: realistic rounds on `prizeflow.game.rounds.v1`, and the ugly cases."""

from prizeflow_simulator.scenarios import RoundKind, RoundPlan, ScenarioConfig, plan_round

__all__ = ["RoundKind", "RoundPlan", "ScenarioConfig", "plan_round"]
