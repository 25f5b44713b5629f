"""A task's record as Python reads it: one string of fields, written only by the scripts.

The record (`keys.task`) holds a task's whole world, so that every script names
the one key it works on. Its fields (name, ASCII 30, value; fields apart by
ASCII 31, which JSON never holds raw):

  s            the state (a JSON array: relay.store.codec.StoredState)
  p            polls made
  sg           quick re-fetches the latest upstream callback still allows
  fd           the due time (ms) of the task's members in its shard's fair queue
  fe, ft       the final event's id and type, once final
  r:<tenant>   the tenant's registration (codec.StoredRegistration)
  m:<tenant>   its metadata JSON (no script decodes it)
  u:<tenant>   '1': the registration said the upstream calls back
  g:<tenant>   the rid of a registration whose receiver answered 410
  l:<tenant>   its delivery keys, oldest first; o:<tenant> those still to send
  d:<key>      one delivery: `DeliveryFields`, apart by spaces, '~' for none
  a:<key>      its attempts (StoredAttempt JSON each, apart by ASCII 29), the last 100
  e:<event id> an event (Event JSON; a final event leaves its state to `s`)
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from typing import Any

from redis.asyncio.cluster import RedisCluster

from relay.core.model import Event, Registration, TaskState
from relay.store import keys
from relay.store.codec import load_attempt, load_event, load_registration, load_state
from relay.store.redis import Client

FIELD, RECORD, ATTEMPT = "\x1e", "\x1f", "\x1d"


class DeliveryFields(enum.IntEnum):
    """The position of each of a delivery's fields in its `d:<key>` value."""

    TENANT = 0
    RID = 1
    EVENT = 2
    TYPE = 3
    STATUS = 4
    ATTEMPT = 5
    SERIES = 6
    CREATED = 7
    NEXT = 8
    ENDED = 9
    SUPERSEDED = 10
    SERIES_START = 11


@dataclasses.dataclass(frozen=True)
class StoredDelivery:
    id: str
    task_id: str
    tenant: str
    rid: str
    event_id: str
    type: str
    status: str
    attempt: int
    series: int
    created: int  # ms
    superseded: bool
    series_start: int  # ms: when this attempt series began

    @property
    def webhook_id(self) -> str:
        return "msg_" + self.id.removeprefix("dlv_")

    @property
    def fresh(self) -> bool:
        """A redelivered series not yet attempted: someone asked for it now."""
        return self.series > 1 and self.attempt == 0


