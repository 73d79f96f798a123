"""The provider registry: which configured provider pays a given asset to a given destination type."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from prizeflow_contracts.providers import DestinationType, ProviderCapabilities, ProviderType, RewardPayoutProvider
from prizeflow_payouts.application.rail import Rail


@dataclass(frozen=True)
class ProviderEntry:
    """One configured rail under its providers-file name. `public` is what the admin API may show: never a
    secret, nor its env name."""

    name: str
    rail: Rail
    assets: tuple[str, ...]
    destination_types: tuple[DestinationType, ...]
    public: Mapping[str, Any] = field(default_factory=dict)

    @property
    def provider(self) -> RewardPayoutProvider:
        return self.rail.payouts

    @property
    def type(self) -> ProviderType:
        return self.rail.payouts.provider_type

    @property
    def polls_status(self) -> bool:
        """False: nobody polls it (manual: an operator reports the outcome through the admin API)."""
        return self.rail.terms.polls_status

    @cached_property
    def capabilities(self) -> ProviderCapabilities:
        """Derived from the rail's parts and terms, for the assets and destinations it is configured for."""
        return self.rail.capabilities(self.assets, self.destination_types)

    def payable_amounts(self, asset: str) -> tuple[int, ...] | None:
        """The only amounts it pays of `asset` (a rail with fixed amounts), else None (any amount)."""
        return self.rail.amounts.payable_amounts(asset) if self.rail.amounts is not None else None

    def serves(self, asset: str, destination_type: DestinationType) -> bool:
        return asset in self.assets and destination_type in self.destination_types


@dataclass(frozen=True, slots=True)
class Route:
    asset: str
    destination_type: DestinationType
    provider: str


class NoRouteError(LookupError):
    pass


class ProviderRegistry:
    """Routing: explicit routes first (in file order), then the first provider serving asset and destination."""

    def __init__(self, entries: Sequence[ProviderEntry], routes: Sequence[Route] = ()) -> None:
        self._entries = {e.name: e for e in entries}
        self._order = list(entries)
        self._routes = list(routes)

    def __iter__(self) -> Iterator[ProviderEntry]:
        return iter(self._order)

    def routable(self) -> list[tuple[str, DestinationType, ProviderType]]:
        """Every (asset, destination type) some provider pays, with that provider's type: what rewards may
        accept claims for."""
        return sorted(
            {(asset, dt, e.type) for e in self._order for asset in e.assets for dt in e.destination_types},
            key=lambda r: (r[0], r[1].value, r[2].value),
        )

    def routes(self) -> list[tuple[str, DestinationType, ProviderType, tuple[int, ...] | None]]:
        """`routable()` with the amounts each pays: None (any amount) unless every provider of the route pays
        fixed amounts (`Rail.amounts`), then the union of theirs."""
        amounts: dict[tuple[str, DestinationType, ProviderType], set[int] | None] = {}
        for e in self._order:
            for asset in e.assets:
                fixed = e.payable_amounts(asset)
                for dt in e.destination_types:
                    key = (asset, dt, e.type)
                    if fixed is None:
                        amounts[key] = None  # some provider of the route pays any amount
                    elif key not in amounts:
                        amounts[key] = set(fixed)
                    elif (known := amounts[key]) is not None:
                        known.update(fixed)
        return [
            (asset, dt, ptype, tuple(sorted(a)) if a is not None else None)
            for (asset, dt, ptype), a in sorted(amounts.items(), key=lambda r: (r[0][0], r[0][1].value, r[0][2].value))
        ]

    def get(self, name: str) -> ProviderEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise NoRouteError(f"no provider named {name!r} is configured") from None

    def route(
        self,
        asset: str,
        destination_type: DestinationType,
        preferred: ProviderType | None = None,
        amount: int | None = None,
    ) -> ProviderEntry:
        """The provider that pays this; with `amount`, the first that pays that amount (`routes()` announces the
        union of the fixed-amount providers' amounts), else the first that fits (its validation says why not)."""

        def fits(entry: ProviderEntry) -> bool:
            return entry.serves(asset, destination_type) and (preferred is None or entry.type is preferred)

        explicit = [
            self._entries[r.provider]
            for r in self._routes
            if r.asset == asset and r.destination_type is destination_type
        ]
        candidates = [e for e in [*explicit, *self._order] if fits(e)]
        if amount is not None:
            for entry in candidates:
                fixed = entry.payable_amounts(asset)
                if fixed is None or amount in fixed:
                    return entry
        if candidates:
            return candidates[0]
        want = f" of type {preferred.value}" if preferred else ""
        raise NoRouteError(f"no provider{want} pays {asset} to a {destination_type.value} destination")


__all__ = ["NoRouteError", "ProviderEntry", "ProviderRegistry", "Route"]
