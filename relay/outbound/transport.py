"""The `Transport` interface and its aiohttp implementation."""

from __future__ import annotations

import asyncio
import socket
import ssl
import weakref
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from relay.outbound.guard import AddressGuard, Blocked, literal_address

if TYPE_CHECKING:
    from aiohttp.connector import Connection
    from aiohttp.tracing import Trace


class Reply(msgspec.Struct, frozen=True):
    """An HTTP answer. A Struct: one is built per call."""

    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes  # the whole body (decoded), or its first `excerpt` bytes when asked for


class TransportError(Exception):
    """No usable HTTP answer.

    `kind`: timeout, connect, tls (the certificate or the handshake failed), blocked,
    protocol, or too_large (an answer over the transport's read limit).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Transport(Protocol):
    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float,
        *,
        excerpt: int | None = None,
    ) -> Reply:
        """POST and read the answer whole, within `timeout` seconds in all.

        With `excerpt`, only the answer's first `excerpt` bytes are read and the
        rest is left unread: for answers that are only shown, never parsed.
        """
        ...

    async def close(self) -> None: ...


class _GuardedResolver(AbstractResolver):
    """Resolves as usual, then refuses a name that leads to a non-public address."""

    def __init__(self, guard: AddressGuard) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        self._guard.check_addresses(host, [r["host"] for r in results])
        return results

    async def close(self) -> None:
        await self._inner.close()


class _Attempt:
    """One request's note, written by the connector: did it go out on a kept-alive connection?"""

    __slots__ = ("reused",)

    def __init__(self) -> None:
        self.reused = False


_attempt: ContextVar[_Attempt | None] = ContextVar("relay_outbound_attempt", default=None)


class _Stale(Exception):
    """A reused connection closed before any answer came: the server had let it go."""


class _NotingConnector(aiohttp.TCPConnector):
    """A TCPConnector that tells the request in flight whether its connection served before.

    aiohttp retries a stale connection only for idempotent methods and never a POST;
    its tracing could tell reuse too, but costs every call a dozen signal sends.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._served: weakref.WeakSet[Any] = weakref.WeakSet()

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        connection = await super().connect(req, traces, timeout)
        protocol = connection.protocol
        if protocol is not None:
            if protocol in self._served:
                attempt = _attempt.get()
                if attempt is not None:
                    attempt.reused = True
            else:
                self._served.add(protocol)
        return connection


async def read_capped(content: aiohttp.StreamReader, cap: int) -> tuple[bytes, bool]:
    """Up to `cap` bytes of a body, and whether more followed them.

    `read(n)` answers with what has arrived so far, so it is called until the end
    of the body: one call is not an answer read whole.
    """
    data = bytearray()
    while len(data) <= cap:
        chunk = await content.read(cap + 1 - len(data))
        if not chunk:
            return bytes(data), False
        data += chunk
    return bytes(data[:cap]), True


class AiohttpTransport:
    """One pooled aiohttp session per process, keep-alive, bounded connections.

    With a guard, every new connection's address is checked (IP literals
    here, names in the resolver); redirects are never followed. Answers are
    read whole, however framed or encoded, up to `read_limit` bytes once
    decoded: a longer one is the `too_large` fault, never a truncated body.
    aiohttp (3.14) decodes gzip, deflate and br in bounded steps as the body
    is read, so stopping at the limit also bounds what a compressed bomb costs.

    `https` is verified against the trust store OpenSSL finds when the transport
    is made: the system's, or the bundle `SSL_CERT_FILE` names.
    """

    def __init__(
        self,
        *,
        max_connections: int = 200,
        guard: AddressGuard | None = None,
        read_limit: int = 1 << 20,
    ) -> None:
        self._guard = guard
        self._read_limit = read_limit
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        # Made here, not at aiohttp's import, so SSL_CERT_FILE is read when the relay
        # builds its transports; and not at the first call, which would wait the tens
        # of milliseconds loading a trust store takes.
        self._ssl = ssl.create_default_context()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver = _GuardedResolver(self._guard) if self._guard else None
            connector = _NotingConnector(
                limit=self._max_connections,
                limit_per_host=0,
                resolver=resolver,
                ttl_dns_cache=10,
                enable_cleanup_closed=True,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                headers={"user-agent": "journey-relay"},
            )
        return self._session

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float,
        *,
        excerpt: int | None = None,
    ) -> Reply:
        session = self._open()
        if self._guard is not None and not self._guard.allow_private:
            host = URL(url).host or ""
            literal = literal_address(host)
            if literal is not None:
                try:
                    self._guard.check_addresses(host, [literal])
                except Blocked as exc:
                    raise TransportError("blocked", str(exc)) from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            try:
                return await self._attempt(
                    session, url, body, headers, self._timeout(timeout), excerpt
                )
            except _Stale:
                # Once: a second stale connection in a row is no race but a fault.
                left = aiohttp.ClientTimeout(total=max(deadline - loop.time(), 0.001))
                return await self._attempt(session, url, body, headers, left, excerpt, retry=False)
        except TimeoutError:
            raise TransportError("timeout", f"no answer within {timeout:g} s") from None
        except Blocked as exc:
            raise TransportError("blocked", str(exc)) from None
        except aiohttp.ClientSSLError as exc:
            raise TransportError("tls", f"TLS: {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            cause: Any = exc.os_error
            if isinstance(cause, Blocked):
                raise TransportError("blocked", str(cause)) from None
            raise TransportError("connect", f"cannot connect: {exc.os_error}") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise TransportError("protocol", f"{type(exc).__name__}: {exc}") from None

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
        excerpt: int | None,
        *,
        retry: bool = True,
    ) -> Reply:
        attempt = _Attempt()
        token = _attempt.set(attempt)
        try:
            response = await session.post(
                url, data=body, headers=headers, allow_redirects=False, timeout=timeout
            )
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            if retry and attempt.reused and not isinstance(exc, aiohttp.ClientConnectorError):
                raise _Stale from None
            raise
        finally:
            _attempt.reset(token)
        async with response:
            return await self._read(response, excerpt)

    async def _read(self, response: aiohttp.ClientResponse, excerpt: int | None) -> Reply:
        if excerpt is not None:
            data, _ = await read_capped(response.content, excerpt)
            return Reply(response.status, response.headers, data)
        length = response.content_length
        if length is not None and not response.headers.get("content-encoding"):
            if length > self._read_limit:
                raise TransportError(
                    "too_large", f"a {length}-byte answer, over {self._read_limit}"
                )
            # Its length is known and within the limit: read whole at once (aiohttp
            # reads no further than Content-Length), as most answers are.
            return Reply(response.status, response.headers, await response.read())
        data, more = await read_capped(response.content, self._read_limit)
        if more:
            raise TransportError("too_large", f"an answer over {self._read_limit} bytes")
        # aiohttp's headers are case-insensitive, as `Reply.headers` promises.
        return Reply(response.status, response.headers, data)

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return timeout

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
