"""Registrations and what the API reads: the store's side facing clients."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from relay.core.model import Registration, TaskState
from relay.store import keys, scripts
from relay.store.calls import script
from relay.store.codec import (
    dump,
    dump_metadata,
    dump_registration,
    load_registration,
    load_state,
)
from relay.store.redis import Client, to_ms


class RegisterOutcome(enum.Enum):
    CREATED = "created"
    EXISTS = "exists"  # the identical registration was there already
    CONFLICT = "conflict"  # one with other values is there
    QUOTA = "quota"  # the tenant tracks its most tasks already: nothing was stored


@dataclasses.dataclass(frozen=True)
class TaskView:
    registration: Registration
    state: TaskState
    polls: int


@dataclasses.dataclass(frozen=True)
class Registered:
    outcome: RegisterOutcome
    view: TaskView  # the task as it is after the call, with the stored registration
    conflict_field: str | None = None

    @property
    def registration(self) -> Registration:
        return self.view.registration


def differing_field(stored: Registration, asked: Registration) -> str | None:
    """The first field in which two registrations of one task differ, or None."""
    if stored.webhook_url != asked.webhook_url:
        return "webhook_url"
    if set(stored.events) != set(asked.events):
        return "events"
    if stored.metadata != asked.metadata:
        return "metadata"
    if stored.upstream_webhook != asked.upstream_webhook:
        return "upstream_webhook"
    return None


MAX_SCAN = 2000  # members one listing request reads at most, whatever its filter


@dataclasses.dataclass(frozen=True)
class Page:
    """Where a listing resumes: after `member`, whose score is `score` (newest first)."""

    score: float
    member: str


async def _pages(
    redis: Client, key: str, size: int, cursor: Page | None
) -> AsyncIterator[tuple[list[tuple[str, float]], Page | None]]:
    """Members of a sorted set from highest score down, after `cursor`, a page at a time.

    Members of equal score come in reverse lexical order, so the cursor's
    (score, member) pair says exactly where the previous page stopped.
    """
    while True:
        top: float | str = "+inf" if cursor is None else cursor.score
        rows: list[tuple[str, float]] = []
        offset = 0
        while True:
            batch: list[tuple[str, float]] = await redis.zrevrangebyscore(
                key, top, "-inf", start=offset, num=size + 64, withscores=True
            )
            # Rows sort by (score, member) descending: the ones already served are a prefix.
            rows.extend(r for r in batch if cursor is None or _after(r, cursor))
            if len(rows) >= size or len(batch) < size + 64:
                break
            offset += len(batch)  # a run of equal scores longer than a batch
        if not rows:
            yield [], None
            return
        page = rows[:size]
        last_member, last_score = page[-1]
        next_page = Page(last_score, last_member) if len(page) == size else None
        yield page, next_page
        if next_page is None:
            return
        cursor = next_page


def _after(row: tuple[str, float], cursor: Page) -> bool:
    member, score = row
    return score < cursor.score or (score == cursor.score and member < cursor.member)


class Registry:
    def __init__(
        self, redis: Client, *, task_deadline: float, retention: float, max_tasks: int = 10_000
    ) -> None:
        self.redis = redis
        self.task_deadline = task_deadline
        self.retention = retention
        self.max_tasks = max_tasks
        self._register = script(redis, scripts.REGISTER)
        self._unregister = script(redis, scripts.UNREGISTER)
        self._redeliver = script(redis, scripts.REDELIVER)
        self._reserve = script(redis, scripts.RESERVE)

    async def register(self, asked: Registration) -> Registered:
        """Register in three steps, each in one slot: a place in the tenant's quota,
        the registration under the task, then the tenant's listing. A crash between
        them leaves at most a place held for nothing, which the sweep gives back."""
        now = asked.registered_at
        initial = TaskState(registered_at=now, deadline_at=round(now + self.task_deadline, 3))
        active = keys.active_tasks(asked.tenant)
        place = await self._reserve(keys=[active], args=[asked.task_id, self.max_tasks])
        shard = keys.shard_of(asked.task_id)
        reply = await self._register(
            keys=keys.shard_keys(shard),
            args=[
                keys.shard_prefix(shard),
                asked.task_id,
                asked.tenant,
                dump_registration(asked),
                dump(initial),
                to_ms(now),
                1 if asked.upstream_webhook else 0,
                0 if place == "full" else 1,
                dump_metadata(asked),
            ],
        )
        outcome, raw_reg, raw_state, polls, raw_metadata, final = reply
        async with self.redis.pipeline(transaction=False) as pipe:
            if place == "added" and (outcome == "quota" or int(final)):
                pipe.srem(active, asked.task_id)  # a final task is not tracked
            if outcome != "quota":
                pipe.zadd(keys.tenant_tasks(asked.tenant), {asked.task_id: to_ms(now)}, nx=True)
                pipe.sadd(keys.TENANTS, asked.tenant)
            await pipe.execute()
        if outcome == "quota":
            return Registered(RegisterOutcome.QUOTA, TaskView(asked, initial, 0))
        if outcome == "created":
            return Registered(RegisterOutcome.CREATED, TaskView(asked, initial, 0))
        stored = load_registration(raw_reg, asked.tenant, asked.task_id, raw_metadata)
        view = TaskView(stored, load_state(raw_state), int(polls or 0))
        if outcome != "exists":
            return Registered(RegisterOutcome.CREATED, view)
        field = differing_field(stored, asked)
        if field is None:
            return Registered(RegisterOutcome.EXISTS, view)
        return Registered(RegisterOutcome.CONFLICT, view, field)

    async def get(self, tenant: str, task_id: str) -> TaskView | None:
        raw_reg, raw_state, polls, raw_metadata = await self.redis.hmget(  # type: ignore[misc]
            keys.task(task_id), self._fields(tenant)
        )
        if raw_reg is None or raw_state is None:
            return None
        registration = load_registration(raw_reg, tenant, task_id, raw_metadata)
        return TaskView(registration, load_state(raw_state), int(polls or 0))

    async def unregister(self, tenant: str, task_id: str) -> bool:
        shard = keys.shard_of(task_id)
        removed, delivery_ids = await self._unregister(
            keys=keys.shard_keys(shard),
            args=[keys.shard_prefix(shard), task_id, tenant, max(1, to_ms(self.retention))],
        )
        if int(removed):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(keys.tenant_tasks(tenant), task_id)
                pipe.srem(keys.active_tasks(tenant), task_id)
                if delivery_ids:
                    pipe.zrem(keys.failed_deliveries(tenant), *delivery_ids)
                await pipe.execute()
        return bool(int(removed))

    async def redeliver(
        self, tenant: str, task_id: str, now: float, delivery_id: str = ""
    ) -> str | None:
        """A new attempt series for a delivery (by default the task's latest); its id."""
        shard = keys.shard_of(task_id)
        redelivered = await self._redeliver(
            keys=keys.shard_keys(shard),
            args=[keys.shard_prefix(shard), tenant, task_id, to_ms(now), delivery_id],
        )
        if not redelivered:
            return None
        await self.redis.zrem(keys.failed_deliveries(tenant), str(redelivered))
        return str(redelivered)

    async def deliveries(self, tenant: str, task_id: str) -> list[dict[str, Any]]:
        key = keys.deliveries(tenant, task_id)
        ids: list[str] = await self.redis.lrange(key, 0, -1)  # type: ignore[misc]
        return [d for d in await self._render_deliveries(ids) if d is not None]

    async def failed_deliveries(
        self, tenant: str, limit: int, cursor: Page | None
    ) -> tuple[list[dict[str, Any]], Page | None]:
        """The tenant's failed deliveries, most recent first, with the task each belongs to."""
        key = keys.failed_deliveries(tenant)
        listing: list[dict[str, Any]] = []
        async for rows, next_page in _pages(self.redis, key, limit, cursor):
            page_ids = [member for member, _ in rows]
            rendered = await self._render_deliveries(page_ids)
            gone = [i for i, d in zip(page_ids, rendered, strict=True) if d is None]
            if gone:
                await self.redis.zrem(key, *gone)  # expired with their task
            listing.extend(d for d in rendered if d is not None)
            if len(listing) >= limit or next_page is None:
                return listing[:limit], next_page
        return listing, None

    async def redeliver_one(self, tenant: str, delivery_id: str, now: float) -> str | None:
        """A new attempt series for one of the tenant's deliveries; None if it has none such."""
        owner, task_id = await self.redis.hmget(  # type: ignore[misc]
            keys.delivery(delivery_id), ["tenant", "task"]
        )
        if owner != tenant or not task_id:
            return None
        return await self.redeliver(tenant, task_id, now, delivery_id)

    async def redeliver_failed(self, tenant: str, now: float, limit: int = 1000) -> list[str]:
        """A new attempt series for each of the tenant's failed deliveries (up to `limit`)."""
        ids: list[str] = await self.redis.zrevrange(keys.failed_deliveries(tenant), 0, limit - 1)
        started = []
        for delivery_id in ids:
            task_id = await self.redis.hget(keys.delivery(delivery_id), "task")  # type: ignore[misc]
            if task_id and await self.redeliver(tenant, task_id, now, delivery_id):
                started.append(delivery_id)
            elif not task_id:
                await self.redis.zrem(keys.failed_deliveries(tenant), delivery_id)
        return started

    async def _render_deliveries(self, ids: list[str]) -> list[dict[str, Any] | None]:
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hgetall(keys.delivery(delivery_id))
                pipe.lrange(keys.attempts(delivery_id), 0, -1)
            replies = await pipe.execute()
        rendered: list[dict[str, Any] | None] = []
        for delivery_id, fields, attempts in zip(ids, replies[::2], replies[1::2], strict=True):
            if not fields:
                rendered.append(None)
                continue
            rendered.append(
                {
                    "id": delivery_id,
                    "task_id": fields["task"],
                    "webhook_id": fields["webhook_id"],
                    "type": fields["type"],
                    "status": fields["status"],
                    "attempts": [msgspec.json.decode(a) for a in attempts],
                }
            )
        return rendered

    async def list_tasks(
        self, tenant: str, *, status: str | None, limit: int, cursor: Page | None
    ) -> tuple[list[TaskView], Page | None]:
        """The tenant's tasks, newest registration first, optionally of one status."""
        key = keys.tenant_tasks(tenant)
        views: list[TaskView] = []
        scanned = 0
        async for rows, next_page in _pages(self.redis, key, limit, cursor):
            scanned += len(rows)
            found = await self._views(tenant, [member for member, _ in rows])
            expired = [m for (m, _), view in zip(rows, found, strict=True) if view is None]
            if expired:
                await self.redis.zrem(key, *expired)
            for (task_id, score), view in zip(rows, found, strict=True):
                if view is None:
                    continue
                if status is None or view.state.status == status:
                    views.append(view)
                    if len(views) == limit:
                        # The next page starts after this task, wherever it is in the page.
                        return views, Page(score, task_id)
            # A filter may skip many tasks: answer with a cursor rather than scan forever.
            if next_page is None or scanned >= MAX_SCAN:
                return views, next_page
        return views, None

    async def _views(self, tenant: str, task_ids: list[str]) -> list[TaskView | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hmget(keys.task(task_id), self._fields(tenant))
            replies = await pipe.execute()
        views: list[TaskView | None] = []
        for task_id, (raw_reg, raw_state, polls, raw_metadata) in zip(
            task_ids, replies, strict=True
        ):
            if raw_reg is None or raw_state is None:
                views.append(None)
            else:
                registration = load_registration(raw_reg, tenant, task_id, raw_metadata)
                views.append(TaskView(registration, load_state(raw_state), int(polls or 0)))
        return views

    @staticmethod
    def _fields(tenant: str) -> list[str]:
        """What a tenant's view of a task is read from, in the task's hash."""
        return [keys.registration_field(tenant), "state", "polls", keys.metadata_field(tenant)]

    async def ping(self) -> bool:
        return bool(await self.redis.ping())
