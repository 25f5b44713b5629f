"""Every Redis key the relay uses, in one place.

Per task (shared by all tenants):
  task:{id}            hash  state (TaskState JSON), polls, final_event, final_type,
                             r:{tenant} -> that tenant's registration (JSON) for each,
                             m:{tenant} -> its metadata (JSON; no script decodes it),
                             u:{tenant} for each that said `upstream_webhook: true`,
                             nw (how many did not: 0 polls the task as a safety net),
                             sg (re-fetches the latest upstream callback still allows)
  gone:{id}            hash  tenant -> rid of a registration whose receiver answered 410
  event:{event_id}     string Event JSON (type, time, state snapshot, polls)
Per tenant and task:
  dlvs:{tenant}:{id}   list  every delivery id, oldest first (the deliveries listing)
  outbox:{tenant}:{id} list  undelivered delivery ids in order; only the head is scheduled
Per delivery:
  dlv:{delivery_id}          hash  task, tenant, rid, event, type, status, attempt, ...
  dlv:{delivery_id}:attempts list  attempt records (JSON), newest last, bounded
Per tenant:
  tenant:{tenant}      zset  task id -> registration time (listing, retention)
  active:{tenant}      set   the tenant's tracked tasks not yet final (RELAY_TENANT_MAX_TASKS)
  tdue:{tenant}        zset  task id -> next poll time (ms), the tenant's copy of `due`, read
                             to share the rate fairly when more is due than it allows
  failed:{tenant}      zset  delivery id -> when it failed (the operator's "what is stuck")
Global:
  due                  zset  task id -> next poll time (ms); a claim pushes it a lease ahead
  due_tenants          set   tenants with a non-empty tdue:{tenant}
  due_turn             string which tenant the next contended claim starts with
  dlv_due              zset  delivery id -> next attempt time (ms); claimed the same way
  upstream:bucket      hash  the shared token bucket for upstream calls
  upstream:paused      string ms until which no worker calls the upstream (Retry-After, 401)
  upstream:unauthorized string when the upstream last refused the key (cleared on success)
  metrics              hash  counters of every process (see relay.metrics)
  finals               channel pub/sub: the id of each task as it becomes final or a tenant
                             deletes it (wakes /wait; see relay.api.waiters)
  tenants              set   every tenant that ever registered (for the retention sweep)
  rcv_held             zset  origin of each held receiver -> when last touched (ms)
  sweep_lock           string held (SET NX PX) by the one worker running the sweep job
  worker:{name}        string a worker's heartbeat, expiring a while after its last report
Per receiver (a webhook URL's scheme://host:port; see relay.store.breaker), each
expiring `STATE_TTL` after its last write:
  rcv:{origin}         hash  the breaker: failures in a row, window, hold, probe lease
  rcv:{origin}:f       zset  attempts in flight, `delivery_id|lease` -> lease end (ms)
  rcv:{origin}:q       zset  parked delivery ids -> creation time (ms): waiting to go
  rcv:{origin}:r       zset  delivery ids whose last attempt there failed -> creation (ms)
  rcv_held:{tenant}    zset  origin -> when that tenant's deliveries last waited for it
  rcv:share:{tenant}   zset  its delivery ids parked over its share of a worker's slots
                             -> creation (ms) (see relay.delivery.shares)
"""

from __future__ import annotations

PREFIX = "relay:"

DUE = PREFIX + "due"
DELIVERY_DUE = PREFIX + "dlv_due"
UPSTREAM_BUCKET = PREFIX + "upstream:bucket"
UPSTREAM_PAUSED = PREFIX + "upstream:paused"
UPSTREAM_UNAUTHORIZED = PREFIX + "upstream:unauthorized"
METRICS = PREFIX + "metrics"
TENANTS = PREFIX + "tenants"
DUE_TENANTS = PREFIX + "due_tenants"
DUE_TURN = PREFIX + "due_turn"
FINALS = PREFIX + "finals"  # pub/sub channel: the id of each task as it becomes final
HELD_RECEIVERS = PREFIX + "rcv_held"
SWEEP_LOCK = PREFIX + "sweep_lock"


def worker_health(name: str) -> str:
    return f"{PREFIX}worker:{name}"


def task(task_id: str) -> str:
    return f"{PREFIX}task:{task_id}"


def registration_field(tenant: str) -> str:
    """The field of a task's hash that holds one tenant's registration."""
    return f"r:{tenant}"


def metadata_field(tenant: str) -> str:
    """The field of a task's hash that holds one tenant's metadata (never read by Lua)."""
    return f"m:{tenant}"


def gone(task_id: str) -> str:
    return f"{PREFIX}gone:{task_id}"


def event(event_id: str) -> str:
    return f"{PREFIX}event:{event_id}"


def deliveries(tenant: str, task_id: str) -> str:
    return f"{PREFIX}dlvs:{tenant}:{task_id}"


def outbox(tenant: str, task_id: str) -> str:
    return f"{PREFIX}outbox:{tenant}:{task_id}"


def delivery(delivery_id: str) -> str:
    return f"{PREFIX}dlv:{delivery_id}"


def attempts(delivery_id: str) -> str:
    return f"{PREFIX}dlv:{delivery_id}:attempts"


def tenant_tasks(tenant: str) -> str:
    return f"{PREFIX}tenant:{tenant}"


def active_tasks(tenant: str) -> str:
    return f"{PREFIX}active:{tenant}"


def tenant_due(tenant: str) -> str:
    return f"{PREFIX}tdue:{tenant}"


def failed_deliveries(tenant: str) -> str:
    return f"{PREFIX}failed:{tenant}"


def receiver(origin: str) -> str:
    return f"{PREFIX}rcv:{origin}"


def held_for_tenant(tenant: str) -> str:
    return f"{PREFIX}rcv_held:{tenant}"
