"""The upstream's own webhooks: one POST of the final answer, echoing the secret, a few retries."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Final

import aiohttp

log = logging.getLogger("relay.simulator")

# The upstream retries three times, about 10 s, 30 s and 90 s apart, then gives up.
RETRY_DELAYS: Final = (10.0, 30.0, 90.0)
ATTEMPT_TIMEOUT: Final = 10.0


class WebhookSender:
    """Sends each webhook in a task of its own, so a slow receiver delays nothing else."""

    def __init__(self, speed: float) -> None:
        self._speed = speed
        self._session: aiohttp.ClientSession | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self.attempts = 0

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ATTEMPT_TIMEOUT))

    async def close(self) -> None:
        await self.cancel_all()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def cancel_all(self) -> None:
        deliveries = list(self._deliveries)
        for delivery in deliveries:
            delivery.cancel()
        await asyncio.gather(*deliveries, return_exceptions=True)

    def send(self, url: str, secret: str | None, payload: dict[str, Any]) -> None:
        delivery = asyncio.create_task(self._deliver(url, secret, payload))
        self._deliveries.add(delivery)
        delivery.add_done_callback(self._deliveries.discard)

    async def _deliver(self, url: str, secret: str | None, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        headers = {"content-type": "application/json", "user-agent": "journey-simulator"}
        if secret is not None:
            headers["x-webhook-secret"] = secret
        for delay in (0.0, *RETRY_DELAYS):
            if delay:
                await asyncio.sleep(delay / self._speed)
            if await self._attempt(url, body, headers):
                return
        log.warning("upstream webhook to %s given up after %d attempts", url, len(RETRY_DELAYS) + 1)

    async def _attempt(self, url: str, body: bytes, headers: dict[str, str]) -> bool:
        if self._session is None:
            return False
        self.attempts += 1
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                if 200 <= response.status < 300:
                    return True
                log.warning("upstream webhook to %s answered %d", url, response.status)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # A receiver that is down or a URL that is nonsense is the receiver's problem.
            log.warning("upstream webhook to %s failed: %s: %s", url, type(exc).__name__, exc)
        return False
