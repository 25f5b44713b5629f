"""The store's scripts driven directly against the test session's Redis."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from relay.core.model import Registration, new_rid
from relay.store import keys
from relay.store.record import TaskRecord, join_fields, read_record


def registration(task_id: str, tenant: str, **fields: Any) -> Registration:
    """A registration as the API would make it, now, with a fresh rid."""
    return Registration(
        tenant=tenant,
        task_id=task_id,
        registered_at=fields.pop("registered_at", round(time.time(), 3)),
        rid=new_rid(),
        **fields,
    )


async def record(redis: Redis, task_id: str) -> TaskRecord:
    found = await read_record(redis, task_id)
    assert found is not None, f"task {task_id} has no record"
    return found


async def edit_record(redis: Redis, task_id: str, **fields: str | None) -> None:
    """Change fields of a task's record as no relay process would (None: remove)."""
    current = (await record(redis, task_id)).fields
    for name, value in fields.items():
        if value is None:
            current.pop(name, None)
        else:
            current[name] = value
    await redis.set(keys.task(task_id), join_fields(current), keepttl=True)


async def make_due(redis: Redis, task_id: str) -> None:
    """Make a tracked task due at once, as no relay process would: its time in its
    bucket of the schedule, and its bucket's head no later."""
    await redis.zadd(keys.due_bucket(task_id), {keys.compact_id(task_id): 0}, xx=True)
    await redis.zadd(keys.due_heads(keys.shard_of(task_id)), {str(keys.due_bucket_of(task_id)): 0})
