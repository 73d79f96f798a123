"""The composition root: everything the webhooks process runs, built from its settings."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from litestar import Litestar
from litestar.di import Provide

from prizeflow_contracts.topics import AUDIT, WEBHOOK_PROVIDER_EVENTS
from prizeflow_runtime.service import ServiceRuntime
from prizeflow_runtime.settings import Profile
from prizeflow_runtime.uow import UnitOfWork
from prizeflow_webhooks.adapters.books import bind
from prizeflow_webhooks.adapters.config import WebhooksConfig, load_config
from prizeflow_webhooks.adapters.confirm_apis import ConfirmClient, confirm_client
from prizeflow_webhooks.adapters.queries_pg import SqlDeliveryQueries
from prizeflow_webhooks.application.books import Books
from prizeflow_webhooks.application.intake import DeliveryIntake
from prizeflow_webhooks.application.metrics import WebhooksMetrics
from prizeflow_webhooks.application.receive import ReceiveWebhook
from prizeflow_webhooks.application.republish import RepublishDelivery
from prizeflow_webhooks.application.retention import PruneDeliveries
from prizeflow_webhooks.application.timeline import WebhooksTimeline
from prizeflow_webhooks.entrypoints.http import DeliveriesController
from prizeflow_webhooks.entrypoints.ingress import WebhookIngress
from prizeflow_webhooks.expected_schema import EXPECTED_SCHEMA
from prizeflow_webhooks.settings import WebhooksSettings


def build(
    settings: WebhooksSettings,
    *,
    env: Mapping[str, str] | None = None,
    apis: Mapping[str, object] | None = None,
) -> WebhookIngress:
    """The ingress in front of the service's Litestar app. `env` (secrets) defaults to the process environment;
    `apis` (by provider name) default to the client of its scheme's provider API (`confirm_client`) for every
    provider configured with `confirm`."""
    config: WebhooksConfig = load_config(
        settings.webhooks_providers_file, dev=settings.prizeflow_profile is Profile.DEV, env=env
    )
    rt = ServiceRuntime(settings, schema=EXPECTED_SCHEMA, bind=bind)
    uow: UnitOfWork[Books] = rt.uow
    metrics = WebhooksMetrics.create(rt.registry, config.providers, settings.service_name)
    queries = SqlDeliveryQueries(rt.engine)
    intake = DeliveryIntake(
        uow,
        queries,
        max_batch=settings.webhooks_write_batch_max,
        concurrency=settings.webhooks_write_concurrency,
        metrics=metrics,
    )
    owned: list[ConfirmClient] = []
    if apis is None:
        owned = [confirm_client(config.providers[name].scheme, c) for name, c in config.confirm.items()]
        apis = dict(zip(config.confirm, owned, strict=True))
    receive = ReceiveWebhook(
        providers=config.providers,
        writer=intake,
        metrics=metrics,
        source=settings.source,
        apis=apis,
    )
    republish = RepublishDelivery(uow=uow, source=settings.source, service=settings.service_name, metrics=metrics)
    prune = PruneDeliveries(uow, retention=timedelta(days=settings.webhooks_delivery_retention_days))
    # Every replica prunes (each deletes rows the others have not locked); started once the runtime is up.
    rt.jobs.every(settings.webhooks_retention_interval_s, prune, name="deliveries-retention")
    rt.produces([WEBHOOK_PROVIDER_EVENTS.name, AUDIT.name])
    app: Litestar = rt.http_app(
        [DeliveriesController],
        dependencies={
            "queries": Provide(lambda: queries, sync_to_thread=False),
            "republish_delivery": Provide(lambda: republish, sync_to_thread=False),
        },
        timeline=[WebhooksTimeline(queries)],
    )
    app.on_shutdown.insert(0, intake.stop)
    for client in owned:
        app.on_shutdown.append(client.close)
    return WebhookIngress(app, receive)


__all__ = ["build"]
