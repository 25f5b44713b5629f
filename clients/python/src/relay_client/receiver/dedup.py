"""Deduplication on `webhook-id`: the relay delivers at least once, and a redelivery keeps
the event's id, so a receiver acts on an id once. In memory here; Redis in `redis_store`."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Protocol

# Longer than the relay's default retry schedule (about 28 hours): a retry arriving
# after its id was forgotten would be handed on twice.
DEFAULT_TTL = 7 * 24 * 3600.0


class Deduplicator(Protocol):
    async def claim(self, webhook_id: str) -> bool:
        """True the first time an id is claimed (until it expires or is released)."""
        ...

    async def release(self, webhook_id: str) -> None:
        """Forget a claim whose handling failed, so that a retry is handed on again."""
        ...


class MemoryDeduplicator:
    """Ids of one process, each for `ttl` seconds, the `max_entries` newest at most."""

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        # id -> expiry; one ttl for all, so insertion order is expiry order
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()

    def __len__(self) -> int:
        self._expire(self._clock())
        return len(self._seen)

    def _expire(self, now: float) -> None:
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)

    def claim_now(self, webhook_id: str) -> bool:
        now = self._clock()
        self._expire(now)
        if webhook_id in self._seen:
            return False
        self._seen[webhook_id] = now + self._ttl
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return True

    async def claim(self, webhook_id: str) -> bool:
        return self.claim_now(webhook_id)

    async def release(self, webhook_id: str) -> None:
        self._seen.pop(webhook_id, None)
