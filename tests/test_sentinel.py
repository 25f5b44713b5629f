"""High availability: the relay on Redis Sentinel follows a failover and loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook

from relay.devtools.redis_server import RedisServer, SentinelServer
from relay.settings import load_settings
from relay.store.redis import connect, parse_sentinel
from support.payloads import finished, new_id, processing
from support.servers import Receiver, ScriptedUpstream
from tests.conftest import WEBHOOK_SECRET, Api, fast_env, running_worker


@pytest.mark.parametrize(
    ("url", "sentinels", "master", "db", "password"),
    [
        ("redis+sentinel://h1:26379/mymaster", (("h1", 26379),), "mymaster", 0, None),
        (
            "redis+sentinel://:s3cret@h1:26379,h2:26380/relay/2",
            (("h1", 26379), ("h2", 26380)),
            "relay",
            2,
            "s3cret",
        ),
        ("redis+sentinel://[::1]:26379/m", (("::1", 26379),), "m", 0, None),
    ],
)
def test_sentinel_urls_parse(
    url: str, sentinels: tuple[tuple[str, int], ...], master: str, db: int, password: str | None
) -> None:
    target = parse_sentinel(url)
    assert target is not None
    assert (target.sentinels, target.master, target.db, target.password) == (
        sentinels,
        master,
        db,
        password,
    )


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://h1/mymaster",
        "redis+sentinel://h1:26379/",
        "redis+sentinel://h1:26379/m/x",
        "redis+sentinel://h1:26379/m/0/extra",
    ],
)
def test_malformed_sentinel_urls_name_the_setting(url: str) -> None:
    from relay.settings import SettingsError

    with pytest.raises(SettingsError, match=r"^RELAY_REDIS_URL"):
        load_settings({"RELAY_REDIS_URL": url})


@pytest.fixture
def cluster() -> Iterator[tuple[RedisServer, RedisServer, SentinelServer]]:
    primary = RedisServer(appendonly=True).start()
    replica = RedisServer(
        appendonly=True, extra_args=("--replicaof", "127.0.0.1", str(primary.port))
    ).start()
    sentinel = SentinelServer(primary.port).start()
    yield primary, replica, sentinel
    sentinel.cleanup()
    replica.cleanup()
    primary.cleanup()


async def _replicated(primary: Redis) -> None:
    # Make the writes so far reach the replica before the primary dies.
    assert await primary.execute_command("WAIT", 1, 5000) >= 1


async def test_failover_loses_no_registration_and_no_event(
    cluster: tuple[RedisServer, RedisServer, SentinelServer],
    upstream: ScriptedUpstream,
    receiver: Receiver,
) -> None:
    primary, replica, sentinel = cluster
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster"
    settings = load_settings(fast_env(url, upstream.url, RELAY_POLL_MAX_INTERVAL="0.1"))
    direct = Redis.from_url(primary.url, decode_responses=True)
    # Wait for the replica to be in sync before starting.
    for _ in range(100):
        info = await direct.info("replication")
        if info.get("connected_slaves") == 1:
            break
        await asyncio.sleep(0.1)

    before = [new_id() for _ in range(5)]
    after = [new_id() for _ in range(5)]
    for task_id in before + after:
        upstream.script(task_id, processing(task_id, "10"))

    async with Api(settings) as api, running_worker(settings):
        for task_id in before:
            assert (await api.register(task_id, webhook_url=receiver.url)).status_code == 201
        await _replicated(direct)
        await direct.aclose()
        primary.kill()

        # The relay asks the sentinel for the new primary by itself.
        client = connect(url)
        for _ in range(200):
            try:
                role = await client.execute_command("ROLE")
                if role[0] == "master":
                    break
            except Exception:
                pass
            await asyncio.sleep(0.1)
        await client.aclose()

        for task_id in after:
            for _ in range(100):
                response = await api.register(task_id, webhook_url=receiver.url)
                if response.status_code == 201:
                    break
                assert response.status_code == 503, response.text
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("registration never succeeded after the failover")

        for task_id in before:
            body = (await api.task(task_id)).json()
            assert body["task_id"] == task_id, "a registration made before the failover survives"

        for task_id in before + after:
            upstream.script(task_id, finished(task_id))
        await receiver.wait_for(len(before + after), timeout=30)

    hook = Webhook(WEBHOOK_SECRET)
    delivered = {hook.verify(r.body, r.headers)["data"]["task_id"] for r in receiver.received}
    assert delivered == set(before + after)
    assert replica.ping()
