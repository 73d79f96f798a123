"""The sanctions lists' admin API: what each replica has loaded, and a refresh now (docs/adr/0012).

Roles: reading needs admin, approver or ops; a refresh needs admin and is audited (`sanctions_lists.refresh`).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import SkipValidation

from prizeflow_compliance.application.sanctions import ListsScreen, RefreshSanctionsLists
from prizeflow_compliance.entrypoints.http import READERS
from prizeflow_runtime.auth import Role, require_roles
from prizeflow_runtime.operators import request_actor

Screen = NamedDependency[SkipValidation[ListsScreen]]
Refresh = NamedDependency[SkipValidation[RefreshSanctionsLists]]
Service = NamedDependency[SkipValidation[tuple[str, str]]]

ADMINS = require_roles(Role.ADMIN)


def lists_view(screen: ListsScreen) -> list[dict[str, Any]]:
    """Every configured source, loaded or not (a list that never loaded shows nulls: screening holds payouts)."""
    loaded = screen.loaded()
    out: list[dict[str, Any]] = []
    for source in screen.sources:
        current = loaded.get(source)
        if current is None:
            out.append(
                {"source": source, "version": None, "published_at": None, "entries": 0, "loaded_at": None,
                 "sha256": None}
            )  # fmt: skip
            continue
        v = current.version
        out.append(
            {
                "source": source,
                "version": v.version,
                "published_at": v.published_at.isoformat(),
                "entries": v.entries,
                "loaded_at": current.loaded_at.isoformat(),
                "sha256": v.sha256,
            }
        )
    return out


class ComplianceScreeningController(Controller):
    path = "/v1/admin/compliance/screening"
    tags = ["compliance"]  # noqa: RUF012 - Litestar reads this class attribute as is

    @get("/lists", guards=[READERS])
    async def lists(self, sanctions_screen: Screen) -> list[dict[str, Any]]:
        return lists_view(sanctions_screen)

    @post("/refresh", guards=[ADMINS], status_code=200)
    async def refresh(
        self,
        request: Request[Any, Any, Any],
        sanctions_screen: Screen,
        sanctions_refresh: Refresh,
        sanctions_service: Service,
    ) -> list[dict[str, Any]]:
        """Fetch every configured list now (a file refused leaves the loaded version in place), then answer what
        is loaded."""
        actor = request_actor(request)
        service, source = sanctions_service
        await sanctions_refresh.refresh_now(
            actor_user_id=actor.user_id,
            actor_roles=actor.roles,
            correlation_id=actor.correlation_id,
            service=service,
            source=source,
        )
        return lists_view(sanctions_screen)


__all__ = ["ComplianceScreeningController", "lists_view"]
