"""The test session's real servers: its own redis-server, the API, a worker, loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis

from relay.api import create_app
from relay.devtools.redis_server import RedisServer, free_port
from relay.settings import Settings, load_settings
from support.servers import Receiver, ScriptedUpstream
from workers.worker import WorkerContext, shutdown, startup

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"test-secret-0123456789abcdef").decode()
API_KEYS = "alpha=key-alpha-0123456789,alpha=key-alpha-0123456789-2,beta=key-beta-0123456789"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    server = ScriptedUpstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


def fast_env(redis_url: str, upstream_url: str, **overrides: str) -> dict[str, str]:
    """Settings with every duration shrunk so a whole lifecycle takes well under a second."""
    env = {
        "RELAY_REDIS_URL": redis_url,
        "RELAY_UPSTREAM_URL": upstream_url,
        "RELAY_UPSTREAM_API_KEY": "upstream-key",
        "RELAY_UPSTREAM_RATE": "1000",
        "RELAY_UPSTREAM_TIMEOUT": "1",
        "RELAY_API_KEYS": API_KEYS,
        "RELAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "RELAY_POLL_MIN_INTERVAL": "0.05",
        "RELAY_POLL_MAX_INTERVAL": "0.2",
        "RELAY_TASK_DEADLINE": "30",
        "RELAY_FAILED_GRACE": "0.2",
        "RELAY_DELIVERY_TIMEOUT": "1",
        "RELAY_DELIVERY_RETRY_SCHEDULE": "0.05,0.05,0.05",
        "RELAY_ALLOW_PRIVATE_WEBHOOKS": "1",
        "RELAY_UPSTREAM_WEBHOOK_SECRET": "upstream-hook-secret",
    }
    env.update(overrides)
    return env


@pytest.fixture
def env_overrides() -> dict[str, str]:
    """Override in a test module (or with @pytest.mark.parametrize) to change settings."""
    return {}


@pytest.fixture
def settings(
    redis_server: RedisServer, upstream: ScriptedUpstream, env_overrides: dict[str, str]
) -> Settings:
    return load_settings(fast_env(redis_server.url, upstream.url, **env_overrides))


class Api:
    """The API served by a real uvicorn on a free loopback port, and a client for it."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
            )
        )
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"authorization": "Bearer key-alpha-0123456789"},
            timeout=10,
        )

    async def __aenter__(self) -> Api:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        self.server.should_exit = True
        await self._task

    async def register(
        self, task_id: str, key: str = "key-alpha-0123456789", **fields: Any
    ) -> httpx.Response:
        return await self.client.post(
            "/v1/tasks",
            json={"task_id": task_id, **fields},
            headers={"authorization": f"Bearer {key}"},
        )

    async def task(self, task_id: str, key: str = "key-alpha-0123456789") -> httpx.Response:
        return await self.client.get(
            f"/v1/tasks/{task_id}", headers={"authorization": f"Bearer {key}"}
        )

    async def wait_status(
        self, task_id: str, *statuses: str, timeout: float = 10.0
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            body: dict[str, Any] = (await self.task(task_id)).json()
            if body.get("status") in statuses:
                return body
            if loop.time() > deadline:
                raise AssertionError(f"task {task_id} stayed {body.get('status')}: {body}")
            await asyncio.sleep(0.02)


@pytest.fixture
async def api(settings: Settings, redis: Redis) -> AsyncIterator[Api]:
    async with Api(settings) as served:
        yield served


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[WorkerContext]:
    """The worker's loops in this process, started and stopped by the worker's own
    startup/shutdown as `relay worker` runs them (its periodic jobs are left out: tests
    call them when they need them)."""
    worker = await startup(settings)
    try:
        yield worker
    finally:
        await shutdown(worker)


@pytest.fixture
async def worker(settings: Settings, redis: Redis) -> AsyncIterator[WorkerContext]:
    async with running_worker(settings) as running:
        yield running


def pytest_configure(config: pytest.Config) -> None:
    # Nothing in the suite may reach the machine's own Redis on 6379 by accident.
    os.environ.pop("RELAY_REDIS_URL", None)
