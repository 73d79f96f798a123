"""Prizeflow's Grafana dashboards: the rewards overview, one per service, the payout rails, the Kafka cluster.

Every metric named here is `prizeflow_<service>_<name>` from the services' metrics.py and
libs/runtime/src/prizeflow_runtime/metrics.py, plus Prometheus's own `up` (`job` is the service name, as the
compose Prometheus and the Kubernetes ServiceMonitors set it) and a few series of the recording rules
(deploy/prometheus/rules, `level:metric:operation`) where a panel shows exactly what an alert compares.
tests/deploy/test_grafana.py checks that each alert's `dashboard` link opens panels reading every metric it
reads. tests/e2e/test_observability.py runs the platform, loads what every service exposes into a real Prometheus
(the rules loaded) and fails on any target whose expression does not parse or names a metric with no series: a
panel that can never show data fails the build.

Gauges computed from a service's database (pool figures, payouts by state, rounds by state) are exported
identically by every replica, so they are aggregated with `max`, never `sum`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from prizeflow_contracts.events.payouts import REQUIRED_APPROVERS
from prizeflow_contracts.holds import PAYOUT_HOLD_KINDS, PayoutHoldKind, ReleasedBy
from prizeflow_contracts.reconciliation import RECON_KINDS, Severity
from prizeflow_devstack.dashboards.model import (
    CORRELATION_VARIABLE,
    TIMELINE_VARIABLE,
    Dashboard,
    Link,
    Panel,
    PanelKind,
    Query,
    Row,
    loki_explore_url,
)

RATE = "$__rate_interval"
OVERVIEW_UID = "prizeflow-rewards-overview"
RAILS_UID = "prizeflow-payout-rails"
SERVICES = ("settlement", "rewards", "payouts", "signer", "webhooks")
# Services that consume Kafka through the runtime's reliable consumer (the webhook ingress only publishes).
CONSUMING = ("settlement", "rewards", "payouts", "signer")
# Every JSON log line carries `correlation_id` (prizeflow_runtime.logging). It is a field, never a Loki stream
# label: a label per flow would be the unbounded cardinality the metrics refuse too.
LOGS_QUERY = f'{{namespace="prizeflow"}} | json | correlation_id="${CORRELATION_VARIABLE}"'
MINOR_UNITS = "Minor units of the asset (USDC: 7 decimals, USD: 2): money is never a float."


# What moves a held payout on, as the held-payouts panel says it beside its reason (the kinds' rows decide which).
_MOVES_ON: Final[Mapping[ReleasedBy, str]] = {
    ReleasedBy.VERIFICATION: "they wait for the player's verification and move on by themselves",
    ReleasedBy.RESCREEN: "they wait for the player's re-screen against newer lists",
}
_APPROVERS: Final = {1: "one approver", 2: "two approvers"}
_RESCREENED: Final = next(k.code.value for k in PAYOUT_HOLD_KINDS.values() if k.released_by is ReleasedBy.RESCREEN)
# The reconciliation kinds that page: money that left a provider without Prizeflow sending it.
UNMATCHED_DEBIT_KINDS: Final = tuple(k.code.value for k in RECON_KINDS.values() if k.severity is Severity.CRITICAL)


def _held_reasons() -> str:
    """Each hold kind and what moves it on, those that move on by themselves first (the kinds' rows, in order)."""

    def moves_on(kind: PayoutHoldKind) -> str:
        if kind.approval is None:
            return _MOVES_ON[kind.released_by]
        return _APPROVERS[REQUIRED_APPROVERS[kind.approval]]

    kinds = sorted(PAYOUT_HOLD_KINDS.values(), key=lambda k: k.in_backlog)
    return ", ".join(f"{k.code.value} ({moves_on(k)})" for k in kinds)


def service_uid(service: str) -> str:
    return f"prizeflow-service-{service}"


def _quantiles(
    metric: str, by: str = "", *, quantiles: tuple[float, ...] = (0.5, 0.99), selector: str = ""
) -> tuple[Query, ...]:
    """histogram_quantile of a histogram's rate, one query per quantile."""
    keep = f"{by}, le" if by else "le"
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by ({keep}) (rate({metric}_bucket{selector}[{RATE}])))",
            f"{_legend(by)} p{round(q * 100)}".strip(),
        )
        for q in quantiles
    )


def _legend(by: str) -> str:
    return " ".join(f"{{{{{name.strip()}}}}}" for name in by.split(",") if name.strip())


def _rate(metric: str, by: str = "", *, selector: str = "", legend: str = "", fn: str = "rate") -> Query:
    """`sum by (<by>) (<fn>(<metric><selector>[$__rate_interval]))`, its legend the `by` labels."""
    grouping = f" by ({by})" if by else ""
    return Query(f"sum{grouping} ({fn}({metric}{selector}[{RATE}]))", legend or _legend(by))


def _gauge(metric: str, by: str = "", *, selector: str = "", legend: str = "") -> Query:
    """A gauge every replica exports alike (figures read from the database): `max`, never `sum`."""
    grouping = f" by ({by})" if by else ""
    return Query(f"max{grouping} ({metric}{selector})", legend or _legend(by))


DRILL_DOWN_TEXT = f"""**Drill down by correlation id.** Type a round, claim, payout or admin action id in
*Correlation id* above, then open **Logs: correlation id** (every service's log lines of that flow, on Loki) or
**Audit timeline** (one service's `GET /admin/timeline/<id>`, behind an ops token) in the links bar.

The same audit trail from a terminal, every service's timeline merged in order:

```
prizeflow-ops trace ${CORRELATION_VARIABLE}
```

Runbooks: `docs/runbooks/`. Alert rules: `deploy/prometheus/rules/`."""


def _links(service: str | None = None) -> tuple[Link, ...]:
    logs: tuple[Link, ...] = (
        Link(
            "Logs: correlation id",
            loki_explore_url(LOGS_QUERY),
            "Every service's log lines of this flow (Loki; correlation_id is a JSON field of each line)",
        ),
    )
    if service is not None:
        logs += (
            Link(
                f"Logs: correlation id in {service}",
                loki_explore_url(f'{LOGS_QUERY} | service="{service}"'),
                f"{service}'s log lines of this flow",
            ),
        )
    return (
        *logs,
        Link(
            "Audit timeline",
            f"${{{TIMELINE_VARIABLE}}}/${{{CORRELATION_VARIABLE}}}",
            "The flow's audit trail (GET /admin/timeline/<correlation id>, ops token required). CLI, every "
            "service merged in order: prizeflow-ops trace <correlation id>",
        ),
    )


