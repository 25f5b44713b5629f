"""The `Transport` interface over an httpx client: the benchmarks' comparison, not shipped.

httpx measured several times slower than aiohttp at the worker's
concurrency (its pool rescans every connection per request), so the relay
runs on `AiohttpTransport`; this one lets the benchmarks show the figures,
for httpx alone and for httpx over aiohttp's transport (`httpx-aiohttp`).
No SSRF guard here: it is not used for webhooks.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from relay.outbound.transport import Reply, TransportError


class HttpxTransport:
    def __init__(self, client: httpx.AsyncClient, *, read_limit: int = 1 << 20) -> None:
        self._client = client
        self._read_limit = read_limit

    @classmethod
    def plain(cls, max_connections: int = 200) -> HttpxTransport:
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        return cls(httpx.AsyncClient(limits=limits, follow_redirects=False))

    @classmethod
    def over_aiohttp(cls) -> HttpxTransport:
        from httpx_aiohttp import HttpxAiohttpClient

        return cls(HttpxAiohttpClient(follow_redirects=False))

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Reply:
        try:
            response = await self._client.post(
                url, content=body, headers=dict(headers), timeout=timeout
            )
        except httpx.TimeoutException:
            raise TransportError("timeout", f"no answer within {timeout:g} s") from None
        except httpx.ConnectError as exc:
            raise TransportError("connect", f"cannot connect: {exc}") from None
        except httpx.HTTPError as exc:
            raise TransportError("protocol", f"{type(exc).__name__}: {exc}") from None
        return Reply(
            response.status_code, dict(response.headers), response.content[: self._read_limit]
        )

    async def close(self) -> None:
        await self._client.aclose()
