"""The composition root: the console built from its settings."""

from __future__ import annotations

import logging
from datetime import timedelta

from litestar import Litestar
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_console.adapters.http_apis import HttpPlatformApi
from prizeflow_console.adapters.oidc import OidcProvider
from prizeflow_console.adapters.sessions_pg import PgSessionStore
from prizeflow_console.application.login import SignInFlow
from prizeflow_console.application.ports import IdentityProvider, PlatformApi, SessionStore
from prizeflow_console.domain.session import Timeouts
from prizeflow_console.entrypoints.http import create_app, origin_of
from prizeflow_console.expected_schema import EXPECTED_SCHEMA
from prizeflow_console.settings import ConsoleSettings
from prizeflow_runtime.db import create_engine, read_schema_state
from prizeflow_runtime.schema_compat import check_compatible

log = logging.getLogger(__name__)


def build(
    settings: ConsoleSettings,
    *,
    idp: IdentityProvider | None = None,
    apis: PlatformApi | None = None,
    sessions: SessionStore | None = None,
    registry: CollectorRegistry | None = None,
) -> Litestar:
    """`idp` and `apis` default to the identity provider and the services the settings name."""
    assert settings.oidc_issuer
    assert settings.oidc_discovery_url
    assert settings.oidc_client_id
    assert settings.console_session_secret is not None
    closers = []
    if idp is None:
        oidc = OidcProvider(
            issuer=settings.oidc_issuer,
            discovery_url=settings.oidc_discovery_url,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None,
            redirect_uri=f"{settings.public_url}/auth/callback",
            scopes=settings.oidc_scopes,
            roles_claim=settings.oidc_roles_claim,
            timeout_s=settings.console_api_timeout_s,
        )
        closers.append(oidc.aclose)
        idp = oidc
    if apis is None:
        http_apis = HttpPlatformApi(settings.service_urls, timeout_s=settings.console_api_timeout_s)
        closers.append(http_apis.aclose)
        apis = http_apis
    checks = []
    if sessions is None:
        assert settings.database_url is not None
        engine = create_engine(settings.database_url, pool_size=5, timeouts=settings.database_timeouts)

        async def dispose() -> None:
            await engine.dispose()

        async def schema() -> None:
            await refuse_incompatible_schema(engine)

        closers.append(dispose)
        checks.append(schema)
        sessions = PgSessionStore(engine)
    app = create_app(
        sign_in=SignInFlow(idp),
        idp=idp,
        apis=apis,
        session_secret=settings.console_session_secret.get_secret_value(),
        public_url=settings.public_url,
        idp_origin=origin_of(settings.oidc_discovery_url),
        dev=settings.dev,
        secure_cookies=settings.secure_cookies,
        max_age_s=settings.console_session_max_age_s,
        sessions=sessions,
        timeouts=Timeouts(
            idle=timedelta(seconds=settings.console_session_idle_s),
            absolute=timedelta(seconds=settings.console_session_max_age_s),
        ),
        registry=registry or CollectorRegistry(),
        on_shutdown=closers,
    )
    app.on_startup.extend(checks)
    return app


async def refuse_incompatible_schema(engine: AsyncEngine) -> None:
    """Its sessions database behind, ahead through a contract step or unknown (`check_compatible`): the console does
    not start (the process exits naming both revisions; Kubernetes restarts it until the right migrations or release
    arrive). A database that cannot be reached is not judged here: the console starts, and its sign-ins fail, as
    before."""
    try:
        async with engine.connect() as conn:
            revision, applied = await read_schema_state(conn)
    except (OSError, DBAPIError) as err:
        log.warning("console: database schema not checked (database unreachable: %s)", type(err).__name__)
        return
    check_compatible(EXPECTED_SCHEMA, revision, applied)


__all__ = ["build", "refuse_incompatible_schema"]