class TaskRecord:
    """One task's record, parsed."""

    def __init__(self, task_id: str, raw: str) -> None:
        self.task_id = task_id
        self.fields: dict[str, str] = {}
        for part in raw.split(RECORD):
            name, sep, value = part.partition(FIELD)
            if sep:
                self.fields[name] = value

    @classmethod
    def parse(cls, task_id: str, raw: str | None) -> TaskRecord | None:
        return None if raw is None else cls(task_id, raw)

    @property
    def raw_state(self) -> str | None:
        return self.fields.get("s")

    def state(self) -> TaskState:
        return load_state(self.fields["s"])

    @property
    def polls(self) -> int:
        return int(self.fields.get("p") or 0)

    @property
    def calls_back(self) -> bool:
        """Every registration said the upstream calls back (false with none)."""
        fields, registered = self.fields, False
        for name in fields:
            if name.startswith("r:"):
                if "u:" + name[2:] not in fields:
                    return False
                registered = True
        return registered

    @property
    def signals(self) -> int:
        return int(self.fields.get("sg") or 0)

    @property
    def final_event(self) -> str | None:
        return self.fields.get("fe")

    def tenants(self) -> list[str]:
        return sorted(name[2:] for name in self.fields if name.startswith("r:"))

    def has(self, tenant: str) -> bool:
        return "r:" + tenant in self.fields

    def registration(self, tenant: str) -> Registration | None:
        raw = self.fields.get("r:" + tenant)
        if raw is None:
            return None
        return load_registration(
            raw, tenant, self.task_id, self.fields.get("m:" + tenant), self.fields["s"]
        )

    def delivery_ids(self, tenant: str) -> list[str]:
        return [keys.delivery_id(self.task_id, k) for k in self._words("l:" + tenant)]

    def delivery(self, delivery_id: str) -> StoredDelivery | None:
        _, key = keys.delivery_task(delivery_id)
        raw = self.fields.get("d:" + key)
        if raw is None:
            return None
        d = [None if v == "~" else v for v in raw.split(" ")]
        if len(d) < len(DeliveryFields):
            return None
        F = DeliveryFields
        created = int(d[F.CREATED] or 0)
        return StoredDelivery(
            id=delivery_id,
            task_id=self.task_id,
            tenant=d[F.TENANT] or "",
            rid=d[F.RID] or "",
            event_id=d[F.EVENT] or "",
            type=d[F.TYPE] or "",
            status=d[F.STATUS] or "",
            attempt=int(d[F.ATTEMPT] or 0),
            series=int(d[F.SERIES] or 1),
            created=created,
            superseded=d[F.SUPERSEDED] == "1",
            series_start=int(d[F.SERIES_START] or created),
        )

    def attempts(self, delivery_id: str) -> list[dict[str, Any]]:
        _, key = keys.delivery_task(delivery_id)
        raw = self.fields.get("a:" + key)
        return [load_attempt(a) for a in raw.split(ATTEMPT)] if raw else []

    def event(self, event_id: str) -> Event | None:
        raw = self.fields.get("e:" + event_id)
        if raw is None:
            return None
        return load_event(raw, self.state)

    def _words(self, name: str) -> list[str]:
        return self.fields.get(name, "").split()


def join_fields(fields: dict[str, str]) -> str:
    """A record from its fields, as the scripts' `save` writes one."""
    return RECORD.join(name + FIELD + value for name, value in fields.items())


async def read_record(redis: Client, task_id: str) -> TaskRecord | None:
    """One task's record (None: it has none)."""
    return TaskRecord.parse(task_id, await redis.get(keys.task(task_id)))


async def read_records(redis: Client, task_ids: list[str]) -> dict[str, TaskRecord | None]:
    """The records of tasks, by id (None: gone): one MGET per shard (a shard's keys share
    a slot), all at once."""
    if not task_ids:
        return {}
    by_shard: dict[int, list[str]] = {}
    for task_id in dict.fromkeys(task_ids):
        by_shard.setdefault(keys.shard_of(task_id), []).append(task_id)
    replies = await mget_by_shard(
        redis, [[keys.task(task_id) for task_id in ids] for ids in by_shard.values()]
    )
    return {
        task_id: TaskRecord.parse(task_id, raw)
        for ids, raws in zip(by_shard.values(), replies, strict=True)
        for task_id, raw in zip(ids, raws, strict=True)
    }


async def mget_by_shard(redis: Client, names: list[list[str]]) -> list[list[str | None]]:
    """The values of each list of keys, one MGET per list, all at once: each list must
    be one shard's keys (they share a slot)."""
    if isinstance(redis, RedisCluster):
        # redis-py's cluster pipeline refuses MGET: each shard's goes to its node at once.
        return list(await asyncio.gather(*(redis.mget(shard) for shard in names)))
    async with redis.pipeline(transaction=False) as pipe:
        for shard in names:
            pipe.mget(shard)
        replies: list[list[str | None]] = await pipe.execute()
    return replies


async def read_delivery_records(
    redis: Client, delivery_ids: list[str]
) -> dict[str, TaskRecord | None]:
    """The record of each delivery's task, by delivery id (None: the task has none)."""
    tasks = {delivery_id: keys.delivery_task(delivery_id)[0] for delivery_id in delivery_ids}
    records = await read_records(redis, list(tasks.values()))
    return {delivery_id: records[task_id] for delivery_id, task_id in tasks.items()}
