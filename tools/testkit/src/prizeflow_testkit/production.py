"""What the production profile requires of every service besides its identity provider, for tests that build
production settings without connecting anywhere: authenticated Kafka over TLS and an explicit database."""

from __future__ import annotations

from prizeflow_testkit.kafka import PRODUCTION_KAFKA_ENV

PRODUCTION_DATABASE_URL = "postgresql://prizeflow:not-a-real-password@db.invalid:5432/prizeflow"
PRODUCTION_ENV = {**PRODUCTION_KAFKA_ENV, "DATABASE_URL": PRODUCTION_DATABASE_URL}