def _drill_down(width: int = 24) -> Panel:
    return Panel(
        "Drill down",
        "How to follow one flow across services",
        kind=PanelKind.TEXT,
        content=DRILL_DOWN_TEXT,
        width=width,
        height=6,
    )


# -- rewards overview --------------------------------------------------------------------------------------------

POOL = "campaign_id, asset"


def rewards_overview() -> Dashboard:
    pools = Row(
        "Campaign pools",
        (
            Panel(
                "Active campaigns",
                "Campaigns whose pool can pay rounds now (paused and closed ones are not counted).",
                (_gauge("prizeflow_rewards_campaigns", selector='{status="active"}', legend="active"),),
                kind=PanelKind.STAT,
                width=4,
            ),
            Panel(
                "Held claims",
                "Claims waiting for a person (abuse holds, new destinations): `prizeflow-ops claim held` lists them.",
                (_gauge("prizeflow_rewards_held_claims", legend="held"),),
                kind=PanelKind.STAT,
                width=4,
                red_above=50,
            ),
            Panel(
                "Failed payouts",
                "Payouts in state failed now: the reservation is voided, a person may retry or cancel each one.",
                (Query('sum(max by (provider) (prizeflow_payouts_payouts{state="failed"}))', "failed"),),
                kind=PanelKind.STAT,
                width=4,
                red_above=0,
            ),
            Panel(
                "Pool remaining",
                f"What each campaign's pool can still pay (funded - paid - reserved). {MINOR_UNITS}",
                (_gauge("prizeflow_rewards_pool_remaining", POOL),),
                width=12,
            ),
            Panel(
                "Reserved rewards",
                f"Pending debits against each pool (allocated, not yet posted). {MINOR_UNITS}",
                (_gauge("prizeflow_rewards_pool_reserved", POOL),),
            ),
            Panel(
                "Paid rewards",
                f"What each pool has paid into player wallets. {MINOR_UNITS}",
                (_gauge("prizeflow_rewards_pool_paid", POOL),),
            ),
            Panel(
                "Rounds held for an empty pool",
                "Rounds whose allocations wait for a top-up (runbook: reward pool recovery), and pool exhaustions.",
                (
                    _gauge("prizeflow_rewards_held_allocations", "campaign_id", legend="held {{campaign_id}}"),
                    _rate(
                        "prizeflow_rewards_pool_exhausted_total",
                        "campaign_id",
                        fn="increase",
                        legend="exhausted {{campaign_id}}",
                    ),
                ),
            ),
        ),
    )
    claims = Row(
        "Claims and payouts",
        (
            Panel(
                "Claims by outcome",
                "Claim requests per second: approved, held for review, refused (by code).",
                (_rate("prizeflow_rewards_claims_total", "outcome"),),
                unit="reqps",
                stack=True,
            ),
            Panel(
                "Claim volume vs 1-day baseline",
                "Claim requests per second over 5 minutes against the last day's rate (recording rules "
                "job:prizeflow_rewards_claims:rate5m and :rate1d). Alert PrizeflowAbnormalClaimVolume: above the "
                "3x line and over 0.2/s for 10 minutes.",
                (
                    Query("sum(job:prizeflow_rewards_claims:rate5m)", "last 5 minutes"),
                    Query("sum(job:prizeflow_rewards_claims:rate1d)", "1-day baseline"),
                    Query("3 * sum(job:prizeflow_rewards_claims:rate1d)", "alert line (3x baseline)"),
                ),
                unit="reqps",
            ),
            Panel(
                "Abuse holds",
                "Claims held for review per second, by reason (new destination, velocity, rejection rate...).",
                (_rate("prizeflow_rewards_abuse_holds_total", "reason"),),
                unit="reqps",
                stack=True,
            ),
            Panel(
                "Claim rejection rate",
                "Share of the claims decided in the last 24h that were rejected, voided or returned (alert "
                "PrizeflowHighClaimRejectionRate above 25 % for 30 minutes, once at least 20 were decided).",
                (_gauge("prizeflow_rewards_claim_rejection_rate", legend="rejection rate"),),
                unit="percentunit",
                red_above=0.25,
            ),
            Panel(
                "Claims decided (24h)",
                "Claims paid, rejected, voided or returned in the last 24h: the rejection rate's denominator (the "
                "alert needs at least 20).",
                (_gauge("prizeflow_rewards_claims_decided", legend="decided"),),
            ),
            Panel(
                "Payouts failing",
                "Payouts entering state failed per second, by provider.",
                (_rate("prizeflow_payouts_transitions_total", "provider", selector='{to_state="failed"}'),),
                unit="reqps",
            ),
            Panel(
                "Provider errors",
                "Errors the payout rails returned, by provider and stable error code (contracts PayoutErrorCode).",
                (_rate("prizeflow_payouts_provider_errors_total", "provider, code"),),
                unit="reqps",
                stack=True,
                width=12,
            ),
            Panel(
                "Firing alerts",
                "Prizeflow alerts firing or pending (deploy/prometheus/rules); each names its runbook.",
                kind=PanelKind.ALERTLIST,
                alert_filter='alertname=~"Prizeflow.*"',
                width=12,
            ),
        ),
    )
    conversion = Row(
        "Currency conversion",
        (
            Panel(
                "FX positions",
                "The FX desk's posted position per asset (ADR 0015): long what players sold it (net of the spread), "
                "short what it paid out. " + MINOR_UNITS,
                (_gauge("prizeflow_rewards_fx_position", "asset"),),
            ),
            Panel(
                "FX reconciliation difference",
                "Per asset, the FX account's ledger position less the sum of the desk's transfers at the last daily "
                "reconciliation. Alert PrizeflowFxPositionDrift: anything but 0.",
                (_gauge("prizeflow_rewards_fx_position_difference", "asset"),),
                red_above=0,
            ),
            Panel(
                "FX rate age",
                "Seconds since the rates provider published the latest rate read, per enabled pair. Alert "
                "PrizeflowFxRatesOutage: over 30 minutes (no quote, no converted claim).",
                (Query("time() - max by (pair) (prizeflow_rewards_fx_rate_timestamp_seconds)", "{{pair}}"),),
                unit="s",
                red_above=1800,
            ),
            Panel(
                "Quotes and rates provider failures",
                "Quotes issued per second by pair, and calls to the rates provider that gave no usable rate.",
                (
                    _rate("prizeflow_rewards_fx_quotes_total", "pair"),
                    _rate("prizeflow_rewards_fx_rate_failures_total", legend="provider failures"),
                ),
                unit="reqps",
            ),
        ),
    )
    return Dashboard(
        OVERVIEW_UID,
        "Rewards overview",
        "Campaign pools, claims and payouts at a glance; drill into a flow by its correlation id.",
        (Row("Drill down", (_drill_down(),)), pools, claims, conversion),
        tags=("overview",),
        links=_links(),
    )


