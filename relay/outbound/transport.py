"""The `Transport` interface and its aiohttp implementation."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from relay.outbound.guard import AddressGuard, Blocked, literal_address


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes  # at most the transport's read limit


class TransportError(Exception):
    """No HTTP answer: `kind` is timeout, connect, blocked or protocol."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Transport(Protocol):
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Reply: ...

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


class AiohttpTransport:
    """One pooled aiohttp session per process, keep-alive, bounded connections.

    With a guard, every new connection's address is checked (IP literals
    here, names in the resolver); redirects are never followed; bodies are
    read up to `read_limit` bytes.
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

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver = _GuardedResolver(self._guard) if self._guard else None
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                resolver=resolver,
                ttl_dns_cache=10,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                headers={"user-agent": "journey-relay"},
            )
        return self._session

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
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
        try:
            async with session.post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout(timeout),
            ) as response:
                data = await response.content.read(self._read_limit)
                # aiohttp's headers are case-insensitive, as `Reply.headers` promises.
                return Reply(response.status, response.headers, data)
        except TimeoutError:
            raise TransportError("timeout", f"no answer within {timeout:g} s") from None
        except Blocked as exc:
            raise TransportError("blocked", str(exc)) from None
        except aiohttp.ClientConnectorError as exc:
            cause: Any = exc.os_error
            if isinstance(cause, Blocked):
                raise TransportError("blocked", str(cause)) from None
            raise TransportError("connect", f"cannot connect: {exc.os_error}") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise TransportError("protocol", f"{type(exc).__name__}: {exc}") from None

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return timeout

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
