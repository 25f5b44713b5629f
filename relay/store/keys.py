"""Every Redis key the relay uses, in one place, laid out for Redis Cluster.

Each key carries a hash tag (the part in braces), and every script touches the
keys of one tag only, so that on a cluster each call goes to one node and on a
single Redis nothing changes. Four kinds of tag:

- a **shard**, `{s<k>}` with k < `SHARDS`: a task's record (one key holding
  everything made for it: deliveries, events, outboxes) and the queues it sits
  in. A task's shard is a hash of its id (`shard_of`); a delivery id carries its
  task's id (`delivery_task`), so every key a script touches is named from ids
  the caller holds. The poll schedule and the delivery queue are split the
  same way, one sorted set per shard, and workers claim from every shard.
- a **tenant**, `{t:<tenant>}`: what is listed or counted per tenant across
  shards (its tasks, its quota, its failed deliveries, its receivers held).
- a **receiver**, `{r:<origin>}`: one webhook origin's circuit breaker.
- `{upstream}`: the shared upstream rate limit and pause, read together.
- none: a few small global keys (the metrics, the set of tenants).

Per shard (`shard_prefix(k)` = `relay:{s<k>}:`):
  task:{id}            string the task's record: its state, polls, every tenant's
                             registration, metadata and deliveries with their attempts,
                             the events they send, as one string of fields (see
                             relay.store.record); tracked, it never expires; ended, it
                             expires RELAY_RETENTION after its last delivery is done
  due:<b>              zset  task id -> next poll time (ms); a claim pushes it a lease ahead.
                             The shard's schedule as `DUE_BUCKETS` sorted sets, the id's
                             hash picking one (`due_bucket`), so each stays small enough
                             for Redis' compact encoding (see relay.store.scripts._DUE)
  due_heads            zset  bucket number -> its earliest time (kept exact by every write)
  fair:<b>             zset  '<tenant> <due ms> <task id>' at score 0: each tenant's tasks
                             by due time, read to share the rate fairly when more is due
                             than it allows (CLAIM_POLLS); in parts like the schedule, a
                             task's members in the part of its schedule bucket's number
  fair_masks           hash  tenant -> which parts of `fair` hold its members (one
                             character per part, '1' or '0')
  fair_counts          hash  tenant -> its members in `fair` (its tracked tasks here)
  due_turn             string which tenant the next contended claim starts with
  dlv_due              zset  delivery id -> next attempt time (ms); only the head of each
                             subscription's outbox is in it; claimed the same way
Per tenant (`tenant_prefix(t)` = `relay:{t:<tenant>}:`):
  tasks                list  one entry per registration, newest first: the task's compact
                             id and its registration time (`listed`); a list packs its
                             entries far tighter than a sorted set. Read by position
                             (the listing), trimmed at the old end (the sweep); an entry
                             whose registration is gone stays until it is that old
  active               hash  n: the places the tenant's tracked tasks hold in its quota
                             (RELAY_TENANT_MAX_TASKS); x: what the last sweep found held
                             for nothing (relay.store.maintenance)
  failed               zset  delivery id -> when it failed (the operator's "what is stuck")
  held                 zset  origin -> when the tenant's deliveries last waited for it
  share                zset  its delivery ids parked over its share of a worker's slots
                             -> creation (ms) (see relay.delivery.shares)
Per receiver (a webhook URL's scheme://host:port; see relay.store.breaker), each
expiring `STATE_TTL` after its last write, `receiver(origin)` = `relay:{r:<origin>}`:
  (the hash itself)    hash  the breaker: failures in a row, window, hold, probe lease
  :f                   zset  attempts in flight, `delivery_id|lease` -> lease end (ms)
  :q                   zset  parked delivery ids -> creation time (ms): waiting to go
  :r                   zset  delivery ids whose last attempt there failed -> creation (ms)
Upstream (`relay:{upstream}:`):
  bucket               hash  the shared token bucket for upstream calls
  paused               string ms until which no worker calls the upstream (Retry-After, 401)
  unauthorized         string when the upstream last refused the key (cleared on success)
Global:
  metrics              hash  counters of every process (see relay.metrics)
  finals               channel pub/sub: the id of each task as it becomes final or a tenant
                             deletes it (wakes /wait; see relay.api.waiters)
  tenants              set   every tenant that ever registered (for the retention sweep)
  rcv_held             zset  origin of each held receiver -> when last touched (ms)
  sweep_lock           string held (SET NX PX) by the one worker running the sweep job
  worker:{name}        string a worker's heartbeat, expiring a while after its last report
"""

from __future__ import annotations

import base64
import functools
import hashlib
import uuid
import zlib
from typing import NamedTuple

PREFIX = "relay:"

# Fixed for the life of a deployment's data: a task's shard is its id's hash modulo
# this, so changing it strands every stored task (it would need a migration).
SHARDS = 32

