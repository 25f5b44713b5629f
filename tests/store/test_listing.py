"""A tenant's listing as a list: newest registration first, whatever order they came in."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from relay.store import keys
from relay.store.registry import LIST_WINDOW, BadCursor, Page, Registry
from support.payloads import new_id
from tests.store import registration

T0 = round(time.time(), 3)


def registry_of(redis: Redis) -> Registry:
    return Registry(redis, task_deadline=600, retention=3600)


async def listed_ids(registry: Registry, tenant: str, limit: int = 200) -> list[str]:
    views, _ = await registry.list_tasks(tenant, status=None, limit=limit, cursor=None)
    return [v.registration.task_id for v in views]


@pytest.mark.parametrize(
    "offsets_ms",
    [
        [0, 1, 2, 3],  # in order
        [3, 2, 1, 0],  # each older than the last
        [0, 5, 2, 9, 1, 7],  # shuffled
        [4, 4, 4],  # one millisecond: the last to arrive first
    ],
)
async def test_entries_come_newest_first_by_registration_time(
    redis: Redis, offsets_ms: list[int]
) -> None:
    registry = registry_of(redis)
    arrived = []
    for offset in offsets_ms:
        task_id = new_id()
        await registry.register(registration(task_id, "alpha", registered_at=T0 + offset / 1000))
        arrived.append((offset, task_id))
    # Sorted by time, newest first; ties by arrival, the last first.
    expected = [t for _, t in sorted(reversed(arrived), key=lambda a: -a[0])]
    assert await listed_ids(registry, "alpha") == expected


async def test_an_entry_later_than_the_window_goes_after_it(redis: Redis) -> None:
    registry = registry_of(redis)
    newer = [new_id() for _ in range(LIST_WINDOW + 3)]
    for n, task_id in enumerate(newer):
        await registry.register(registration(task_id, "alpha", registered_at=T0 + 1 + n / 1000))
    late = new_id()
    await registry.register(registration(late, "alpha", registered_at=T0))
    order = await listed_ids(registry, "alpha")
    assert order.index(late) == LIST_WINDOW  # as far down as it looks, no further
    assert len(order) == len(newer) + 1


async def test_a_cursor_resumes_after_its_entry_while_newer_ones_arrive(redis: Redis) -> None:
    registry = registry_of(redis)
    first = [new_id() for _ in range(6)]
    for n, task_id in enumerate(first):
        await registry.register(registration(task_id, "alpha", registered_at=T0 + n / 1000))
    page, cursor = await registry.list_tasks("alpha", status=None, limit=3, cursor=None)
    assert cursor is not None
    for n in range(4):  # newer registrations push every entry down
        await registry.register(registration(new_id(), "alpha", registered_at=T0 + 1 + n))
    rest, end = await registry.list_tasks("alpha", status=None, limit=3, cursor=cursor)
    assert [v.registration.task_id for v in page + rest] == list(reversed(first))
    assert end is not None  # a full page: the next one says it is the end
    tail, none = await registry.list_tasks("alpha", status=None, limit=3, cursor=end)
    assert tail == [] and none is None


async def test_a_cursor_whose_entry_was_trimmed_ends_the_listing(redis: Redis) -> None:
    registry = registry_of(redis)
    for n in range(4):
        await registry.register(registration(new_id(), "alpha", registered_at=T0 + n / 1000))
    _, cursor = await registry.list_tasks("alpha", status=None, limit=2, cursor=None)
    assert cursor is not None
    await redis.delete(keys.tenant_tasks("alpha"))
    assert await registry.list_tasks("alpha", status=None, limit=2, cursor=cursor) == ([], None)


async def test_a_cursor_naming_no_task_id_is_refused(redis: Redis) -> None:
    with pytest.raises(BadCursor):
        await registry_of(redis).list_tasks("alpha", status=None, limit=2, cursor=Page(1.0, "../x"))
