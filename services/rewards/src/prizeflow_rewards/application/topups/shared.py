"""What the top-up use cases share: their error, the configured providers, and who may see a top-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prizeflow_contracts.money import ASSETS
from prizeflow_rewards.application.ports import CheckoutProvider, CheckoutRefusedError, CheckoutUnavailableError
from prizeflow_rewards.domain.topups import Refusal, TopUp, topupable
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.principal import Principal, Role


class TopUpError(UseCaseError):
    """A top-up request refused: nothing written, no session created (or, for a verify, nothing moved)."""


@dataclass(frozen=True)
class CheckoutProviders:
    """The configured checkout providers by name; `default` serves a request that names none."""

    default: str
    providers: Mapping[str, CheckoutProvider]

    def get(self, name: str | None) -> CheckoutProvider | None:
        return self.providers.get(name or self.default)


def refused(refusal: Refusal, metrics: RewardsMetrics | None) -> TopUpError:
    if metrics is not None:
        metrics.top_ups.labels(f"refused_{refusal.code.value}").inc()
    return TopUpError(ErrorKind.INVALID, refusal.code.value, refusal.detail)


def provider_failure(err: CheckoutUnavailableError | CheckoutRefusedError) -> TopUpError:
    """The provider's failure as the request's refusal: unreachable is a 503 (retry: the same request key gets the
    same session), a refusal a 422 with the provider's code."""
    if isinstance(err, CheckoutUnavailableError):
        return TopUpError(
            ErrorKind.UNAVAILABLE, "provider_unavailable", f"{err.provider} did not answer; nothing was recorded"
        )
    return TopUpError(ErrorKind.INVALID, "provider_refused", f"{err.provider} refused the session: {err.code}")


def not_found(top_up_id: str) -> TopUpError:
    return TopUpError(ErrorKind.NOT_FOUND, "top_up_not_found", f"no top-up {top_up_id}")


def currency_of(top_up: TopUp, provider: CheckoutProvider) -> str | None:
    spec = ASSETS.get(top_up.asset)
    currency = topupable(spec, provider.name, provider.currency_scheme) if spec else None
    return currency if isinstance(currency, str) else None


def may_see(actor: Principal, top_up: TopUp) -> bool:
    return actor.has_any(Role.ADMIN, Role.OPS) or (actor.has_any(Role.PLAYER) and actor.user_id == top_up.player_id)


__all__ = [
    "CheckoutProviders",
    "TopUpError",
    "currency_of",
    "may_see",
    "not_found",
    "provider_failure",
    "refused",
]