# One tag for the upstream's keys: a claim reads the bucket and the pause in one script.
UPSTREAM_BUCKET = PREFIX + "{upstream}:bucket"
UPSTREAM_PAUSED = PREFIX + "{upstream}:paused"
UPSTREAM_UNAUTHORIZED = PREFIX + "{upstream}:unauthorized"
METRICS = PREFIX + "metrics"
TENANTS = PREFIX + "tenants"
FINALS = PREFIX + "finals"  # pub/sub channel: the id of each task as it becomes final
HELD_RECEIVERS = PREFIX + "rcv_held"
SWEEP_LOCK = PREFIX + "sweep_lock"


def worker_health(name: str) -> str:
    return f"{PREFIX}worker:{name}"


# --- shards -------------------------------------------------------------------------


def shard_of(task_id: str) -> int:
    return zlib.crc32(task_id.encode()) % SHARDS


def shard_prefix(shard: int) -> str:
    """What every key of one shard starts with: its hash tag puts them in one slot."""
    return f"{PREFIX}{{s{shard}}}:"


def task(task_id: str) -> str:
    return task_at(shard_of(task_id), compact_id(task_id))


def task_at(shard: int, compact: str) -> str:
    """A task's record key from its shard and compact id (see `Place`)."""
    return f"{shard_prefix(shard)}task:{compact}"


# Per shard: 64 buckets keep each under 128 members (a listpack) up to about 200,000
# tracked tasks in all. Fixed like SHARDS: a task's bucket is a hash of its id.
DUE_BUCKETS = 64


def due_heads(shard: int) -> str:
    return shard_prefix(shard) + "due_heads"


def due_buckets(shard: int) -> list[str]:
    """The shard's schedule, bucket by bucket (cached: every script call names them)."""
    return _DUE_BUCKETS[shard]


_DUE_BUCKETS = [
    [f"{shard_prefix(shard)}due:{b}" for b in range(DUE_BUCKETS)] for shard in range(SHARDS)
]


@functools.lru_cache(maxsize=16384)
def due_bucket_of(task_id: str) -> int:
    """Which of its shard's buckets holds the task: by a hash of its id, as the Lua of
    relay.store.scripts._DUE computes it (a UUID's own bytes would not do: v1 and v7
    begin with a clock, v1 ends with a constant node)."""
    return _bucket_of_compact(compact_id(task_id))


def _bucket_of_compact(compact: str) -> int:
    return hashlib.sha1(compact.encode()).digest()[0] % DUE_BUCKETS


def due_bucket(task_id: str) -> str:
    return due_buckets(shard_of(task_id))[due_bucket_of(task_id)]


def fair_buckets(shard: int) -> list[str]:
    """The shard's fair queue, part by part: a task's members are in the part of the
    schedule's bucket number (`due_bucket_of`)."""
    return _FAIR_BUCKETS[shard]


_FAIR_BUCKETS = [
    [f"{shard_prefix(shard)}fair:{b}" for b in range(DUE_BUCKETS)] for shard in range(SHARDS)
]


def fair_bucket(task_id: str) -> str:
    return fair_buckets(shard_of(task_id))[due_bucket_of(task_id)]


class Place(NamedTuple):
    """Where a task's keys are, worked out once per poll and carried from its claim to
    its write-back: at 100,000 tracked, the caches above no longer hold a task from one
    poll to the next, and each id conversion costs microseconds."""

    compact: str  # compact_id
    shard: int  # shard_of
    bucket: int  # due_bucket_of

    @property
    def task(self) -> str:
        return task_at(self.shard, self.compact)

    @property
    def due_bucket(self) -> str:
        return due_buckets(self.shard)[self.bucket]

    @property
    def fair_bucket(self) -> str:
        return fair_buckets(self.shard)[self.bucket]


def place_of(task_id: str) -> Place:
    return Place(compact_id(task_id), shard_of(task_id), due_bucket_of(task_id))


def placed(compact: str, shard: int) -> Place:
    """The place of a task a script named by its compact id, in a call to `shard`."""
    return Place(compact, shard, _bucket_of_compact(compact))


def fair_masks(shard: int) -> str:
    return shard_prefix(shard) + "fair_masks"


def fair_counts(shard: int) -> str:
    return shard_prefix(shard) + "fair_counts"


def due_turn(shard: int) -> str:
    return shard_prefix(shard) + "due_turn"


def delivery_due(shard: int) -> str:
    return shard_prefix(shard) + "dlv_due"


def claim_keys(shard: int) -> list[str]:
    """The KEYS of CLAIM_POLLS: the shard's schedule heads, fair queue masks and
    counts, turn, then its schedule's buckets and its fair queue's parts."""
    return [
        due_heads(shard),
        fair_masks(shard),
        fair_counts(shard),
        due_turn(shard),
        *due_buckets(shard),
        *fair_buckets(shard),
    ]


