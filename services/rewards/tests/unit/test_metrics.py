"""Campaigns by status: every status exported from the start (a dashboard's "active campaigns" reads 0, not
nothing, before the first campaign), refreshed from the campaigns the database holds."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from prizeflow_rewards.domain.campaigns import CampaignStatus
from prizeflow_rewards.metrics import RewardsMetrics


def test_every_campaign_status_is_exported_at_zero_before_any_campaign() -> None:
    registry = CollectorRegistry()
    RewardsMetrics.create(registry)
    for status in CampaignStatus:
        assert registry.get_sample_value("prizeflow_rewards_campaigns", {"status": status.value}) == 0