# -- one per service ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Service:
    name: str
    summary: str
    traffic: tuple[Panel, ...]  # rate, errors, duration
    own: tuple[Panel, ...]


def _availability(service: str) -> Row:
    ready = f"prizeflow_{service}_ready"
    return Row(
        "Availability",
        (
            Panel(
                "Processes up",
                f"Scraped {service} processes answering /metrics (Prometheus `up`).",
                (Query(f'sum(up{{job="{service}"}})', "up"),),
                kind=PanelKind.STAT,
                width=3,
            ),
            Panel(
                "Processes down",
                f"Scraped {service} processes not answering (alert PrizeflowServiceDown after 2 minutes).",
                (Query(f'count(up{{job="{service}"}} == 0) or vector(0)', "down"),),
                kind=PanelKind.STAT,
                width=3,
                red_above=0,
            ),
            Panel(
                "Processes ready",
                f"{service} processes whose /health/ready passes (`{ready}` is 1): they take traffic and events.",
                (Query(f"sum({ready})", "ready"),),
                kind=PanelKind.STAT,
                width=3,
            ),
            Panel(
                "Processes not ready",
                "Processes running but not ready: waiting for PostgreSQL, Kafka, a topic or a start-up step (alert "
                "PrizeflowServiceNotReady after 5 minutes; the probe's body names the check).",
                (Query(f"count({ready} == 0) or vector(0)", "not ready"),),
                kind=PanelKind.STAT,
                width=3,
                red_above=0,
            ),
            _drill_down(width=12),
        ),
    )