def apply_keys(shard: int) -> list[str]:
    """The KEYS APPLY takes first: the shard's schedule heads, fair queue masks and
    counts, and delivery queue (each task's record, schedule bucket and fair queue part
    follow)."""
    return [due_heads(shard), fair_masks(shard), fair_counts(shard), delivery_due(shard)]


def shard_queues(shard: int) -> list[str]:
    """Every queue of a shard: APPLY's first KEYS (the schedule's heads, the fair
    queue's masks and counts, the delivery queue), then every one of the schedule's
    buckets, then every part of the fair queue."""
    return [*apply_keys(shard), *due_buckets(shard), *fair_buckets(shard)]


def task_keys(task_id: str) -> list[str]:
    """The KEYS of a script on one task (REGISTER, UNREGISTER): its record, its shard's
    schedule heads, fair queue masks and counts and delivery queue, then the task's
    own schedule bucket and fair queue part (a task stays in the one its id hashes to)."""
    shard = shard_of(task_id)
    return [task(task_id), *apply_keys(shard), due_bucket(task_id), fair_bucket(task_id)]


def signal_keys(task_id: str) -> list[str]:
    """The KEYS of SIGNAL: the task's record, its shard's schedule heads, fair queue
    masks and counts, then the task's schedule bucket and fair queue part."""
    shard = shard_of(task_id)
    return [
        task(task_id),
        due_heads(shard),
        fair_masks(shard),
        fair_counts(shard),
        due_bucket(task_id),
        fair_bucket(task_id),
    ]


def fair_member_bounds(tenant: str, upto_ms: int) -> tuple[str, str]:
    """ZRANGEBYLEX bounds of a tenant's members in `fair` due by `upto_ms`."""
    return f"[{tenant} ", f"[{tenant} {upto_ms:013d} ~"


# --- deliveries ---------------------------------------------------------------------


def delivery_id(task_id: str, key: str) -> str:
    """A delivery's id: 'dlv_', its task's compact id and its key in the task's record."""
    return "dlv_" + compact_id(task_id) + key


def delivery_task(delivery_id: str) -> tuple[str, str]:
    """The task id and the key in its record a delivery id names (see is_delivery_id
    in relay.store.deliveries for the shape it must have)."""
    return full_id(delivery_id[4:26]), delivery_id[26:]


def delivery_shard(delivery_id: str) -> int:
    return shard_of(delivery_task(delivery_id)[0])


# --- tenants ------------------------------------------------------------------------


def tenant_prefix(tenant: str) -> str:
    return f"{PREFIX}{{t:{tenant}}}:"


def tenant_tasks(tenant: str) -> str:
    return tenant_prefix(tenant) + "tasks"


# A worker turns each id it polls back and forth a few times within a poll: remembering
# the last few thousand costs little and spares parsing a UUID each time.
@functools.lru_cache(maxsize=16384)
def compact_id(task_id: str) -> str:
    """A task id (a UUID) in 22 characters: its 16 bytes in URL-safe base64."""
    return base64.urlsafe_b64encode(uuid.UUID(task_id).bytes)[:22].decode()


@functools.lru_cache(maxsize=16384)
def full_id(compact: str) -> str:
    """The task id (a UUID, as registered) of a `compact_id`."""
    # str(uuid.UUID(bytes=...)) spelled out: the same text, in a third of the time.
    h = base64.urlsafe_b64decode(compact + "==").hex()
    if len(h) != 32:
        raise ValueError(f"not a compact task id: {compact!r}")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


LISTED_TIME = 8  # base-36 digits of an entry's ms: enough until the year 2059


def listed(task_id: str, registered_ms: int) -> str:
    """A task's entry in a tenant's listing (`tenant_tasks`)."""
    return compact_id(task_id) + _base36(registered_ms).rjust(LISTED_TIME, "0")


def listed_task(entry: str) -> tuple[str, int]:
    """The task id and registration time (ms) of a listing entry."""
    return full_id(entry[:22]), int(entry[22:], 36)


def _base36(n: int) -> str:
    digits = ""
    while True:
        n, d = divmod(n, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + digits
        if n == 0:
            return digits


def active_tasks(tenant: str) -> str:
    return tenant_prefix(tenant) + "active"


def failed_deliveries(tenant: str) -> str:
    return tenant_prefix(tenant) + "failed"


def held_for_tenant(tenant: str) -> str:
    return tenant_prefix(tenant) + "held"


def share_parked(tenant: str) -> str:
    return tenant_prefix(tenant) + "share"


# --- receivers ----------------------------------------------------------------------


def receiver(origin: str) -> str:
    return f"{PREFIX}{{r:{origin}}}"


def receiver_keys(origin: str) -> list[str]:
    """A receiver's breaker hash and its in-flight, parked and retrying sets."""
    key = receiver(origin)
    return [key, key + ":f", key + ":q", key + ":r"]
