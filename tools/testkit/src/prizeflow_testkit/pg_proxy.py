"""A TCP proxy in front of PostgreSQL that loses one connection around its COMMIT, on demand (tests only).

A service pointed at the proxy (`url`) talks to the real server through it. `drop_commit(marker, after=...)` arms
it once: the next transaction whose statements include `marker` (e.g. `INSERT INTO claims`) loses its connection
at COMMIT, either after the server answered it (`after=True`: committed, but the client never hears so: an
ambiguous commit) or before the COMMIT reaches the server (`after=False`: the transaction is rolled back). The
client sees a connection reset either way, as it would when a network path or a load balancer drops it.

It reads the frontend protocol just enough for that: the untyped start-up messages, then typed messages, the
statement text of `Parse` (named prepared statements are remembered per connection, so a `Bind` of one prepared
earlier counts), of `Query`, and `COMMIT` sent as a simple query (asyncpg's, hence SQLAlchemy's). Everything is
forwarded byte for byte otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

_SSL_REQUEST = 80877103
_GSS_REQUEST = 80877104
_CANCEL_REQUEST = 80877102


@dataclass
class _Armed:
    marker: bytes
    after: bool


@dataclass
class _Connection:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    statements: dict[bytes, bytes] = field(default_factory=dict)
    marked: bool = False
    drop_on_reply: bool = False

    def abort(self) -> None:
        for writer in (self.client, self.server):
            writer.transport.abort()


class PgProxy:
    """Listens on 127.0.0.1 (`port` once started) and forwards to `upstream` (host, port)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self.dropped = asyncio.Event()  # set each time an armed drop happened
        self._armed: _Armed | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def url(self, database_url: str) -> str:
        """`database_url` with the proxy's address instead of the server's."""
        parts = urlsplit(database_url)
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{self.port}"))

    def drop_commit(self, marker: str, *, after: bool) -> None:
        """Arm once: the next transaction that runs a statement containing `marker` loses its connection at COMMIT
        (`after`: once the server has committed it; else before the COMMIT reaches the server)."""
        self.dropped.clear()
        self._armed = _Armed(marker.encode(), after)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            self._tasks.discard(task)
            return
        conn = _Connection(writer, up_writer)
        pumps = [
            asyncio.create_task(self._frontend(reader, conn)),
            asyncio.create_task(self._backend(up_reader, conn)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:  # one side ended (or was dropped): so does the other
            conn.abort()
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.discard(task)

    async def _frontend(self, reader: asyncio.StreamReader, conn: _Connection) -> None:
        """Client → server: the start-up messages as they are, then typed messages, watched for the armed COMMIT."""
        while True:  # untyped: SSL/GSS requests (answered by one byte, then start-up again), then the start-up
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            body = await reader.readexactly(length - 8)
            conn.server.write(head + body)
            await conn.server.drain()
            if code == _CANCEL_REQUEST:
                return
            if code not in (_SSL_REQUEST, _GSS_REQUEST):
                break
        while True:
            kind = await reader.readexactly(1)
            (length,) = struct.unpack("!i", await reader.readexactly(4))
            body = await reader.readexactly(length - 4)
            if self._watch(conn, kind, body):
                return
            conn.server.write(kind + struct.pack("!i", length) + body)
            await conn.server.drain()

    def _watch(self, conn: _Connection, kind: bytes, body: bytes) -> bool:
        """Follow the statements; True when the connection is to be lost now (before forwarding `body`)."""
        armed = self._armed
        if kind == b"P":  # Parse: statement name, query text
            name, rest = body.split(b"\0", 1)
            query = rest.split(b"\0", 1)[0]
            conn.statements[name] = query
            conn.marked |= armed is not None and armed.marker in query
        elif kind == b"B":  # Bind: portal name, statement name
            name = body.split(b"\0", 2)[1]
            conn.marked |= armed is not None and armed.marker in conn.statements.get(name, b"")
        elif kind == b"Q":
            query = body.rstrip(b"\0").strip()
            verb = query[:8].upper()
            if verb.startswith(b"COMMIT") and conn.marked and armed is not None:
                self._armed = None
                conn.marked = False
                if not armed.after:
                    self.dropped.set()
                    conn.abort()
                    return True
                conn.drop_on_reply = True
            elif verb.startswith((b"BEGIN", b"ROLLBACK", b"COMMIT")):
                conn.marked = False
            else:
                conn.marked |= armed is not None and armed.marker in query
        return False

    async def _backend(self, reader: asyncio.StreamReader, conn: _Connection) -> None:
        """Server → client, as is; the first reply to an armed COMMIT (sent once it committed) is never delivered."""
        while chunk := await reader.read(65536):
            if conn.drop_on_reply:
                self.dropped.set()
                conn.abort()
                return
            conn.client.write(chunk)
            await conn.client.drain()


@asynccontextmanager
async def pg_proxy(database_url: str) -> AsyncIterator[PgProxy]:
    """A started proxy to the server of `database_url` (its `url(database_url)` goes through it)."""
    parts = urlsplit(database_url)
    proxy = PgProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    await proxy.start()
    try:
        yield proxy
    finally:
        with contextlib.suppress(Exception):
            await proxy.stop()


__all__ = ["PgProxy", "pg_proxy"]
