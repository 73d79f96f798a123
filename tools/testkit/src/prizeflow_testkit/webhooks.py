"""The webhooks ingress as a process for tests and benchmarks, and signed callbacks in the Prizeflow format.

    ingress = WebhooksProcess.create(db_url, bootstrap, suffix, tmp_path)   # a sandbox provider, its secret
    ingress.start()
    status, answer = await ingress.post("sandbox", sandbox_payout_event(...))

The database must be migrated first (`upgrade_to_head(WEBHOOKS_ALEMBIC_INI, url)`) and the topics provisioned
(`provision_test_topics`): the service verifies them, it never creates them.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import yaml

from prizeflow_contracts.webhook_signatures import PRIZEFLOW_SIGNATURE_HEADER, STRIPE_SIGNATURE_HEADER, signature_header
from prizeflow_testkit.processes import Process, free_port

WEBHOOKS_ALEMBIC_INI: Final = str(Path(__file__).resolve().parents[4] / "services" / "webhooks" / "alembic.ini")
SANDBOX_SECRET_ENV: Final = "WEBHOOK_SECRET_SANDBOX"  # noqa: S105 - the NAME of a variable, not a secret
STRIPE_SECRET_ENV: Final = "STRIPE_WEBHOOK_SECRET"  # noqa: S105 - the NAME of a variable, not a secret


def sandbox_provider(name: str = "sandbox", secret_envs: Sequence[str] = (SANDBOX_SECRET_ENV,)) -> dict[str, Any]:
    return {"name": name, "type": "sandbox", "scheme": "prizeflow_signature", "secrets": list(secret_envs)}


def sign(secret: str | Sequence[str], body: bytes, *, at: float | None = None) -> str:
    """A `t=…,v1=…` header value over `body` (both schemes share the construction)."""
    return signature_header(secret, int(time.time() if at is None else at), body)


def sandbox_payout_event(event_id: str, **fields: Any) -> dict[str, Any]:
    """A Prizeflow-format payout callback (README: "The Prizeflow webhook format")."""
    return {"event_id": event_id, "kind": "payout.paid", "subject": "payout", "status": "paid", **fields}


@dataclass
class WebhooksProcess(Process):
    """`python -m prizeflow_webhooks` with a providers file of its own and the secrets it names."""

    port: int = 0
    secrets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        database_url: str,
        bootstrap: str,
        suffix: str,
        workdir: Path,
        *,
        providers: Sequence[Mapping[str, Any]] | None = None,
        secrets_env: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        name: str = "webhooks",
    ) -> WebhooksProcess:
        """`providers` default to one sandbox provider; `secrets_env` default to a random secret for each
        variable they name."""
        providers = list(providers or [sandbox_provider()])
        wanted = {e for p in providers for e in p.get("secrets", [])}
        values = dict(secrets_env) if secrets_env is not None else {e: secrets.token_hex(24) for e in wanted}
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / f"{name}-providers.yaml"
        config.write_text(yaml.safe_dump({"providers": providers}))
        port = free_port()
        full_env = {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC_SUFFIX": suffix,
            "HTTP_PORT": str(port),
            "WEBHOOKS_PROVIDERS_FILE": str(config),
            "OUTBOX_POLL_INTERVAL_MS": "50",
            "LOG_JSON": "false",
            **values,
            **(env or {}),
        }
        return cls(
            [sys.executable, "-m", "prizeflow_webhooks"],
            full_env,
            workdir / f"{name}.log",
            f"http://127.0.0.1:{port}/health/ready",
            port=port,
            secrets=values,
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, provider: str) -> str:
        return f"{self.base}/providers/{provider}/events"

    async def post(
        self,
        provider: str,
        doc: Mapping[str, Any] | bytes,
        *,
        secret_env: str = SANDBOX_SECRET_ENV,
        stripe: bool = False,
        at: float | None = None,
    ) -> tuple[int, Any]:
        """Sign `doc` with the secret in `secret_env` and deliver it; (status, JSON answer)."""
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        header = STRIPE_SIGNATURE_HEADER if stripe else PRIZEFLOW_SIGNATURE_HEADER
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                self.url(provider),
                content=body,
                headers={header: sign(self.secrets[secret_env], body, at=at), "content-type": "application/json"},
            )
        return response.status_code, response.json() if response.content else None

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


__all__ = [
    "SANDBOX_SECRET_ENV",
    "STRIPE_SECRET_ENV",
    "WEBHOOKS_ALEMBIC_INI",
    "WebhooksProcess",
    "sandbox_payout_event",
    "sandbox_provider",
    "sign",
]
