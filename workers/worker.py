"""The worker's whole life, top to bottom.

`relay worker` runs `run`: workers.host hosts the process (stop signals,
periodic jobs) around `startup` and `shutdown`. On startup the worker opens
one pooled HTTP client per purpose and starts two long-running loops:

- the poller claims due tasks from the `due` sorted set in batches under a
  lease (and within the shared rate limit), fetches them from the upstream,
  and writes the outcomes back with the events they make (one Lua script
  call per batch);
- the deliverer claims due webhook attempts the same way, sends them
  signed, and records each attempt; the poller wakes it when it has just
  made events.

Both are a `ClaimLoop` (workers/claim_loop.py). Besides them, two periodic
jobs: `report` (every minute: a log line and this worker's heartbeat key)
and `sweep` (twice an hour, on one worker at a time: trims listings).

Leases on sorted sets give back a killed worker's claims within seconds. On
SIGTERM `shutdown` stops claiming, lets in-flight calls finish (bounded by
their timeouts and `SHUTDOWN_GRACE`) and writes their outcomes; anything it
could not finish comes back to another worker when its lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import socket
import time

from redis.exceptions import RedisError

from relay import gc_tuning
from relay.delivery import WebhookSender
from relay.metrics import Recorder
from relay.outbound import AddressGuard, AiohttpTransport, Transport
from relay.settings import Settings
from relay.store import DeliveryQueue, PollQueue, connect, keys, maintenance
from relay.store.redis import Client
from relay.upstream import UpstreamClient
from workers import host
from workers.deliverer import Deliverer
from workers.host import At, Job, Lock
from workers.poller import Poller

logger = logging.getLogger("relay.worker")

SHUTDOWN_GRACE = 20.0  # seconds to finish in-flight work; Kubernetes allows 30 by default
# A heartbeat outlives its report by one missed minute, so a live worker's key never lapses.
HEARTBEAT_TTL = 150.0


@dataclasses.dataclass
class WorkerContext:
    """What the worker runs; its jobs and `shutdown` take it."""

    settings: Settings
    name: str  # this process's, unique among the workers: its heartbeat key, its job locks
    redis: Client
    transports: tuple[Transport, ...]  # closed at shutdown
    poller: Poller
    deliverer: Deliverer
    recorder: Recorder
    stopping: asyncio.Event
    loops: list[asyncio.Task[None]]
    metrics_loop: asyncio.Task[None]


def worker_name() -> str:
    """The host name (a pod's name on Kubernetes) and the process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def startup(settings: Settings) -> WorkerContext:
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
    worker = WorkerContext(
        settings=settings,
        name=worker_name(),
        redis=redis,
        transports=(upstream_transport, webhook_transport),
        poller=poller,
        deliverer=deliverer,
        recorder=recorder,
        stopping=stopping,
        loops=[
            asyncio.create_task(poller.keep_running(stopping), name="poller"),
            asyncio.create_task(deliverer.keep_running(stopping), name="deliverer"),
        ],
        metrics_loop=asyncio.create_task(recorder.run(redis, stopping), name="metrics"),
    )
    logger.info("worker started: polling %s", settings.upstream_url, extra={"worker": worker.name})
    return worker


async def shutdown(worker: WorkerContext) -> None:
    worker.stopping.set()
    _done, pending = await asyncio.wait(worker.loops, timeout=SHUTDOWN_GRACE)
    for task in pending:
        task.cancel()
    await worker.metrics_loop
    # Gone at once rather than at its TTL: a stopped worker is not mistaken for a live one.
    with contextlib.suppress(RedisError, OSError):
        await worker.redis.delete(keys.worker_health(worker.name))
    for transport in worker.transports:
        await transport.close()
    await worker.redis.aclose()
    logger.info("worker stopped")


async def report(worker: WorkerContext) -> None:
    """A periodic line on what the loops hold, for operators reading logs, and the
    heartbeat: `relay:worker:<name>` lives while this worker does."""
    logger.info(
        "worker alive",
        extra={
            "worker": worker.name,
            "polls_in_flight": worker.poller.in_flight,
            "deliveries_in_flight": worker.deliverer.in_flight,
        },
    )
    await worker.redis.set(
        keys.worker_health(worker.name), str(time.time()), px=round(HEARTBEAT_TTL * 1000)
    )


async def sweep(worker: WorkerContext) -> None:
    """Trim listings of expired tasks (on one worker at a time: see JOBS)."""
    settings = worker.settings
    trimmed = await maintenance.sweep(
        worker.redis,
        now=time.time(),
        task_deadline=settings.task_deadline,
        retention=settings.retention,
    )
    if trimmed:
        logger.info("swept expired listing entries", extra={"trimmed": trimmed})


JOBS: tuple[Job[WorkerContext], ...] = (
    Job("report", At(seconds=(0,)), report, at_start=True),
    # Ten minutes held: far more than clock skew or a sweep, far less than the 30 between.
    Job("sweep", At(seconds=(30,), minutes=(7, 37)), sweep, lock=Lock(keys.SWEEP_LOCK, 600.0)),
)


def run(settings: Settings) -> None:
    """The `relay worker` process, until SIGTERM or SIGINT."""
    gc_tuning.tune_for_throughput()
    asyncio.run(
        host.serve(startup=functools.partial(startup, settings), shutdown=shutdown, jobs=JOBS)
    )
