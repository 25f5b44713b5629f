"""Every upstream fault, survived: counted, retried within bounds, never crashing a worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from relay.devtools.redis_server import RedisServer
from relay.settings import load_settings
from support.payloads import finished, new_id, processing
from support.servers import Canned, Receiver, ScriptedUpstream
from tests.conftest import Api, fast_env, running_worker


@pytest.mark.parametrize("env_overrides", [{"RELAY_UNKNOWN_TASK_LIMIT": "0.3"}])
@pytest.mark.usefixtures("worker")
async def test_a_task_the_upstream_never_knows_fails_after_the_limit(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()  # not scripted: the upstream answers 404
    await api.register(task_id, webhook_url=receiver.url)
    await receiver.wait_for(1)
    event = receiver.events()[0]
    assert event["type"] == "task.failed"
    assert "404" in event["data"]["error"]
    assert event["data"]["polls"] >= 2, "it was retried before being given up"


@pytest.mark.parametrize("env_overrides", [{"RELAY_UNKNOWN_TASK_LIMIT": "5"}])
@pytest.mark.usefixtures("worker")
async def test_a_task_unknown_for_a_while_then_found_succeeds(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, Canned({}, status=404), Canned({}, status=404), finished(task_id))
    await api.register(task_id, webhook_url=receiver.url)
    await receiver.wait_for(1)
    assert receiver.events()[0]["type"] == "task.succeeded"


@pytest.mark.parametrize("env_overrides", [{"RELAY_UPSTREAM_TIMEOUT": "0.3"}])
@pytest.mark.usefixtures("worker")
async def test_a_slow_answer_times_out_and_is_retried(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    slow = Canned(finished(task_id), delay=1.0)
    upstream.script(task_id, slow, finished(task_id))
    await api.register(task_id, webhook_url=receiver.url)
    await receiver.wait_for(1, timeout=10)
    data = receiver.events()[0]["data"]
    assert data["status"] == "succeeded"
    assert data["polls"] == 2, "the timed-out call counts, and one more call finished it"


async def test_refused_connections_are_survived_until_the_upstream_comes_up(
    redis_server: RedisServer, redis: Any, receiver: Receiver
) -> None:
    upstream = ScriptedUpstream()  # its port is chosen but nothing listens yet
    settings = load_settings(fast_env(redis_server.url, upstream.url))
    task_id = new_id()
    upstream.script(task_id, finished(task_id))
    async with Api(settings) as api, running_worker(settings):
        await api.register(task_id, webhook_url=receiver.url)
        await asyncio.sleep(0.6)
        body = (await api.task(task_id)).json()
        assert body["status"] == "queued" and body["polls"] >= 2
        await upstream.start()
        try:
            await receiver.wait_for(1, timeout=10)
        finally:
            await upstream.stop()
    assert receiver.events()[0]["data"]["status"] == "succeeded"


@pytest.mark.parametrize("env_overrides", [{"RELAY_POLL_MAX_INTERVAL": "0.05"}])
@pytest.mark.usefixtures("worker")
async def test_a_429_holds_every_task_for_its_retry_after(
    api: Api, upstream: ScriptedUpstream
) -> None:
    limited, other = new_id(), new_id()
    limit = Canned({}, status=429, headers={"retry-after": "1"})
    upstream.script(limited, limit, processing(limited, "10"))
    upstream.script(other, processing(other, "10"))
    await api.register(other)
    await asyncio.sleep(0.3)
    await api.register(limited)
    for _ in range(100):
        if upstream.calls[limited]:
            break
        await asyncio.sleep(0.01)
    hit = next(t for t, task in upstream.call_times if task == limited)
    await asyncio.sleep(1.5)
    during = [t for t, _ in upstream.call_times if hit + 0.05 < t < hit + 0.95]
    after = [t for t, _ in upstream.call_times if t > hit + 1.0]
    assert during == [], "no worker calls the upstream while a Retry-After holds"
    assert after, "calls resume once it has passed"


def _relay(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "relay"), *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_two_worker_processes_share_one_rate_limit(
    redis_server: RedisServer, redis: Any, upstream: ScriptedUpstream
) -> None:
    rate = 40
    env = fast_env(
        redis_server.url,
        upstream.url,
        RELAY_UPSTREAM_RATE=str(rate),
        RELAY_POLL_MIN_INTERVAL="0.01",
        RELAY_POLL_MAX_INTERVAL="0.01",
    )
    task_ids = [new_id() for _ in range(200)]
    for task_id in task_ids:
        upstream.script(task_id, processing(task_id))
    settings = load_settings(env)
    async with Api(settings) as api:
        await asyncio.gather(*(api.register(t) for t in task_ids))
        workers = [_relay("worker", env=env) for _ in range(2)]
        try:
            await asyncio.sleep(2.0)  # both running, the demand far above the rate
            start = time.monotonic()
            await asyncio.sleep(3.0)
            end = time.monotonic()
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            codes = [worker.wait(30) for worker in workers]
    assert codes == [0, 0]
    window = [t for t, _ in upstream.call_times if start <= t < end]
    burst = rate / 5
    assert len(window) <= rate * (end - start) + burst + 2, "the cap holds across processes"
    assert len(window) >= rate * (end - start) * 0.6, "and the two workers do use it"
    # Spread, not bunched: no quarter-second carries much more than its share.
    for t in window:
        quarter = [u for u in window if t <= u < t + 0.25]
        assert len(quarter) <= rate * 0.25 + burst + 2