def _consumer_traffic(s: str) -> tuple[Panel, ...]:
    m = f"prizeflow_{s}"
    return (
        Panel(
            "Events handled",
            "Events per second settled by each consumer: applied, duplicate (absorbed by the inbox), dead-lettered, "
            "skipped (a type the consumer does not act on, passed unread).",
            (_rate(f"{m}_events_consumed_total", "consumer, outcome"),),
            unit="reqps",
            stack=True,
        ),
        Panel(
            "Events not applied",
            "Errors: events per second a consumer did not apply (dead-lettered, or duplicate deliveries).",
            (
                _rate(
                    f"{m}_events_consumed_total", "consumer, outcome", selector='{outcome=~"dead_lettered|duplicate"}'
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Poll handling time",
            "Time to settle one poll batch (one database transaction per lane), p50 and p99.",
            _quantiles(f"{m}_handle_seconds", "consumer"),
            unit="s",
        ),
    )


def _delivery(s: str, *, consumes: bool) -> Row:
    m = f"prizeflow_{s}"
    consumer_panels = (
        Panel(
            "Consumer lag",
            "Records not yet committed by each consumer group, by topic (the sum over the group's members; alert "
            "PrizeflowConsumerLagGrowing above 1000 and not shrinking for 10 minutes).",
            (Query(f"sum by (consumer, topic) ({m}_consumer_lag_records)", "{{consumer}} {{topic}}"),),
            red_above=1000,
        ),
        Panel(
            "Event lag p99",
            "Event time to handled time, p99 per consumer: how late the events that were handled are.",
            _quantiles(f"{m}_event_lag_seconds", "consumer", quantiles=(0.99,)),
            unit="s",
        ),
        Panel(
            "Dead-lettered (DLQ)",
            "Events sent to the DLQ by consumer, topic and reason (alert PrizeflowEventsDeadLettered): "
            f"`prizeflow-ops dlq list --service {s}` shows them; each is redriven or purged with a reason.",
            (_rate(f"{m}_events_dead_lettered_total", "consumer, topic, reason", fn="increase"),),
            red_above=0,
        ),
    )
    outbox = (
        Panel(
            "Oldest pending outbox event",
            "Age of the oldest committed outbox row not yet published, by the database's clock (alert "
            "PrizeflowOutboxBacklogAge above 2 minutes for 5 minutes): downstream services do not see it yet.",
            (Query(f"max({m}_outbox_oldest_pending_age_seconds)", "oldest pending"),),
            unit="s",
            red_above=120,
        ),
        Panel(
            "Outbox relay leader",
            "Processes holding the outbox relay lock: 1 when healthy (the lock admits one); 0 while events wait "
            "means nobody publishes (alert PrizeflowOutboxRelayNotLeading).",
            (
                Query(f"sum by (job) ({m}_outbox_relay_leader)", "leaders"),
                Query(f"max by (instance) ({m}_outbox_relay_leader)", "{{instance}}"),
            ),
        ),
        Panel(
            "Outbox backlog",
            "Outbox rows seen unpublished at the relay's last poll, per process.",
            (Query(f"max by (instance) ({m}_outbox_pending)", "{{instance}}"),),
            red_above=1000,
        ),
        Panel(
            "Outbox published",
            "Events the relay published per second, by topic.",
            (_rate(f"{m}_outbox_published_total", "topic"),),
            unit="reqps",
            stack=True,
            width=12,
        ),
        Panel(
            "Relay batch time",
            "Time to publish one relay batch to Kafka, p50 and p99.",
            _quantiles(f"{m}_outbox_publish_seconds"),
            unit="s",
            width=12,
        ),
    )
    if consumes:
        return Row("Delivery: consumer lag, DLQ, outbox", consumer_panels + outbox)
    return Row("Delivery: outbox (no Kafka consumers)", outbox)


def _services() -> tuple[_Service, ...]:
    return (
        _Service(
            "settlement",
            "Game rounds in, settled rounds out: round states, settlement latency, disputes.",
            _consumer_traffic("settlement"),
            (
                Panel(
                    "Rounds by state",
                    "Rounds in each state (from the database).",
                    (_gauge("prizeflow_settlement_rounds", "state"),),
                ),
                Panel(
                    "Round transitions",
                    "Round state changes applied per second.",
                    (
                        _rate(
                            "prizeflow_settlement_round_transitions_total",
                            "from_state, to_state",
                            legend="{{from_state}} → {{to_state}}",
                        ),
                    ),
                    unit="reqps",
                ),
                Panel(
                    "Settlement latency",
                    "From a round's closed_at to its settlement, p50 and p99.",
                    _quantiles("prizeflow_settlement_settle_latency_seconds"),
                    unit="s",
                ),
                Panel(
                    "Disputes opened",
                    "Conflicting result sets that opened a dispute (resolved by an admin, audited).",
                    (_rate("prizeflow_settlement_disputes_total", fn="increase", legend="disputes"),),
                    red_above=0,
                ),
                Panel(
                    "Admin actions",
                    "Round resolutions and voids by admins, per second (each is audited).",
                    (_rate("prizeflow_settlement_admin_actions_total", "action"),),
                    unit="reqps",
                ),
            ),
        ),
        _Service(
            "rewards",
            "Ledger, campaign pools, claims and top-ups.",
            _consumer_traffic("rewards"),
            (
                Panel(
                    "Campaigns by status",
                    "Campaigns active, paused and closed.",
                    (_gauge("prizeflow_rewards_campaigns", "status"),),
                ),
                Panel(
                    "Ledger transfers",
                    "Ledger transfers applied per second, by kind (reward, claim_reserve, payout_post...).",
                    (_rate("prizeflow_rewards_ledger_transfers_total", "kind"),),
                    unit="reqps",
                    stack=True,
                ),
                Panel(
                    "Claims by outcome",
                    "Claim requests per second, by outcome.",
                    (_rate("prizeflow_rewards_claims_total", "outcome"),),
                    unit="reqps",
                    stack=True,
                ),
                Panel(
                    "Top-ups",
                    "Top-up sessions created or refused, credits ended unpaid, adjustments, per second.",
                    (_rate("prizeflow_rewards_top_ups_total", "outcome"),),
                    unit="reqps",
                ),
                Panel(
                    "Provider payment events",
                    "Payment events consumed from the webhook ingress, by provider and outcome.",
                    (_rate("prizeflow_rewards_payment_events_total", "provider, outcome"),),
                    unit="reqps",
                ),
                Panel(
                    "Held claims and rejection rate",
                    "Claims waiting for review; share of recently decided claims that were rejected.",
                    (
                        _gauge("prizeflow_rewards_held_claims", legend="held claims"),
                        _gauge("prizeflow_rewards_claim_rejection_rate", legend="rejection rate"),
                    ),
                ),
            ),
        ),
        _Service(
            "payouts",
            "Payout state machine, the worker and the rails it calls.",
            _consumer_traffic("payouts"),
            (
                Panel(
                    "Payouts by state",
                    "Payouts in each state now, by provider (from the database).",
                    (_gauge("prizeflow_payouts_payouts", "provider, state"),),
                ),
                Panel(
                    "Transitions",
                    "Payout state changes per second, by provider and target state.",
                    (
                        _rate(
                            "prizeflow_payouts_transitions_total",
                            "provider, to_state",
                            legend="{{provider}} → {{to_state}}",
                        ),
                    ),
                    unit="reqps",
                ),
                Panel(
                    "Provider calls",
                    "Provider calls per second by kind (create, status...) and outcome.",
                    (_rate("prizeflow_payouts_attempts_total", "provider, kind, outcome"),),
                    unit="reqps",
                ),
                Panel(
                    "Provider create latency",
                    "Provider create call latency, p99 by provider.",
                    _quantiles("prizeflow_payouts_submit_seconds", "provider", quantiles=(0.99,)),
                    unit="s",
                ),
                Panel(
                    "Worker queue and stuck rows",
                    "Payouts due for submission; rows the reconciler is watching, by kind (all providers).",
                    (
                        _gauge("prizeflow_payouts_worker_queue_length", legend="queue"),
                        Query("sum by (kind) (max by (kind, provider) (prizeflow_payouts_stuck))", "stuck {{kind}}"),
                    ),
                ),
                Panel(
                    "Worker results",
                    "Worker results per second.",
                    (_rate("prizeflow_payouts_worker_payouts_total", "result"),),
                    unit="reqps",
                ),
            ),
        ),
        _Service(
            "signer",
            "Signs Stellar payout transactions after checking them against policy; refusals may be an attack.",
            _consumer_traffic("signer"),
            (
                Panel(
                    "Decisions",
                    "Signature requests decided per second, by outcome and refusal code.",
                    (_rate("prizeflow_signer_decisions_total", "outcome, code"),),
                    unit="reqps",
                ),
                Panel(
                    "Sign latency",
                    "Time the key backend (hot key, PKCS#11) took to sign, p99 by backend.",
                    _quantiles("prizeflow_signer_sign_seconds", "backend", quantiles=(0.99,)),
                    unit="s",
                ),
            ),
        ),
        _Service(
            "webhooks",
            "The webhook ingress: verifies provider signatures, stores each event once, publishes it.",
            (
                Panel(
                    "Deliveries",
                    "Verified deliveries per second, by provider and outcome (accepted, duplicate, ignored).",
                    (_rate("prizeflow_webhooks_deliveries_total", "provider, outcome"),),
                    unit="reqps",
                    stack=True,
                ),
                Panel(
                    "Refused requests",
                    "Errors: requests refused per second by provider and reason (signature failures first).",
                    (_rate("prizeflow_webhooks_refused_total", "provider, reason"),),
                    unit="reqps",
                ),
                Panel(
                    "Group commit time",
                    "One group commit (insert, outbox, commit), p50 and p99.",
                    _quantiles("prizeflow_webhooks_write_seconds"),
                    unit="s",
                ),
            ),
            (
                Panel(
                    "Confirmations",
                    "Events fetched back from their provider before they count, by provider and outcome.",
                    (_rate("prizeflow_webhooks_confirmations_total", "provider, outcome"),),
                    unit="reqps",
                ),
                Panel(
                    "Group commit size",
                    "Deliveries committed together, p50 and p99.",
                    _quantiles("prizeflow_webhooks_write_batch_size"),
                ),
            ),
        ),
    )


def service_dashboard(service: _Service) -> Dashboard:
    return Dashboard(
        service_uid(service.name),
        f"Service: {service.name}",
        service.summary,
        (
            _availability(service.name),
            Row("Traffic: rate, errors, duration", service.traffic),
            _delivery(service.name, consumes=service.name in CONSUMING),
            Row(service.name.capitalize(), service.own),
        ),
        tags=("service", service.name),
        links=_links(service.name),
    )


# -- payout rails -------------------------------------------------------------------------------------------------


def payout_rails() -> Dashboard:
    rails = Row(
        "Payouts by provider",
        (
            Panel(
                "Payouts by provider and state",
                "Payouts in each state now (from the database).",
                (_gauge("prizeflow_payouts_payouts", "provider, state"),),
                kind=PanelKind.TABLE,
            ),
            Panel(
                "Transitions by provider",
                "Payout state changes per second, by provider and target state.",
                (
                    _rate(
                        "prizeflow_payouts_transitions_total",
                        "provider, to_state",
                        legend="{{provider}} → {{to_state}}",
                    ),
                ),
                unit="reqps",
                width=16,
            ),
            Panel(
                "Error codes",
                "Provider errors per second by provider and stable code (retryable: provider_unavailable, "
                "rate_limited, tx_bad_seq...; terminal: invalid_destination, destination_blocked...).",
                (_rate("prizeflow_payouts_provider_errors_total", "provider, code"),),
                unit="reqps",
                stack=True,
            ),
            Panel(
                "Error share of calls",
                "Each error code's share of a provider's calls over 5 minutes (recording rules). Alerts "
                "PrizeflowPayoutProviderErrors above 10 % for one code, PrizeflowPayoutProviderOutage above 50 % "
                "unavailable, timed out, unauthenticated or unsigned.",
                (
                    Query(
                        "sum by (provider, code) (job_provider_code:prizeflow_payouts_provider_errors:rate5m"
                        " / on (job, provider) group_left job_provider:prizeflow_payouts_attempts:rate5m)",
                        "{{provider}} {{code}}",
                    ),
                ),
                unit="percentunit",
                red_above=0.1,
            ),
            Panel(
                "Provider calls",
                "Calls per second by provider, kind and outcome.",
                (_rate("prizeflow_payouts_attempts_total", "provider, kind, outcome"),),
                unit="reqps",
            ),
            Panel(
                "Time to paid",
                "Payout created to paid, p50 and p99 by provider.",
                _quantiles("prizeflow_payouts_confirm_seconds", "provider"),
                unit="s",
            ),
            Panel(
                "Create call latency",
                "Provider create call latency, p99 by provider.",
                _quantiles("prizeflow_payouts_submit_seconds", "provider", quantiles=(0.99,)),
                unit="s",
            ),
            Panel(
                "Provider webhooks",
                "Provider events applied by payouts, by provider and outcome; deliveries refused at the ingress; "
                "verified events payouts could not apply (dead-lettered). Alert PrizeflowPayoutWebhookFailures.",
                (
                    _rate("prizeflow_payouts_webhooks_total", "provider, outcome"),
                    _rate(
                        "prizeflow_webhooks_refused_total", "provider, reason", legend="refused {{provider}} {{reason}}"
                    ),
                    _rate(
                        "prizeflow_payouts_events_dead_lettered_total",
                        "reason",
                        selector='{consumer="payouts-webhooks"}',
                        legend="dead-lettered {{reason}}",
                    ),
                ),
                unit="reqps",
            ),
        ),
    )
    waiting = Row(
        "Payouts waiting on an operator or a worker",
        (
            Panel(
                "Awaiting an operator",
                "Payouts by provider whose outcome has been unknown past the rail's operator threshold "
                "(unknown_outcome), and claims whose lease ran out with no worker taking them back (stale_leases). "
                "Alert PrizeflowPayoutsAwaitingOperator: any unknown outcome, or stale leases for 10 minutes "
                "(docs/runbooks/payouts-awaiting-operator.md).",
                (
                    _gauge(
                        "prizeflow_payouts_stuck",
                        "provider, kind",
                        selector='{kind=~"unknown_outcome|stale_leases"}',
                        legend="{{provider}} {{kind}}",
                    ),
                ),
                red_above=0,
                width=12,
            ),
            Panel(
                "Submitted, not confirmed yet",
                "Payouts by provider submitted over a reconcile interval ago and not confirmed: normal for a rail "
                "that confirms later (a bank payout takes days); a rail whose count only grows has stopped "
                "confirming.",
                (
                    _gauge(
                        "prizeflow_payouts_stuck",
                        "provider",
                        selector='{kind="unconfirmed"}',
                        legend="{{provider}}",
                    ),
                ),
                width=12,
            ),
        ),
    )
    stellar = Row(
        "Stellar and the signer",
        (
            Panel(
                "Stellar transactions",
                "Stellar rail calls per second by kind (submission, status) and outcome.",
                (_rate("prizeflow_payouts_attempts_total", "kind, outcome", selector='{provider="stellar"}'),),
                unit="reqps",
                width=6,
            ),
            Panel(
                "Stellar ledger and sequence errors",
                "Transaction errors from the ledger: tx_bad_seq (source sequence), tx_expired, tx_insufficient_fee.",
                (
                    _rate(
                        "prizeflow_payouts_provider_errors_total",
                        "code",
                        selector='{provider="stellar", code=~"tx_.*"}',
                    ),
                ),
                unit="reqps",
                red_above=0,
                width=6,
            ),
            Panel(
                "Signer decisions",
                "Signature requests decided per second by outcome and refusal code (a spike of refusals may be "
                "an attack).",
                (_rate("prizeflow_signer_decisions_total", "outcome, code"),),
                unit="reqps",
                width=6,
            ),
            Panel(
                "Sign latency",
                "Key backend signing time, p99 by backend.",
                _quantiles("prizeflow_signer_sign_seconds", "backend", quantiles=(0.99,)),
                unit="s",
                width=6,
            ),
        ),
    )
    progress = Row(
        "Stellar source accounts, waiting payouts, duplicates",
        (
            Panel(
                "Source account sequence",
                "Last sequence number each Stellar source account (by role: funding, channel-<n>) consumed in a "
                "transaction that landed (0: none yet). A flat line while payouts wait is a stuck account.",
                (_gauge("prizeflow_payouts_source_sequence", "provider, account"),),
                unit="none",
                width=6,
            ),
            Panel(
                "Since a source account last landed",
                "Time since a transaction of each source account last landed (about 55 years: never). Alert "
                "PrizeflowStellarStuckSourceAccount: over 15 minutes while a payout of the rail waits over 15.",
                (
                    Query(
                        "time() - max by (provider, account) (prizeflow_payouts_source_advanced_timestamp_seconds)",
                        "{{provider}} {{account}}",
                    ),
                ),
                unit="s",
                red_above=900,
                width=6,
            ),
            Panel(
                "Oldest waiting payout",
                "Age of the oldest payout each rail holds that has not landed yet (0: none waiting), for the rails "
                "that report their progress (Stellar).",
                (_gauge("prizeflow_payouts_oldest_waiting_seconds", "provider"),),
                unit="s",
                red_above=900,
                width=6,
            ),
            Panel(
                "Duplicate payouts refused",
                "Payout requests refused for reusing an idempotency key, request id or claim with another body, and "
                "payout outcomes rewards dead-lettered as a second payout for one claim (alert "
                "PrizeflowDuplicatePayoutAttempt: any).",
                (
                    _rate("prizeflow_payouts_duplicate_payouts_refused_total", "source", fn="increase"),
                    Query(
                        'sum by (job, consumer) (increase({__name__=~"prizeflow_[a-z]+_events_dead_lettered_total", '
                        f'reason="duplicate_payout"}}[{RATE}]))',
                        "dead-lettered {{job}} {{consumer}}",
                    ),
                ),
                red_above=0,
                width=6,
            ),
            Panel(
                "Final-state contradictions",
                "A later word against money held as settled, never applied: payouts' contradictions with a provider "
                "waiting for a person (the provider's current status disagrees with a final payout), and rewards' "
                "late words against a final claim or top-up (alert PrizeflowFinalStateContradicted: any).",
                (
                    _gauge("prizeflow_payouts_final_state_contradictions_open", "provider"),
                    _rate(
                        "prizeflow_rewards_final_state_contradictions_total", "subject, state, reported", fn="increase"
                    ),
                ),
                red_above=0,
                width=6,
            ),
        ),
    )
    balances = Row(
        "Balances at the providers",
        (
            Panel(
                "Balance at the provider",
                "Available balance of each rail's account at its provider, in minor units (paise for INR), read by "
                "payouts' gauges job (the upi rail: RazorpayX's banking balance), and the operator's threshold "
                "(`low_balance_below`). Alert PrizeflowProviderBalanceLow: under the threshold for 5 minutes "
                "(docs/runbooks/provider-balance-low.md).",
                (
                    _gauge("prizeflow_payouts_provider_balance", "provider, currency"),
                    _gauge(
                        "prizeflow_payouts_provider_balance_low_threshold",
                        "provider, currency",
                        legend="threshold {{provider}} {{currency}}",
                    ),
                ),
                unit="none",
                width=24,
            ),
        ),
    )
    reconciliation = Row(
        "Reconciliation with the providers' books",
        (
            Panel(
                "Unmatched provider debits",
                "Open reconciliation exceptions per provider for money that left the provider without a payout of "
                f"ours as it was made: {', '.join(UNMATCHED_DEBIT_KINDS)} (alert "
                "PrizeflowReconUnmatchedProviderDebit pages at any; docs/runbooks/recon-unmatched-provider-debit.md).",
                (_gauge("prizeflow_payouts_recon_unmatched_debits_open", "provider"),),
                kind=PanelKind.STAT,
                red_above=0,
                width=6,
            ),
            Panel(
                "Open exceptions by kind and severity",
                "Reconciliation exceptions open or being investigated, by provider, kind and severity "
                "(`prizeflow-ops recon exceptions` lists them).",
                (_gauge("prizeflow_payouts_recon_exceptions_open", "provider, kind, severity"),),
                kind=PanelKind.TABLE,
                width=10,
            ),
            Panel(
                "Oldest open exception",
                "Age of each provider's oldest open or investigating exception (0: none). Alert "
                "PrizeflowReconExceptionUnresolved above a day.",
                (_gauge("prizeflow_payouts_recon_oldest_open_exception_age_seconds", "provider"),),
                unit="s",
                red_above=86400,
                width=8,
            ),
            Panel(
                "Since the last completed run",
                "Time since each provider's last completed reconciliation run finished (about 55 years: never). "
                "The loop runs hourly over the last closed hour; alert PrizeflowReconStale above 3 hours.",
                (
                    Query(
                        "time() - max by (provider) (prizeflow_payouts_recon_last_completed_timestamp_seconds)",
                        "{{provider}}",
                    ),
                ),
                unit="s",
                red_above=10800,
                width=8,
            ),
            Panel(
                "Runs by outcome",
                "Reconciliation runs finished per provider and outcome (completed, failed) in each interval.",
                (_rate("prizeflow_payouts_recon_runs_total", "provider, outcome", fn="increase"),),
                stack=True,
                width=8,
            ),
            Panel(
                "Run duration",
                "Reconciliation run duration, p50 and p99 by provider (fetching the statement, matching, checking).",
                _quantiles("prizeflow_payouts_recon_run_duration_seconds", "provider"),
                unit="s",
                width=8,
            ),
        ),
    )
    compliance = Row(
        "Compliance: verification, screening and the payout gate",
        (
            Panel(
                "Held payouts by reason",
                f"Payouts the compliance gate holds, by reason: {_held_reasons()}. Alert "
                "PrizeflowComplianceHoldsBacklog when screening or policy holds stay all day.",
                (_gauge("prizeflow_payouts_compliance_held_payouts", "reason"),),
                stack=True,
                width=8,
            ),
            Panel(
                "Screening hits",
                "Sanctions screening hits that held a payout or a player for a person, by subject, in each interval "
                "(alert PrizeflowScreeningHit pages at any; docs/runbooks/screening-hit.md).",
                (_rate("prizeflow_payouts_screening_hits_total", "subject", fn="increase"),),
                red_above=0,
                width=8,
            ),
            Panel(
                "Gate decisions by action",
                "The risk gate's decisions on payouts per second, by stage (request, send) and action (allow, hold, "
                "refuse).",
                (_rate("prizeflow_payouts_gate_decisions_total", "stage, action"),),
                stack=True,
                width=8,
            ),
            Panel(
                "KYC vendor errors",
                "Share of calls to the identity-verification vendor that failed, by operation (alert "
                "PrizeflowKycProviderDown above half for 5 minutes; claims wait, nothing is paid unverified).",
                (
                    Query(
                        'sum by (operation) (rate(prizeflow_payouts_kyc_requests_total{outcome="error"}'
                        f"[{RATE}])) / sum by (operation) (rate(prizeflow_payouts_kyc_requests_total[{RATE}]))",
                        "{{operation}}",
                    ),
                ),
                unit="percentunit",
                red_above=0.5,
                width=8,
            ),
            Panel(
                "Sanctions list age",
                "Time since each sanctions list was last fetched and checked successfully (alert "
                "PrizeflowSanctionsListStale above three refresh periods, 3 hours by default).",
                (
                    Query(
                        "time() - max by (source) (prizeflow_payouts_sanctions_list_refreshed_timestamp_seconds)",
                        "{{source}}",
                    ),
                ),
                unit="s",
                red_above=10800,
                width=8,
            ),
            Panel(
                "Sanctions list refreshes",
                "Fetches of each configured sanctions list by outcome (unchanged, loaded, error) in each interval; "
                "a source with refreshes but no age above was never loaded.",
                (_rate("prizeflow_payouts_sanctions_list_refreshes_total", "source, outcome", fn="increase"),),
                stack=True,
                width=8,
            ),
            Panel(
                "Verified players awaiting re-screen",
                "Verified players whose screening was made against older lists than the loaded ones: their payouts "
                f"are held {_RESCREENED} until the re-screen reaches them (alert PrizeflowKycRescreenBehind when "
                "some stay 6 hours; docs/runbooks/kyc-rescreen-behind.md).",
                (_gauge("prizeflow_payouts_kyc_stale_screenings", legend="stale"),),
                width=12,
            ),
            Panel(
                "Re-screens by outcome",
                "Verified players screened again against newer lists, by outcome (clear, hit, error: the vendor gave "
                "no identity or the lists were unavailable), in each interval.",
                (_rate("prizeflow_payouts_kyc_rescreens_total", "outcome", fn="increase"),),
                stack=True,
                width=12,
            ),
        ),
    )
    return Dashboard(
        RAILS_UID,
        "Payout rails",
        "Payouts waiting on an operator, payouts by provider and state, provider error codes, the Stellar rail and "
        "the signer's decisions, reconciliation with the providers' books, compliance (verification, screening, "
        "the payout gate).",
        (Row("Drill down", (_drill_down(),)), waiting, rails, stellar, progress, balances, reconciliation, compliance),
        tags=("payouts",),
        links=_links(),
    )


# -- the Kafka cluster -------------------------------------------------------------------------------------------

KAFKA_UID = "prizeflow-kafka"
# The brokers' and controllers' own series, through Strimzi's JMX rules (deploy/k8s/base/platform/kafka-metrics.yaml);
# no Prizeflow service exports them, so the e2e tier (one broker without the exporter) cannot show them.
KAFKA_BROKER_METRICS = (
    "kafka_controller_kafkacontroller_offlinepartitionscount",
    "kafka_server_replicamanager_underminisrpartitioncount",
    "kafka_server_replicamanager_underreplicatedpartitions",
)


def kafka_cluster() -> Dashboard:
    partitions = Row(
        "Partitions: leaders and replicas",
        (
            Panel(
                "Offline partitions",
                "Partitions without a leader, as the active controller counts them: nothing is written to or read "
                "from them (alert PrizeflowKafkaOfflinePartitions: any, for 1 minute).",
                (_gauge("kafka_controller_kafkacontroller_offlinepartitionscount"),),
                red_above=0,
            ),
            Panel(
                "Partitions under min ISR, by broker",
                "Partitions a broker leads with fewer in-sync replicas than min.insync.replicas (2): acks=all writes "
                "to them are refused, the relays' events wait in PostgreSQL (alert "
                "PrizeflowKafkaUnderMinIsrPartitions: any, for 1 minute).",
                (_gauge("kafka_server_replicamanager_underminisrpartitioncount", "pod"),),
                red_above=0,
            ),
            Panel(
                "Under-replicated partitions, by broker",
                "Partitions a broker leads with a replica out of sync: writes still succeed on two of three copies, "
                "one more broker lost stops them (alert PrizeflowKafkaUnderReplicatedPartitions: any, for 10 "
                "minutes).",
                (_gauge("kafka_server_replicamanager_underreplicatedpartitions", "pod"),),
                red_above=0,
            ),
        ),
    )
    consumers = Row(
        "Consumers",
        (
            Panel(
                "Consumer lag, by service and consumer",
                "Records not yet consumed, as each consumer reports it (alert PrizeflowConsumerLagGrowing).",
                (
                    Query(
                        "sum by (job, consumer) (job_consumer_topic:prizeflow_consumer_lag_records:sum)",
                        "{{job}} {{consumer}}",
                    ),
                ),
                width=24,
            ),
        ),
    )
    return Dashboard(
        KAFKA_UID,
        "Kafka",
        "The Kafka cluster the outbox relays publish to and the consumers read: partitions without a leader, under "
        "min ISR or under-replicated (the brokers' series through Strimzi's JMX rules), and consumer lag.",
        (Row("Drill down", (_drill_down(),)), partitions, consumers),
        tags=("kafka",),
        links=_links(),
    )


# -- the databases and the volumes ----------------------------------------------------------------------------------

DATABASES_UID = "prizeflow-databases"
# The databases' series (CloudNativePG's exporter and the barman-cloud plugin's, through the PodMonitor `postgres`)
# and the volumes' (the kubelet's): no Prizeflow service exports them, so the e2e tier cannot show them.
DATABASE_METRICS = (
    "cnpg_pg_stat_archiver_last_archived_time",
    "cnpg_pg_stat_archiver_last_failed_time",
    "cnpg_pg_replication_in_recovery",
    "cnpg_pg_replication_streaming_replicas",
    "cnpg_collector_sync_replicas",
    "cnpg_collector_pg_wal_archive_status",
    "barman_cloud_cloudnative_pg_io_last_available_backup_timestamp",
    "barman_cloud_cloudnative_pg_io_last_failed_backup_timestamp",
    "barman_cloud_cloudnative_pg_io_first_recoverability_point",
)
VOLUME_METRICS = ("kubelet_volume_stats_available_bytes", "kubelet_volume_stats_capacity_bytes")
# The bundle's Kubernetes API probe (prizeflow_ops.apiprobe, deploy/k8s kubernetes-api-probe): only on a cluster.
KUBERNETES_API_METRICS = ("prizeflow_kubernetes_api_up", "prizeflow_kubernetes_api_probes_total")
# Every series of the platform around the services (Kafka, PostgreSQL, the volumes, the Kubernetes API) the rules and
# dashboards read.
PLATFORM_METRICS = (*KAFKA_BROKER_METRICS, *DATABASE_METRICS, *VOLUME_METRICS, *KUBERNETES_API_METRICS)
_PRIMARY = "and on (namespace, pod) cnpg_pg_replication_in_recovery == 0"


def databases_and_volumes() -> Dashboard:
    archive = Row(
        "WAL archive: the newest point a restore reaches",
        (
            Panel(
                "Since the last archived segment, by cluster",
                "How far behind now the newest restorable point is: the primary's last archived WAL segment (alert "
                "PrizeflowDatabaseRecoverabilityStalled: over an hour, for 15 minutes).",
                (Query("time() - max by (cluster) (cnpg_pg_stat_archiver_last_archived_time)", "{{cluster}}"),),
                unit="s",
                red_above=3600,
            ),
            Panel(
                "Archiving failing, by cluster",
                "Seconds the primary's last failure is newer than its last success: above 0, the WAL since is on the "
                "cluster's volumes only (alert PrizeflowDatabaseWalArchivingFailing: for 5 minutes).",
                (
                    Query(
                        "max by (cluster) (cnpg_pg_stat_archiver_last_failed_time)"
                        " - max by (cluster) (cnpg_pg_stat_archiver_last_archived_time)",
                        "{{cluster}}",
                    ),
                ),
                unit="s",
                red_above=0,
            ),
            Panel(
                "Segments waiting to be archived, by cluster",
                "Completed WAL segments the archiver has not sent yet (`.ready` in pg_wal/archive_status): a few while "
                "it works, growing when it is stuck. With nothing archived for an hour, alert "
                "PrizeflowDatabaseRecoverabilityStalled; an idle database has none, and does not page.",
                (Query('max by (cluster) (cnpg_collector_pg_wal_archive_status{value="ready"})', "{{cluster}}"),),
            ),
        ),
    )
    backups = Row(
        "Base backups (the barman-cloud plugin)",
        (
            Panel(
                "Age of the newest base backup, by cluster",
                "Since the newest base backup in the cluster's object store (alert PrizeflowDatabaseBackupMissing: "
                "over 26 hours, for 30 minutes; a cluster never backed up shows decades).",
                (
                    Query(
                        "time() - max by (cluster) (barman_cloud_cloudnative_pg_io_last_available_backup_timestamp)",
                        "{{cluster}}",
                    ),
                ),
                unit="s",
                red_above=26 * 3600,
            ),
            Panel(
                "Last failed backup after the last good one, by cluster",
                "Above 0: the last base backup failed and none succeeded since (alert PrizeflowDatabaseBackupFailed).",
                (
                    Query(
                        "max by (cluster) (barman_cloud_cloudnative_pg_io_last_failed_backup_timestamp)"
                        " - max by (cluster) (barman_cloud_cloudnative_pg_io_last_available_backup_timestamp)",
                        "{{cluster}}",
                    ),
                ),
                unit="s",
                red_above=0,
            ),
            Panel(
                "Recovery window, by cluster",
                "How far back a point-in-time recovery can go: since the oldest base backup retention kept (30 days).",
                (
                    Query(
                        "time() - max by (cluster) (barman_cloud_cloudnative_pg_io_first_recoverability_point)",
                        "{{cluster}}",
                    ),
                ),
                unit="s",
            ),
        ),
    )
    replication = Row(
        "Primaries and synchronous standbys",
        (
            Panel(
                "Standbys streaming, and required, by cluster",
                "On each primary: standbys streaming WAL, and how many synchronous ones its commits wait for. Fewer "
                "streaming than required: every commit waits (alert PrizeflowDatabaseNoSynchronousStandby).",
                (
                    Query(
                        f"max by (cluster) (cnpg_pg_replication_streaming_replicas {_PRIMARY})", "{{cluster}} streaming"
                    ),
                    Query(
                        f'max by (cluster) (cnpg_collector_sync_replicas{{value="observed"}} {_PRIMARY})',
                        "{{cluster}} required",
                    ),
                ),
            ),
            Panel(
                "Primaries, by cluster",
                "Instances that accept writes (not in recovery): 1 per cluster; 0 for two minutes is alert "
                "PrizeflowDatabaseNoPrimary.",
                (Query("count by (cluster) (cnpg_pg_replication_in_recovery == 0)", "{{cluster}}"),),
                red_above=1,
            ),
        ),
    )
    kubernetes_api = Row(
        "The Kubernetes API from the database and Kafka pods",
        (
            Panel(
                "API answered (the probe under their egress rule)",
                "1: the probe kubernetes-api-probe, which goes out under the same NetworkPolicy rule as the database "
                "instances and the Kafka pods, got an answer from the `kubernetes` Service; 0: none (a standby could "
                "not take the primary lease; alert PrizeflowKubernetesApiUnreachable after 5 minutes).",
                (Query("min by (namespace) (prizeflow_kubernetes_api_up)", "{{namespace}}"),),
            ),
            Panel(
                "Probes, by outcome",
                "Probes of the Kubernetes API answered and unreachable: some of each is one address of the API server "
                "missing from the site's list (the Service sends each connection to one endpoint).",
                (
                    Query(
                        "sum by (outcome) (increase(prizeflow_kubernetes_api_probes_total[$__rate_interval]))",
                        "{{outcome}}",
                    ),
                ),
                width=16,
            ),
        ),
    )
    volumes = Row(
        "Volumes: PostgreSQL instances and Kafka nodes",
        (
            Panel(
                "Free space, by volume",
                "Share of each volume of the namespace still free (alert PrizeflowVolumeFillingUp: under 10%, or "
                "full within a day at the last 6 hours' rate).",
                (
                    Query(
                        'max by (persistentvolumeclaim) (kubelet_volume_stats_available_bytes{namespace="prizeflow"}'
                        ' / kubelet_volume_stats_capacity_bytes{namespace="prizeflow"})',
                        "{{persistentvolumeclaim}}",
                    ),
                ),
                unit="percentunit",
                width=24,
            ),
        ),
    )
    return Dashboard(
        DATABASES_UID,
        "Databases and volumes",
        "Whether every database can be restored and keeps its commits: the WAL archive and base backups (the "
        "barman-cloud plugin's series), primaries and synchronous standbys (CloudNativePG's), and the space left "
        "on every volume of the namespace (the kubelet's).",
        (Row("Drill down", (_drill_down(),)), archive, backups, replication, kubernetes_api, volumes),
        tags=("databases",),
        links=_links(),
    )


def dashboards() -> tuple[Dashboard, ...]:
    return (
        rewards_overview(),
        *(service_dashboard(s) for s in _services()),
        payout_rails(),
        kafka_cluster(),
        databases_and_volumes(),
    )
