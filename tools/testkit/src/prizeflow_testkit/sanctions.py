"""The sanctions lists' emulated publishers (tools/sanctions-emulator) as a real process on a free port, and an async
client of its `/_emulator` controls. Imported by tests only.

    with sanctions_emulator(tmp_path / "sanctions.log") as em:
        settings = settings_for(..., payouts_sanctions_sources=em.sources(PATHS))  # the emulator's server.PATHS
        async with em.admin() as admin:
            await admin.publish("ofac_sdn", {"name": "...", "addresses": [{"currency": "ETH", "address": "0x..."}]})
            await admin.serve_file("ofac_sdn", data)   # these bytes, as they are, from now on
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from prizeflow_testkit.processes import Process, free_port


@dataclass
class SanctionsEmulator:
    url: str
    process: Process

    def sources(self, paths: Mapping[str, str]) -> str:
        """`PAYOUTS_SANCTIONS_SOURCES` for these lists (source → its publisher's path), each served here."""
        return ",".join(f"{name}={self.url}{path}" for name, path in paths.items())

    def admin(self) -> SanctionsAdmin:
        return SanctionsAdmin(self.url)


@contextmanager
def sanctions_emulator(log: Path, *, timeout: float = 30.0) -> Iterator[SanctionsEmulator]:
    """Start the emulator (the fixtures' lists), yield it, stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Process(
        [sys.executable, "-m", "prizeflow_sanctions_emulator"],
        {"SANCTIONS_EMULATOR_PORT": str(port)},
        log,
        url + "/_emulator/health",
    )
    proc.start(timeout=timeout)
    try:
        yield SanctionsEmulator(url, proc)
    finally:
        proc.stop(timeout=10)


class SanctionsAdmin:
    """Async client of `/_emulator/lists/...`."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/") + "/_emulator/lists", timeout=timeout)

    async def __aenter__(self) -> SanctionsAdmin:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._http.aclose()

    async def publish(self, source: str, entry: dict[str, Any]) -> dict[str, Any]:
        """A new version of `source` with `entry` (name, aliases, addresses [{currency, address}], birth_date)."""
        answer = await self._http.post(f"/{source}/entries", json=entry)
        assert answer.status_code == 201, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def serve_file(self, source: str, data: bytes) -> dict[str, Any]:
        """`data` served as `source`'s file, byte for byte, until the next published entry."""
        answer = await self._http.put(f"/{source}/file", content=data)
        assert answer.status_code == 201, answer.text
        body: dict[str, Any] = answer.json()
        return body


__all__ = ["SanctionsAdmin", "SanctionsEmulator", "sanctions_emulator"]
