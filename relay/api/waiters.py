"""Long-poll waiters of one API process, woken by one Redis subscription.

`GET /v1/tasks/{id}/wait` must not read Redis over and over while it waits:
each API process subscribes once to `keys.FINALS`, where APPLY publishes the
id of every task that becomes final (and the delete route the id of a task a
tenant stops tracking), and wakes the waiters of that id, which then read the
task again.

A publish made while the subscription is down is lost, so whenever the
subscription is lost or comes back every waiter is woken to read once, and
while it is down each one reads again every `FALLBACK` seconds: nobody waits
past their timeout on a wake-up that cannot come.

On a Redis Cluster the subscription is on one node (any node hears a PUBLISH);
each new attempt after a loss tries another (`relay.store.redis.subscriber`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from redis.exceptions import RedisError

from relay.store import keys
from relay.store.redis import Client, publish, subscriber

logger = logging.getLogger("relay.api")

MAX_WAITS = 1000  # open long-polls per API process; one more answers 429 too_many_waits
FALLBACK = 2.0  # seconds between a waiter's reads while the subscription is down
RETRY = 1.0  # seconds between two attempts to subscribe again
LISTEN_STEP = 1.0  # seconds a read of the subscription blocks at most


class TooManyWaits(Exception):
    """This process holds `cap` open waits already."""


class Waiter:
    """One open long-poll: woken when its task may have changed."""

    def __init__(self, registry: Waiters) -> None:
        self._registry = registry
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def next(self, timeout: float, gone: asyncio.Future[Any]) -> bool:
        """Until a wake-up, `timeout` seconds, or `FALLBACK` while the subscription is
        down; True when `gone` (the client went away) ended the wait instead."""
        step = timeout if self._registry.live else min(timeout, FALLBACK)
        woken: asyncio.Future[Any] = asyncio.ensure_future(self._woken.wait())
        try:
            await asyncio.wait({woken, gone}, timeout=step, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        # Cleared before the caller reads: a wake-up during that read is not lost.
        self._woken.clear()
        return gone.done()


class Waiters:
    """Task id -> its open waiters, and the subscription that wakes them."""

    def __init__(self, redis: Client, *, cap: int = MAX_WAITS) -> None:
        self.redis = redis
        self.cap = cap
        self._by_task: dict[str, set[Waiter]] = {}
        self._open = 0
        self._live = False
        self._attempts = 0  # to subscribe: on a cluster, each on another node

    @property
    def live(self) -> bool:
        """Whether the subscription is in place: a final task's publish reaches us."""
        return self._live

    @property
    def open(self) -> int:
        return self._open

    @contextlib.contextmanager
    def waiting(self, task_id: str) -> Iterator[Waiter]:
        """A waiter for the task while the block runs; TooManyWaits beyond `cap`."""
        if self._open >= self.cap:
            raise TooManyWaits
        waiter = Waiter(self)
        self._by_task.setdefault(task_id, set()).add(waiter)
        self._open += 1
        try:
            yield waiter
        finally:
            self._open -= 1
            others = self._by_task[task_id]
            others.discard(waiter)
            if not others:
                del self._by_task[task_id]

    async def announce(self, task_id: str) -> None:
        """Wake the task's waiters in every API process (this one included)."""
        await publish(self.redis, keys.FINALS, keys.compact_id(task_id))  # as APPLY does

    def wake(self, task_id: str) -> None:
        for waiter in self._by_task.get(task_id, ()):
            waiter.wake()

    def _wake_compact(self, compact: str) -> None:
        try:
            task_id = keys.full_id(compact)
        except ValueError:
            return  # not a task id: nobody of ours published it
        self.wake(task_id)

    def _wake_all(self) -> None:
        for waiters in self._by_task.values():
            for waiter in waiters:
                waiter.wake()

    async def run(self) -> None:
        """Keep the subscription, forever (cancel the task to stop)."""
        quiet = False  # one line per outage, not one per attempt
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                if self._live or not quiet:
                    logger.warning(
                        "long-poll subscription down, waiters read every %g s: %s", FALLBACK, exc
                    )
                quiet = True
            if self._live:
                self._live = False
                self._wake_all()
            await asyncio.sleep(RETRY)

    async def _listen(self) -> None:
        self._attempts += 1
        async with subscriber(self.redis, self._attempts) as redis:
            pubsub = redis.pubsub()
            try:
                await pubsub.subscribe(keys.FINALS)
                while True:
                    message = await pubsub.get_message(timeout=LISTEN_STEP)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        if not self._live:
                            logger.info("long-poll subscription to %s in place", keys.FINALS)
                        self._live = True
                        # Whatever was published before this moment may never have reached us.
                        self._wake_all()
                    elif message["type"] == "message":
                        self._wake_compact(str(message["data"]))
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
