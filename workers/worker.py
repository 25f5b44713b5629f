"""The worker's whole life, top to bottom.

`relay worker` builds an arq `Worker` from the settings. arq hosts the
process (signals, its Redis pool, cron); on startup the worker opens one
pooled HTTP client per purpose and starts two long-running loops:

- the poller claims due tasks from the `due` sorted set in batches under a
  lease (and within the shared rate limit), fetches them from the upstream,
  and writes the outcomes back with the events they make (one Lua script
  call per batch);
- the deliverer claims due webhook attempts the same way, sends them
  signed, and records each attempt; the poller wakes it when it has just
  made events.

Both are a `ClaimLoop` (workers/claim_loop.py).

Neither is an arq job: a job per poll caps out near 2,000/s and cannot
reuse its own id while it runs, and leases on sorted sets give back a
killed worker's claims within seconds. On SIGTERM arq cancels its own jobs
and calls `shutdown`, which stops claiming, lets in-flight calls finish
(bounded by their timeouts) and writes their outcomes; anything it could
not finish comes back to another worker when its lease ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker
from redis.asyncio import Redis
from redis.exceptions import RedisError

from relay.delivery import WebhookSender
from relay.metrics import Recorder
from relay.outbound import AddressGuard, AiohttpTransport, Transport
from relay.settings import Settings
from relay.store import DeliveryQueue, PollQueue, connect, maintenance
from relay.store.redis import parse_sentinel
from relay.upstream import UpstreamClient
from workers.deliverer import Deliverer
from workers.poller import Poller

logger = logging.getLogger("relay.worker")

ARQ_QUEUE = "relay:arq"
SHUTDOWN_GRACE = 20.0  # seconds to finish in-flight work; Kubernetes allows 30 by default


@dataclasses.dataclass
class WorkerContext:
    """What the worker runs, kept in arq's context under `relay` (arq hands its jobs a
    plain dict; everything the relay puts there is this one typed object)."""

    settings: Settings
    redis: Redis
    transports: tuple[Transport, ...]  # closed at shutdown
    poller: Poller
    deliverer: Deliverer
    recorder: Recorder
    stopping: asyncio.Event
    loops: list[asyncio.Task[None]]
    metrics_loop: asyncio.Task[None]


def relay_context(ctx: dict[str, Any]) -> WorkerContext:
    found: WorkerContext = ctx["relay"]
    return found


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    redis = connect(settings.redis_url)
    upstream_transport = AiohttpTransport(max_connections=settings.poll_concurrency)
    webhook_transport = AiohttpTransport(
        max_connections=settings.delivery_concurrency,
        guard=AddressGuard(settings.allow_private_webhooks),
        read_limit=64 * 1024,
    )
    assert settings.upstream_api_key is not None
    recorder = Recorder()
    poller = Poller(
        PollQueue(redis, rate=settings.upstream_rate, retention=settings.retention),
        UpstreamClient(
            upstream_transport,
            base_url=settings.upstream_url,
            api_key=settings.upstream_api_key,
            timeout=settings.upstream_timeout,
        ),
        policy=settings.poll_policy(),
        task_deadline=settings.task_deadline,
        lease=settings.poll_lease,
        concurrency=settings.poll_concurrency,
        recorder=recorder,
    )
    deliverer = Deliverer(
        DeliveryQueue(redis, retention=settings.retention),
        WebhookSender(
            webhook_transport,
            secrets=settings.webhook_secrets,
            timeout=settings.delivery_timeout,
        ),
        schedule=settings.delivery_retry_schedule,
        lease=settings.delivery_lease,
        concurrency=settings.delivery_concurrency,
        recorder=recorder,
        hold_after=settings.receiver_hold_after,
    )
    poller.on_events = deliverer.wake.set
    stopping = asyncio.Event()
    ctx["relay"] = WorkerContext(
        settings=settings,
        redis=redis,
        transports=(upstream_transport, webhook_transport),
        poller=poller,
        deliverer=deliverer,
        recorder=recorder,
        stopping=stopping,
        loops=[
            asyncio.create_task(poller.run(stopping), name="poller"),
            asyncio.create_task(deliverer.run(stopping), name="deliverer"),
        ],
        metrics_loop=asyncio.create_task(recorder.run(redis, stopping), name="metrics"),
    )
    logger.info("worker started: polling %s", settings.upstream_url)


async def shutdown(ctx: dict[str, Any]) -> None:
    if "relay" not in ctx:
        return
    worker = relay_context(ctx)
    worker.stopping.set()
    _done, pending = await asyncio.wait(worker.loops, timeout=SHUTDOWN_GRACE)
    for task in pending:
        task.cancel()
    await worker.metrics_loop
    for transport in worker.transports:
        await transport.close()
    await worker.redis.aclose()
    logger.info("worker stopped")


async def report(ctx: dict[str, Any]) -> None:
    """A periodic line on what the loops hold, for operators reading logs."""
    worker = relay_context(ctx)
    logger.info(
        "worker alive",
        extra={
            "polls_in_flight": worker.poller.in_flight,
            "deliveries_in_flight": worker.deliverer.in_flight,
        },
    )


async def sweep(ctx: dict[str, Any]) -> None:
    """Trim listings of expired tasks (arq runs each cron tick on one worker only)."""
    worker = relay_context(ctx)
    settings = worker.settings
    trimmed = await maintenance.sweep(
        worker.redis,
        now=time.time(),
        task_deadline=settings.task_deadline,
        retention=settings.retention,
    )
    if trimmed:
        logger.info("swept expired listing entries", extra={"trimmed": trimmed})


def arq_settings(url: str) -> RedisSettings:
    """arq's connection settings for the same Redis."""
    target = parse_sentinel(url)
    if target is None:
        return RedisSettings.from_dsn(url)
    return RedisSettings(
        host=list(target.sentinels),
        sentinel=True,
        sentinel_master=target.master,
        database=target.db,
        username=target.username,
        password=target.password,
    )


class RelayWorker(Worker):
    """arq's worker, made to ride out a Redis outage.

    arq's own loop lets a Redis error escape and end the process; the relay's
    loops already wait for Redis to come back, so arq's turn is skipped
    instead, and shutdown always reaches `on_shutdown`.
    """

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            logger.warning("arq poll skipped, Redis unavailable: %s", exc)
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        try:
            await super().close()
        except (RedisError, OSError) as exc:
            logger.warning("arq close without Redis: %s", exc)
            if self.on_shutdown:
                await self.on_shutdown(self.ctx)


def build_worker(settings: Settings) -> Worker:
    return RelayWorker(
        functions=[],
        cron_jobs=[
            cron(report, second={0}, run_at_startup=False),
            cron(sweep, minute={7, 37}, second={30}, run_at_startup=False),
        ],
        redis_settings=arq_settings(settings.redis_url),
        queue_name=ARQ_QUEUE,
        on_startup=startup,
        on_shutdown=shutdown,
        ctx={"settings": settings},
        handle_signals=True,
        health_check_key=f"{ARQ_QUEUE}:health-check",
        poll_delay=1.0,
    )
