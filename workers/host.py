"""The worker process's host: stop signals, startup and shutdown, periodic jobs.

`serve` installs SIGTERM and SIGINT handlers, runs `startup`, runs each
periodic job at its times until a stop signal arrives, then cancels the jobs
and runs `shutdown` (which bounds its own grace). It is the same on one Redis,
on Sentinel and on a Redis Cluster: the only key it touches itself is a job's
lock, one key set with `SET NX PX`.

A job that raises is logged and runs again at its next time; nothing a job
does ends the process, so a Redis outage costs a few skipped runs at most.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from redis.exceptions import RedisError

from relay.store.redis import Client

logger = logging.getLogger("relay.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HOUR = 3600


class Hosted(Protocol):
    """What the host needs of the context `startup` returns: a Redis for job locks, and a
    name unique to this process, written as the lock's value (who ran the job)."""

    @property
    def redis(self) -> Client: ...

    @property
    def name(self) -> str: ...


Ctx = TypeVar("Ctx", bound=Hosted)


@dataclasses.dataclass(frozen=True)
class Every:
    """Every `seconds`, counted from the end of the previous run."""

    seconds: float

    def after(self, now: float) -> float:
        return now + self.seconds


@dataclasses.dataclass(frozen=True)
class At:
    """At these seconds of these minutes of every hour, as a cron line would say (UTC, so
    that every worker agrees whatever its time zone); every minute when `minutes` is empty."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.seconds or not all(0 <= n < 60 for n in (*self.seconds, *self.minutes)):
            raise ValueError(f"seconds and minutes must be within 0-59: {self}")

    def after(self, now: float) -> float:
        """The first of its times strictly after `now` (Unix seconds)."""
        # Unix time counts no leap seconds, so every UTC hour starts at a multiple of 3600.
        hour = math.floor(now / HOUR) * HOUR
        offsets = sorted(m * 60 + s for m in self.minutes or range(60) for s in self.seconds)
        later = [hour + offset for offset in offsets if hour + offset > now]
        return later[0] if later else hour + HOUR + offsets[0]


@dataclasses.dataclass(frozen=True)
class Lock:
    """One run at a time across every worker process: the first to set `key` runs the job,
    the others skip that time.

    The key is left to expire rather than deleted after the run: a worker whose clock is a
    little behind wakes for the same time a moment later and must still find it held. So
    `hold` (seconds) is longer than any clock skew between workers and any run, and shorter
    than the gap between two of the job's times.
    """

    key: str
    hold: float

    async def take(self, ctx: Hosted) -> bool:
        taken = await ctx.redis.set(self.key, ctx.name, nx=True, px=math.ceil(self.hold * 1000))
        return bool(taken)


@dataclasses.dataclass(frozen=True)
class Job(Generic[Ctx]):
    name: str
    when: Every | At
    run: Callable[[Ctx], Awaitable[None]]
    at_start: bool = False  # also once right after startup
    lock: Lock | None = None


async def run_once(job: Job[Ctx], ctx: Ctx) -> None:
    """Run `job` now (unless another worker holds its lock); whatever it raises is logged."""
    try:
        if job.lock is not None and not await job.lock.take(ctx):
            logger.debug("job %s left to the worker holding %s", job.name, job.lock.key)
            return
        await job.run(ctx)
    except (RedisError, OSError) as exc:
        logger.warning(
            "job %s failed, Redis unavailable (runs again at its next time): %s", job.name, exc
        )
    except Exception:
        logger.exception("job %s failed (runs again at its next time)", job.name)


async def _repeat(job: Job[Ctx], ctx: Ctx) -> None:
    if job.at_start:
        await run_once(job, ctx)
    last = time.time()
    while True:
        # Never before the time just run, even if the clock stepped back or the timer woke
        # a little early: each of the job's times runs once.
        due = job.when.after(max(time.time(), last))
        await asyncio.sleep(max(0.0, due - time.time()))
        last = due
        await run_once(job, ctx)


async def run_until(
    stop: asyncio.Event,
    *,
    startup: Callable[[], Awaitable[Ctx]],
    shutdown: Callable[[Ctx], Awaitable[None]],
    jobs: Sequence[Job[Ctx]],
) -> None:
    """Start, run `jobs` until `stop` is set, then stop them and shut down."""
    ctx = await startup()
    runners = [asyncio.create_task(_repeat(job, ctx), name=f"job:{job.name}") for job in jobs]
    try:
        await stop.wait()
    finally:
        # Jobs are housekeeping that the next time redoes: cut short, they lose nothing.
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
        await shutdown(ctx)


async def serve(
    *,
    startup: Callable[[], Awaitable[Ctx]],
    shutdown: Callable[[Ctx], Awaitable[None]],
    jobs: Sequence[Job[Ctx]],
) -> None:
    """`run_until` a SIGTERM or SIGINT; one arriving during startup stops right after it,
    and more of them during shutdown do not cut it short."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        await run_until(stop, startup=startup, shutdown=shutdown, jobs=jobs)
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
