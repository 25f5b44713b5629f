"""The real `relay worker`: its heartbeat, a clean stop on SIGTERM or SIGINT within the
grace, also while Redis is away. (Redis stopped and started again under a running
worker: tests/reliability/test_redis_restart.py.)"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from relay.devtools.redis_server import RedisServer
from relay.store import keys
from support.processes import Proc, clean_env
from support.servers import ScriptedUpstream
from support.waiting import eventually
from tests.conftest import fast_env
from workers.worker import HEARTBEAT_TTL, SHUTDOWN_GRACE


def heartbeat_of(worker: Proc) -> str:
    return keys.worker_health(f"{socket.gethostname()}:{worker.pid}")


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_signal_ends_the_worker_within_the_grace_with_status_0(
    redis_server: RedisServer, redis: Redis, upstream: ScriptedUpstream, signum: int
) -> None:
    worker = Proc("worker", env=clean_env(**fast_env(redis_server.url, upstream.url)))
    heartbeat = heartbeat_of(worker)
    try:
        await worker.wait_output("worker started")

        async def beating() -> bool:
            return bool(await redis.exists(heartbeat))

        await eventually(beating, 20, f"the worker's heartbeat {heartbeat}")
        assert 0 < await redis.pttl(heartbeat) <= HEARTBEAT_TTL * 1000
        worker.process.send_signal(signum)
        code = await worker.wait(SHUTDOWN_GRACE)
        output = worker.output()
        assert code == 0, f"exit {code}:\n{output[-3000:]}"
        assert "worker stopped" in output
        assert "Traceback" not in output, output[-3000:]
        assert not await redis.exists(heartbeat), "a stopped worker leaves no heartbeat"
    finally:
        worker.close()


async def test_sigterm_while_redis_is_away_still_ends_the_worker_with_status_0(
    own_redis: RedisServer, upstream: ScriptedUpstream
) -> None:
    worker = Proc("worker", env=clean_env(**fast_env(own_redis.url, upstream.url)))
    try:
        await worker.wait_output("worker started")
        own_redis.stop()
        worker.sigterm()
        code = await worker.wait(SHUTDOWN_GRACE)
        assert code == 0, f"exit {code}:\n{worker.output()[-3000:]}"
        assert "worker stopped" in worker.output()
    finally:
        worker.close()
