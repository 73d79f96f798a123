"""The live view's event-flow table: one row per service with an event flow, none for an HTTP-only one."""

from __future__ import annotations

from rich.console import Console

from prizeflow_devstack.live import LiveState


def test_the_flow_table_lists_services_with_an_event_flow_only() -> None:
    scraped = {
        "rewards": [
            ("prizeflow_rewards_outbox_published_total", {}, 3.0),
            ("prizeflow_rewards_events_consumed_total", {"outcome": "applied"}, 5.0),
        ],
        "console": [("prizeflow_console_http_requests_total", {"route": "/", "status": "2xx"}, 7.0)],
    }
    console = Console(width=200, record=True)
    console.print(LiveState().flow_table(scraped))
    text = console.export_text()
    assert "rewards" in text
    assert "console" not in text
