"""Registrations and what the API reads: the store's side facing clients."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import msgspec
from redis.asyncio import Redis

from relay.core.model import Registration, TaskState
from relay.store import keys, scripts
from relay.store.codec import dump, load_registration, load_state
from relay.store.redis import to_ms


class RegisterOutcome(enum.Enum):
    CREATED = "created"
    EXISTS = "exists"  # the identical registration was there already
    CONFLICT = "conflict"  # one with other values is there


@dataclasses.dataclass(frozen=True)
class Registered:
    outcome: RegisterOutcome
    registration: Registration
    conflict_field: str | None = None


@dataclasses.dataclass(frozen=True)
class TaskView:
    registration: Registration
    state: TaskState
    polls: int


def differing_field(stored: Registration, asked: Registration) -> str | None:
    """The first field in which two registrations of one task differ, or None."""
    if stored.webhook_url != asked.webhook_url:
        return "webhook_url"
    if set(stored.events) != set(asked.events):
        return "events"
    if stored.metadata != asked.metadata:
        return "metadata"
    return None


class Registry:
    def __init__(self, redis: Redis, *, task_deadline: float, retention: float) -> None:
        self.redis = redis
        self.task_deadline = task_deadline
        self.retention = retention
        self._register = redis.register_script(scripts.REGISTER)
        self._unregister = redis.register_script(scripts.UNREGISTER)
        self._redeliver = redis.register_script(scripts.REDELIVER)

    async def register(self, asked: Registration) -> Registered:
        now = asked.registered_at
        initial = TaskState(registered_at=now, deadline_at=now + self.task_deadline)
        reply = await self._register(
            args=[keys.PREFIX, asked.task_id, asked.tenant, dump(asked), dump(initial), to_ms(now)]
        )
        if reply[0] != "exists":
            return Registered(RegisterOutcome.CREATED, asked)
        stored = load_registration(reply[1])
        field = differing_field(stored, asked)
        if field is None:
            return Registered(RegisterOutcome.EXISTS, stored)
        return Registered(RegisterOutcome.CONFLICT, stored, field)

    async def get(self, tenant: str, task_id: str) -> TaskView | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.subscribers(task_id), tenant)
            pipe.hmget(keys.task(task_id), ["state", "polls"])
            raw_reg, (raw_state, polls) = await pipe.execute()
        if raw_reg is None or raw_state is None:
            return None
        return TaskView(load_registration(raw_reg), load_state(raw_state), int(polls or 0))

    async def unregister(self, tenant: str, task_id: str) -> bool:
        removed = await self._unregister(args=[keys.PREFIX, task_id, tenant, int(self.retention)])
        return bool(removed)

    async def redeliver(self, tenant: str, task_id: str, now: float) -> str | None:
        delivery_id = await self._redeliver(args=[keys.PREFIX, tenant, task_id, to_ms(now)])
        return str(delivery_id) if delivery_id else None

    async def deliveries(self, tenant: str, task_id: str) -> list[dict[str, Any]]:
        ids: list[str] = await self.redis.lrange(keys.deliveries(tenant, task_id), 0, -1)  # type: ignore[misc]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hgetall(keys.delivery(delivery_id))
                pipe.lrange(keys.attempts(delivery_id), 0, -1)
            replies = await pipe.execute()
        listing = []
        for delivery_id, fields, attempts in zip(ids, replies[::2], replies[1::2], strict=True):
            if not fields:
                continue
            listing.append(
                {
                    "id": delivery_id,
                    "webhook_id": fields["webhook_id"],
                    "type": fields["type"],
                    "status": fields["status"],
                    "attempts": [msgspec.json.decode(a) for a in attempts],
                }
            )
        return listing

    async def ping(self) -> bool:
        return bool(await self.redis.ping())
