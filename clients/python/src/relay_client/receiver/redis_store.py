"""Deduplication shared by every process of a receiver: one Redis key per `webhook-id`,
claimed with `SET NX` and an expiry. Needs the `redis` extra."""

from __future__ import annotations

from redis.asyncio import Redis

from relay_client.receiver.dedup import DEFAULT_TTL


class RedisDeduplicator:
    def __init__(
        self, redis: Redis, *, prefix: str = "relay-webhook:", ttl: float = DEFAULT_TTL
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = max(1, int(ttl * 1000))

    def key(self, webhook_id: str) -> str:
        return self._prefix + webhook_id

    async def claim(self, webhook_id: str) -> bool:
        # One atomic command: two processes receiving the same id at once cannot both win.
        return bool(await self._redis.set(self.key(webhook_id), 1, nx=True, px=self._ttl_ms))

    async def release(self, webhook_id: str) -> None:
        await self._redis.delete(self.key(webhook_id))
