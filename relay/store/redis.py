"""One way to open a Redis client, shared by every process."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from relay.store import keys


def connect(url: str) -> Redis:
    # Timeouts keep a Redis outage a quick error (503, a skipped loop turn)
    # rather than a hang; the pool reconnects by itself when Redis is back.
    client: Redis = Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=5.0,
        socket_connect_timeout=2.0,
        health_check_interval=15,
        retry_on_timeout=False,
    )
    return client


def now_ms() -> int:
    return int(time.time() * 1000)


def to_ms(seconds: float) -> int:
    return round(seconds * 1000)


PREFIX = keys.PREFIX
