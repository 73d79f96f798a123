"""The composition root: everything the webhooks process runs, built from its settings."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from litestar import Litestar
from litestar.di import Provide

from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.topics import AUDIT, WEBHOOK_PROVIDER_EVENTS
from prizeflow_runtime.service import ServiceRuntime
from prizeflow_runtime.settings import Profile
from prizeflow_runtime.uow import UnitOfWork
from prizeflow_webhooks.adapters.books import bind
from prizeflow_webhooks.adapters.config import WebhooksConfig, load_config
from prizeflow_webhooks.adapters.giftcard_api import GiftCardOrderFetcher
from prizeflow_webhooks.adapters.queries_pg import SqlDeliveryQueries
from prizeflow_webhooks.adapters.razorpayx_api import RazorpayxPayoutFetcher
from prizeflow_webhooks.adapters.stripe_api import StripeEventConfirmer
from prizeflow_webhooks.application.books import Books
from prizeflow_webhooks.application.intake import DeliveryIntake
from prizeflow_webhooks.application.metrics import WebhooksMetrics
from prizeflow_webhooks.application.ports import EventConfirmer, OrderFetcher, PayoutFetcher
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
    confirmers: Mapping[str, EventConfirmer] | None = None,
    order_fetchers: Mapping[str, OrderFetcher] | None = None,
    payout_fetchers: Mapping[str, PayoutFetcher] | None = None,
) -> WebhookIngress:
    """The ingress in front of the service's Litestar app. `env` (secrets) defaults to the process environment;
    `confirmers` default to the Stripe API for every provider configured with `confirm`."""
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
    gift_cards = {n for n, p in config.providers.items() if p.type is ProviderType.GIFT_CARD}
    upis = {n for n, p in config.providers.items() if p.type is ProviderType.UPI}
    if confirmers is None:
        confirmers = {
            name: StripeEventConfirmer(c) for name, c in config.confirm.items() if name not in gift_cards | upis
        }
    owned: dict[str, GiftCardOrderFetcher | RazorpayxPayoutFetcher] = {}
    if order_fetchers is None:
        orders = {name: GiftCardOrderFetcher(c) for name, c in config.confirm.items() if name in gift_cards}
        owned.update(orders)
        order_fetchers = orders
    if payout_fetchers is None:
        payouts = {name: RazorpayxPayoutFetcher(c) for name, c in config.confirm.items() if name in upis}
        owned.update(payouts)
        payout_fetchers = payouts
    receive = ReceiveWebhook(
        providers=config.providers,
        writer=intake,
        metrics=metrics,
        source=settings.source,
        confirmers=confirmers,
        order_fetchers=order_fetchers,
        payout_fetchers=payout_fetchers,
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
    for fetcher in owned.values():
        app.on_shutdown.append(fetcher.close)
    return WebhookIngress(app, receive)


__all__ = ["build"]
