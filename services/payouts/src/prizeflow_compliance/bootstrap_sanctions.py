"""The sanctions lists' part of the composition root (called by `bootstrap.compose` and `bootstrap.build`).

What the payout gate gets: `SanctionsLists.screen`, a `ListsScreen` (the `SanctionsScreen` port) for the sources
PAYOUTS_SANCTIONS_SOURCES names. While one of them has never loaded in this process, `screen_destination` and
`screen_person` raise `ScreeningUnavailable` (fail closed) and `screen.missing_sources` names them.
"""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_compliance.adapters.sanctions import HttpListSource, SqlSanctionsLists
from prizeflow_compliance.application.sanctions import (
    ListSource,
    ListsScreen,
    RefreshSanctionsLists,
    ScheduledRefresh,
)
from prizeflow_compliance.metrics import ComplianceMetrics
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_runtime.jobs import Scheduler
from prizeflow_runtime.service import ServiceRuntime


@dataclass
class SanctionsLists:
    screen: ListsScreen
    refresh: RefreshSanctionsLists
    every_s: float
    service: tuple[str, str]  # (service name, CloudEvents source) for the audit of a refresh

    def dependencies(self) -> dict[str, object]:
        """The HTTP dependencies of `entrypoints.compliance_screening_http`, by name (bootstrap provides each)."""
        return {"sanctions_screen": self.screen, "sanctions_refresh": self.refresh, "sanctions_service": self.service}

    def schedule(self, jobs: Scheduler) -> None:
        """The refresh as a job (`ScheduledRefresh`), started with the process's jobs: a start-up never waits on a
        publisher. Cancelled at a stop (a fetch in flight is abandoned; the next start fetches again)."""
        if self.screen.sources:
            jobs.every(
                self.every_s,
                ScheduledRefresh(self.refresh, every_s=self.every_s),
                name="sanctions-refresh",
                cancel_on_stop=True,
            )


def compose_sanctions(
    settings: PayoutsSettings,
    rt: ServiceRuntime,
    metrics: ComplianceMetrics,
    *,
    source: ListSource | None = None,
) -> SanctionsLists:
    """`source`: the publishers' files from elsewhere than HTTP (tests)."""
    urls = settings.sanctions_urls()
    screen = ListsScreen(list(urls), threshold=settings.payouts_sanctions_name_threshold, metrics=metrics)
    refresh = RefreshSanctionsLists(
        urls=urls,
        source=source
        if source is not None
        else HttpListSource(redirect_hosts=settings.payouts_sanctions_redirect_hosts),
        store=SqlSanctionsLists(rt.sessions),
        screen=screen,
        metrics=metrics,
        max_bytes=settings.payouts_sanctions_max_bytes,
    )
    return SanctionsLists(
        screen, refresh, settings.payouts_sanctions_refresh_s, (settings.service_name, settings.source)
    )


__all__ = ["SanctionsLists", "compose_sanctions"]
