"""Prizeflow runtime kit: settings, database, outbox and relay, inbox, reliable Kafka consumers, HTTP."""

from prizeflow_runtime.auth import Principal, Role, TokenVerifier, require_roles, token_verifier
from prizeflow_runtime.broker import attach_consumer, commit_offsets, create_broker, ensure_topics
from prizeflow_runtime.consumer import BatchHandler, EventHandler, ReliableConsumer
from prizeflow_runtime.db import create_engine, create_messaging_schema, session_factory
from prizeflow_runtime.http import ProblemError, create_app
from prizeflow_runtime.inbox import Delivery, claim, claim_many
from prizeflow_runtime.logging import configure_logging, log_context
from prizeflow_runtime.metrics import RuntimeMetrics
from prizeflow_runtime.outbox import OutboxRelay, add_event, add_events, idempotent_producer
from prizeflow_runtime.service import ServiceRuntime, serve
from prizeflow_runtime.settings import Profile, RetrySettings, ServiceSettings, settings_or_exit

__all__ = [
    "BatchHandler",
    "Delivery",
    "EventHandler",
    "OutboxRelay",
    "Principal",
    "ProblemError",
    "Profile",
    "ReliableConsumer",
    "RetrySettings",
    "Role",
    "RuntimeMetrics",
    "ServiceRuntime",
    "ServiceSettings",
    "TokenVerifier",
    "add_event",
    "add_events",
    "attach_consumer",
    "claim",
    "claim_many",
    "commit_offsets",
    "configure_logging",
    "create_app",
    "create_broker",
    "create_engine",
    "create_messaging_schema",
    "ensure_topics",
    "idempotent_producer",
    "log_context",
    "require_roles",
    "serve",
    "session_factory",
    "settings_or_exit",
    "token_verifier",
]
