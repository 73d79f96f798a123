"""docker-compose.yml for real: the platform's images under podman-compose, and a sponsored round paid through it.

The scenario (tests/support/compose_scenario.py, the same as under Docker Compose): a game server publishes a
sponsored round to the stack's Kafka; the allocation is read back from the rewards API, the winner claims to a
sandbox destination, ops release the new-destination hold, an approver approves, and the payout is paid on the
sandbox; the payout and the events on the topics are read back. The stack is torn down after (the fixture asserts
nothing is left)."""

from __future__ import annotations

from pathlib import Path

import pytest
from compose_scenario import a_sponsored_round_is_paid, prometheus_scrapes_every_service

from prizeflow_devstack.compose import ComposeStack

pytestmark = [pytest.mark.containers, pytest.mark.timeout(3600)]  # its fixture first builds every image


async def test_a_sponsored_round_is_paid_on_the_sandbox_through_the_compose_stack(
    compose_stack: ComposeStack, repo_root: Path
) -> None:
    compose_stack.timings["smoke_s"] = await a_sponsored_round_is_paid(compose_stack, repo_root)


def test_prometheus_scrapes_every_service_of_the_stack(compose_stack: ComposeStack) -> None:
    prometheus_scrapes_every_service(compose_stack)
