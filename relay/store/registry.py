"""Registrations and what the API reads: the store's side facing clients."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import AsyncIterator
from typing import Any

from relay.core.model import Registration, TaskState
from relay.store import keys, scripts
from relay.store.calls import Call, run, script
from relay.store.codec import (
    dump_metadata,
    dump_registrations,
    dump_state,
    load_registration,
    load_state,
)
from relay.store.quota import Quota
from relay.store.record import TaskRecord, read_delivery_records, read_record, read_records
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


LIST_WINDOW = 32  # the newest listing entries a registration may go in after (LIST_TASK)
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


class BadCursor(ValueError):
    """A listing cursor this store did not give."""


class Registry:
    def __init__(
        self, redis: Client, *, task_deadline: float, retention: float, max_tasks: int = 10_000
    ) -> None:
        self.redis = redis
        self.task_deadline = task_deadline
        self.retention = retention
        self.quota = Quota(redis, max_tasks)
        self._register = script(redis, scripts.REGISTER)
        self._unregister = script(redis, scripts.UNREGISTER)
        self._redeliver = script(redis, scripts.REDELIVER)
        self._list = script(redis, scripts.LIST_TASK)
        self._note_tenant = script(redis, scripts.NOTE_TENANT)

    async def register(self, asked: Registration) -> Registered:
        """Register in three steps, each in one slot: a place in the tenant's quota,
        the registration under the task, then the tenant's listing. A crash between
        them leaves at most a place held for nothing, which the sweep gives back."""
        now = asked.registered_at
        initial = TaskState(registered_at=now, deadline_at=round(now + self.task_deadline, 3))
        placed = await self.quota.reserve(asked.tenant)
        as_stored, as_stored_timed = dump_registrations(asked)
        reply = await self._register(
            keys=keys.task_keys(asked.task_id),
            args=[
                keys.compact_id(asked.task_id),
                asked.tenant,
                as_stored,
                dump_state(initial),
                to_ms(now),
                1 if asked.upstream_webhook else 0,
                1 if placed else 0,
                dump_metadata(asked),
                self._retention_ms,
                as_stored_timed,
                keys.DUE_BUCKETS,
            ],
        )
        outcome, raw_reg, raw_state, polls, raw_metadata, final = reply
        if placed and (outcome == "exists" or int(final)):
            # Its place was held already, or the task is final: it tracks nothing new.
            await self.quota.release([asked.tenant])
        if outcome not in ("quota", "exists"):
            entry = keys.listed(asked.task_id, to_ms(now))
            listing = keys.tenant_tasks(asked.tenant)
            await run(
                self.redis,
                [
                    Call(self._list, [listing], [entry, LIST_WINDOW]),
                    Call(self._note_tenant, [keys.TENANTS], [asked.tenant]),
                ],
            )
        if outcome == "quota":
            return Registered(RegisterOutcome.QUOTA, TaskView(asked, initial, 0))
        if outcome == "created":
            return Registered(RegisterOutcome.CREATED, TaskView(asked, initial, 0))
        stored = load_registration(
            raw_reg, asked.tenant, asked.task_id, raw_metadata or None, raw_state
        )
        view = TaskView(stored, load_state(raw_state), int(polls or 0))
        if outcome != "exists":
            return Registered(RegisterOutcome.CREATED, view)
        field = differing_field(stored, asked)
        if field is None:
            return Registered(RegisterOutcome.EXISTS, view)
        return Registered(RegisterOutcome.CONFLICT, view, field)

    @property
    def _retention_ms(self) -> int:
        return max(1, to_ms(self.retention))

    async def get(self, tenant: str, task_id: str) -> TaskView | None:
        return _view(await read_record(self.redis, task_id), tenant)

    async def unregister(self, tenant: str, task_id: str) -> bool:
        """Its listing entry stays (a list is not searched to delete from): the
        listing skips an entry whose registration is gone, the sweep trims it."""
        removed, delivery_ids, final = await self._unregister(
            keys=keys.task_keys(task_id),
            args=[keys.compact_id(task_id), tenant, self._retention_ms, keys.DUE_BUCKETS],
        )
        if int(removed):
            if not int(final):
                await self.quota.release([tenant])
            if delivery_ids:
                await self.redis.zrem(keys.failed_deliveries(tenant), *delivery_ids)
        return bool(int(removed))

    async def redeliver(
        self, tenant: str, task_id: str, now: float, delivery_id: str = ""
    ) -> str | None:
        """A new attempt series for a delivery (by default the task's latest); its id."""
        key = ""
        if delivery_id:
            owner, key = keys.delivery_task(delivery_id)
            if owner != task_id:
                return None
        redelivered = await self._redeliver(
            keys=[keys.task(task_id), keys.delivery_due(keys.shard_of(task_id))],
            args=[tenant, keys.compact_id(task_id), to_ms(now), key, self._retention_ms],
        )
        if not redelivered:
            return None
        await self.redis.zrem(keys.failed_deliveries(tenant), str(redelivered))
        return str(redelivered)

    async def deliveries(self, tenant: str, task_id: str) -> list[dict[str, Any]]:
        record = await read_record(self.redis, task_id)
        if record is None:
            return []
        ids = record.delivery_ids(tenant)
        return [
            d
            for d in await self._render_deliveries(ids, dict.fromkeys(ids, record))
            if d is not None
        ]

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
        task_id, _ = keys.delivery_task(delivery_id)
        return await self.redeliver(tenant, task_id, now, delivery_id)

    async def redeliver_failed(self, tenant: str, now: float, limit: int = 1000) -> list[str]:
        """A new attempt series for each of the tenant's failed deliveries (up to `limit`)."""
        ids: list[str] = await self.redis.zrevrange(keys.failed_deliveries(tenant), 0, limit - 1)
        started = []
        for delivery_id in ids:
            task_id, _ = keys.delivery_task(delivery_id)
            if await self.redeliver(tenant, task_id, now, delivery_id):
                started.append(delivery_id)
            else:
                await self.redis.zrem(keys.failed_deliveries(tenant), delivery_id)
        return started

    async def _render_deliveries(
        self, ids: list[str], records: dict[str, TaskRecord | None] | None = None
    ) -> list[dict[str, Any] | None]:
        """Each delivery as the API shows it (None: its task's record no longer has it);
        `records`, by delivery id, saves reading them."""
        if records is None:
            records = await read_delivery_records(self.redis, ids)
        rendered: list[dict[str, Any] | None] = []
        for delivery_id in ids:
            record = records.get(delivery_id)
            stored = record.delivery(delivery_id) if record else None
            if record is None or stored is None:
                rendered.append(None)
                continue
            rendered.append(
                {
                    "id": delivery_id,
                    "task_id": stored.task_id,
                    "webhook_id": stored.webhook_id,
                    "type": stored.type,
                    "status": stored.status,
                    "attempts": record.attempts(delivery_id),
                }
            )
        return rendered

    async def list_tasks(
        self, tenant: str, *, status: str | None, limit: int, cursor: Page | None
    ) -> tuple[list[TaskView], Page | None]:
        """The tenant's tasks, newest registration first, optionally of one status.

        A page resumes after the entry its cursor names (its registration time and
        task id), found again by position: entries are only ever added at the new
        end and trimmed at the old one. Raises BadCursor for a cursor naming no task id.
        """
        key = keys.tenant_tasks(tenant)
        start = 0
        if cursor is not None:
            start = await self._resume_at(key, cursor)
            if start < 0:
                return [], None  # trimmed away, and with it everything older
        views: list[TaskView] = []
        scanned = 0
        while True:
            entries: list[str] = await self.redis.lrange(key, start, start + limit - 1)  # type: ignore[misc]
            if not entries:
                return views, None
            scanned += len(entries)
            rows = [keys.listed_task(e) for e in entries]
            found = await self._views(tenant, [task_id for task_id, _ in rows])
            for (task_id, ms), view in zip(rows, found, strict=True):
                # A registration deleted, or deleted and made again, since its entry.
                if view is None or to_ms(view.registration.registered_at) != ms:
                    continue
                if status is None or view.state.status == status:
                    views.append(view)
                    if len(views) == limit:
                        # The next page starts after this task, wherever it is in the page.
                        return views, Page(ms, task_id)
            task_id, ms = rows[-1]
            if len(entries) < limit:
                return views, None
            if scanned >= MAX_SCAN:
                # A filter may skip many tasks: answer with a cursor rather than scan forever.
                return views, Page(ms, task_id)
            # Found again: registrations meanwhile moved every position.
            start = await self._resume_at(key, Page(ms, task_id))
            if start < 0:
                return views, None

    async def _resume_at(self, key: str, cursor: Page) -> int:
        """The position in a listing just after the cursor's entry; -1: it is gone."""
        try:
            entry = keys.listed(cursor.member, int(cursor.score))
        except (ValueError, OverflowError):
            raise BadCursor(cursor.member) from None
        found = await self.redis.lpos(key, entry)  # type: ignore[misc]
        return -1 if found is None else int(found) + 1

    async def _views(self, tenant: str, task_ids: list[str]) -> list[TaskView | None]:
        records = await read_records(self.redis, task_ids)
        return [_view(records[task_id], tenant) for task_id in task_ids]

    async def ping(self) -> bool:
        return bool(await self.redis.ping())


def _view(record: TaskRecord | None, tenant: str) -> TaskView | None:
    """A tenant's view of a task (None: it has no registration there)."""
    if record is None or record.raw_state is None:
        return None
    registration = record.registration(tenant)
    if registration is None:
        return None
    return TaskView(registration, record.state(), record.polls)
