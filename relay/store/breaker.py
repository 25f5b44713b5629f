"""Per-receiver bounds and the circuit breaker, shared by every worker process.

A receiver is a webhook URL's origin (`scheme://host:port`). Its state is a
hash in Redis (see `relay.store.keys`), so all workers see one breaker and
one in-flight bound per receiver:

- **In-flight bound.** At most `limit` attempts to one receiver are in flight
  across all workers. The limit is a window: it starts at `WINDOW_START`,
  grows by one per accepted attempt up to `WINDOW_MAX`, halves its growth on
  a failure, and starts again after `IDLE` seconds without a success, so a
  receiver that just died is not sent a full window at once. After a failure
  it is also never more than the failures still needed to hold the receiver.
- **Hold.** `hold_after` failures in a row (timeouts, refused connections,
  5xx, 408, 429) hold the receiver for `HOLD_START` seconds, doubling after
  each failed probe up to `HOLD_MAX`.
- **Probe.** Once a hold ends, one delivery at a time (a lease) is sent as
  the probe (a redelivered one, not yet attempted, may probe at once: someone
  asked for it now); a success ends the hold and the window starts again from
  `WINDOW_START`: the backlog goes out at a pace that ramps up with the
  receiver's own answers.

A delivery whose attempt failed is noted as retrying there; when a hold ends,
those are released with the parked ones instead of waiting out their retry
delays. A claimed delivery that cannot go now (held, or over the bound) is parked
without spending an attempt: it goes into the receiver's parked set and its
due time moves ahead (the probe's time, or `PARK` to twice that as a safety
net in case the finish that would release it never comes). A finished attempt that
frees a slot releases the oldest parked ones. While held, a delivery whose
series began longer ago than the retry schedule's whole span is answered
`expired`, and the caller ends it failed.

The caller may also bound each tenant's attempts (its share of a worker's slots,
`relay.delivery.shares`): a delivery that would go, or probe, past its tenant's
bound is answered `share` and parked in that tenant's set instead of the
receiver's, with the same safety net; the caller releases the oldest of them,
through `record`, when that share has room again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from relay.store import keys
from relay.store.calls import Call, run, script
from relay.store.redis import Client, to_ms
from relay.store.shards import grouped

if TYPE_CHECKING:
    from relay.delivery.receivers import Verdict

HOLD_AFTER = 5  # failures in a row that hold a receiver (RELAY_RECEIVER_HOLD_AFTER)
HOLD_START = 1.0  # seconds of the first hold
HOLD_MAX = 15.0  # seconds between two probes at most
WINDOW_START = 2  # attempts in flight to a receiver not yet known to be well
WINDOW_MAX = 32  # attempts in flight to one receiver, all workers together
IDLE = 1.0  # seconds without a success after which the window starts again
PARK = 30.0  # seconds a parked delivery waits at most for the release that frees it
STATE_TTL = 600.0  # seconds a receiver's state outlives its last attempt

Admission = Literal["go", "probe", "held", "busy", "share", "expired", "lost"]

# Every breaker script works on one receiver's keys (keys.receiver_keys: its hash, its
# in-flight, parked and retrying sets, one hash tag) and answers what the caller must
# then write elsewhere: the due times of deliveries (their shards), the tenants' notes
# and share sets (their tags) and the global set of held receivers.
_COMMON = """
local now = tonumber(ARGV[1])
local threshold, w0, wmax = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local idle, park, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])

-- f: failures in a row; ok: window growth; lok: last success; hs: held since (0: not
-- held); hu: next probe allowed at; h: current hold; pl, pd: the probe's lease and
-- member; pc: the parked delivery scheduled to come back as the next probe.
local FIELDS = {'f', 'ok', 'lok', 'hs', 'hu', 'h', 'pl', 'pd', 'pc'}

local function load()
  local r = redis.call('HMGET', KEYS[1], unpack(FIELDS))
  local s = {key = KEYS[1], flying = KEYS[2], parked = KEYS[3], retrying = KEYS[4]}
  for i, name in ipairs(FIELDS) do s[name] = tonumber(r[i] or '0') or 0 end
  s.pd, s.pc = r[8] or '', r[9] or ''
  return s
end

local function save(s)
  redis.call('HSET', s.key, 'f', s.f, 'ok', s.ok, 'lok', s.lok, 'hs', s.hs, 'hu', s.hu,
    'h', s.h, 'pl', s.pl, 'pd', s.pd, 'pc', s.pc)
  redis.call('PEXPIRE', s.key, ttl)
end

local function in_flight(s)
  redis.call('ZREMRANGEBYSCORE', s.flying, '-inf', now)
  return redis.call('ZCARD', s.flying)
end

local function limit(s)
  local window = w0
  if now - s.lok <= idle then window = math.min(wmax, w0 + s.ok) end
  if threshold > 0 and s.f > 0 then window = math.min(window, math.max(threshold - s.f, 1)) end
  return window
end

-- The oldest parked delivery becomes the next probe, due at the hold's end: PROBE is
-- answered for the caller to move its due time (if it still has one).
local PROBE = {}
local function schedule_probe(s)
  local first = redis.call('ZRANGE', s.parked, 0, 0)[1]
  s.pc = first or ''
  if first then PROBE = {first, s.hu} end
end
"""

# KEYS: keys.receiver_keys(origin)
# ARGV: now, hold_after, window start, window max, idle ms, park ms, ttl ms, span ms,
#       then per delivery: id, lease, created ms, series start ms, fresh (1: a redelivered
#       series not yet attempted), fits (1: its tenant has room in its share)
# Returns {answers, wakes, probe, held}: per delivery its admission and, for one parked
# (held, busy, share), when it is due again (ms); probe {delivery id, due ms} or {};
# held 1 when the receiver is held.
ADMIT = (
    _COMMON
    + """
local span = tonumber(ARGV[8])
local s = load()
local held = s.hs > 0
local free = 0
if not held then free = limit(s) - in_flight(s) end
local dirty, flying, parked, reschedule = false, false, false, false
local any_parked = redis.call('EXISTS', s.parked) == 1
local answers, wakes = {}, {}
for i = 9, #ARGV, 6 do
  local did, lease, created = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local ends, asked, fits = tonumber(ARGV[i + 3]) + span, ARGV[i + 4] == '1', ARGV[i + 5] == '1'
  local answer
  if held and now > ends then
    answer = 'expired'
  elseif held and (now >= s.hu or asked) and s.pl <= now then
    answer = fits and 'probe' or 'share'
  elseif free > 0 then
    answer = fits and 'go' or 'share'
  elseif held then
    answer = 'held'
  else
    answer = 'busy'
  end
  if answer == 'probe' then s.pl, s.pd, dirty = tonumber(lease), did .. '|' .. lease, true end
  if answer == 'go' then free = free - 1 end
  if answer == 'go' or answer == 'probe' then
    redis.call('ZADD', s.flying, lease, did .. '|' .. lease)
    flying = true
  end
  local wake = 0
  if answer == 'held' or answer == 'busy' or answer == 'share' then
    -- Safety nets spread over a second PARK by the id's last hex digits, so that a
    -- big parked backlog never comes back all at once.
    local spread = park * ((tonumber(string.sub(did, -5), 16) or 0) / 1048576)
    wake = now + park + spread
    if answer == 'held' then
      if s.pc == '' and now < s.hu then
        wake, s.pc, dirty = s.hu, did, true  -- this one comes back as the probe
      else
        wake = math.max(s.hu, s.pl, now) + park + spread
      end
      -- Back in time to end failed when its span has passed.
      wake = math.min(wake, ends + 1)
    end
    if answer == 'share' then
      -- Over its tenant's share: it waits for room in that share (the caller parks it
      -- in the tenant's set), not for this receiver.
      if any_parked then redis.call('ZREM', s.parked, did) end
    else
      redis.call('ZADD', s.parked, created, did)
      parked = true
    end
  else
    if any_parked then redis.call('ZREM', s.parked, did) end
    if did == s.pc then
      s.pc, dirty = '', true
      if held and answer ~= 'probe' then reschedule = true end
    end
  end
  answers[#answers + 1] = answer
  wakes[#wakes + 1] = wake
end
-- The delivery meant to come back as the probe will not be it: name another.
if reschedule then
  schedule_probe(s)
  dirty = true
end
if dirty then save(s) end
if flying then redis.call('PEXPIRE', s.flying, ttl) end
if parked then redis.call('PEXPIRE', s.parked, ttl) end
return {answers, wakes, PROBE, held and 1 or 0}
"""
)

# KEYS: keys.receiver_keys(origin)
# ARGV: now, hold_after, window start, window max, idle ms, park ms, ttl ms,
#       hold start ms, hold max ms, then per attempt: in-flight member,
#       verdict up|down|none, created ms of its delivery
# Returns {holds, probes up, probes down, {parked delivery ids released: due now},
#          probe, held (1: held now), recovered (1: the hold just ended)}.
RECORD = (
    _COMMON
    + """
local hold_start, hold_max = tonumber(ARGV[8]), tonumber(ARGV[9])
local holds, ups, downs, released, recovered = 0, 0, 0, {}, 0
local s = load()
local any_retrying = redis.call('EXISTS', s.retrying) == 1
for i = 10, #ARGV, 3 do
  local member, verdict, created = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  redis.call('ZREM', s.flying, member)
  local did = string.match(member, '^(.*)|')
  local probe = s.pd == member
  if probe then s.pd, s.pl = '', 0 end
  if verdict == 'up' then
    s.f, s.lok = 0, now
    if any_retrying then redis.call('ZREM', s.retrying, did) end
    if s.hs > 0 then
      -- Back: the window starts again, so the backlog ramps up; deliveries waiting
      -- for a retry after failing here wait no longer.
      s.hs, s.hu, s.h, s.pc, s.ok = 0, 0, 0, '', 0
      recovered = 1
      redis.call('ZUNIONSTORE', s.parked, 2, s.parked, s.retrying, 'AGGREGATE', 'MIN')
      redis.call('DEL', s.retrying)
      redis.call('PEXPIRE', s.parked, ttl)
      if probe then ups = ups + 1 end
    else
      s.ok = math.min(s.ok + 1, wmax)
    end
  elseif verdict == 'down' then
    s.f, s.ok = s.f + 1, math.floor(s.ok / 2)
    redis.call('ZADD', s.retrying, created, did)
    redis.call('PEXPIRE', s.retrying, ttl)
    any_retrying = true
    if s.hs > 0 then
      if probe then
        downs = downs + 1
        s.h = math.min(s.h * 2, hold_max)
        s.hu = now + s.h
        schedule_probe(s)
      end
    elseif threshold > 0 and s.f >= threshold then
      holds = holds + 1
      s.hs, s.h, s.ok = now, hold_start, 0
      s.hu = now + s.h
      schedule_probe(s)
    end
  end
end
save(s)
if s.hs == 0 then
  local free = limit(s) - in_flight(s)
  while #released < free do
    local popped = redis.call('ZPOPMIN', s.parked)
    if #popped == 0 then break end
    released[#released + 1] = popped[1]
  end
end
return {holds, ups, downs, released, PROBE, s.hs > 0 and 1 or 0, recovered}
"""
)

# KEYS: the tenant's share set (keys.share_parked)
# ARGV: how many to release
# Returns {delivery ids released: due now, 1 if none is left parked over the share}.
RELEASE_SHARE = """
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[1]))
local ids = {}
for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
return {ids, redis.call('EXISTS', KEYS[1]) == 0 and 1 or 0}
"""

# KEYS: one shard's delivery queue (keys.delivery_due)
# ARGV: per delivery: id, lease ('' for any), due ms
# Moves each delivery's due time, if it is still queued (and, given a lease, still
# under that claim, which it gives up). Returns how many moved.
RESCHEDULE = """
local due, moved = KEYS[1], 0
for i = 1, #ARGV, 3 do
  local did, lease, at = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local score = redis.call('ZSCORE', due, did)
  if score and (lease == '' or tonumber(score) == tonumber(lease)) then
    redis.call('ZADD', due, at, did)
    moved = moved + 1
  end
end
return moved
"""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A claimed delivery asking for a slot at its receiver."""

    delivery_id: str
    lease: int
    tenant: str
    origin: str
    created: int = 0  # ms
    series_start: int = 0  # ms: its attempt series ends `span` after this
    fresh: bool = False  # a redelivered series not yet attempted: it may probe at once

    @property
    def member(self) -> str:
        """Its entry among the receiver's attempts in flight: one per claim."""
        return f"{self.delivery_id}|{self.lease}"


@dataclasses.dataclass(frozen=True)
class Report:
    """How one admitted attempt went, for its receiver's breaker."""

    candidate: Candidate
    verdict: Verdict


@dataclasses.dataclass(frozen=True)
class Recorded:
    holds: int = 0
    probes_up: int = 0
    probes_down: int = 0
    released: int = 0
    drained: tuple[str, ...] = ()  # tenants released from with none left over their share


@dataclasses.dataclass(frozen=True)
class HeldReceiver:
    origin: str
    held_since: float
    next_probe_at: float
    failures: int


@dataclasses.dataclass
class _Writes:
    """What breaker scripts answered for other tags, written after them in one round."""

    due: list[tuple[str, str, int]] = dataclasses.field(default_factory=list)  # id, lease, at
    share_add: list[tuple[str, str, int]] = dataclasses.field(default_factory=list)
    share_remove: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    notes: set[tuple[str, str]] = dataclasses.field(default_factory=set)  # tenant, origin
    held: set[str] = dataclasses.field(default_factory=set)
    recovered: set[str] = dataclasses.field(default_factory=set)

    def probe(self, reply: list[str]) -> None:
        if reply:
            self.due.append((str(reply[0]), "", int(reply[1])))


class Receivers:
    def __init__(self, redis: Client, *, hold_after: int = HOLD_AFTER) -> None:
        self.redis = redis
        self.hold_after = hold_after
        self._admit = script(redis, ADMIT)
        self._record = script(redis, RECORD)
        self._release_share = script(redis, RELEASE_SHARE)
        self._reschedule = script(redis, RESCHEDULE)

    def _common(self, now: float) -> list[str | int | float]:
        return [
            to_ms(now),
            self.hold_after,
            WINDOW_START,
            WINDOW_MAX,
            to_ms(IDLE),
            to_ms(PARK),
            to_ms(STATE_TTL),
        ]

    async def admit(
        self,
        candidates: Sequence[Candidate],
        now: float,
        *,
        span: float,
        room: Mapping[str, int] | None = None,
    ) -> list[Admission]:
        """One admission per candidate, in order, in one script call per receiver.
        `room`: how many attempts each tenant it names may still start (its first that
        many candidates fit; beyond them: `share`)."""
        if not candidates:
            return []
        left = dict(room or {})
        fits = []
        for c in candidates:
            fits.append(left.get(c.tenant, 1) > 0)
            if c.tenant in left:
                left[c.tenant] -= 1
        groups = grouped(enumerate(candidates), lambda c: c[1].origin)
        calls = []
        for origin, members in groups:
            args = [*self._common(now), to_ms(span)]
            for index, c in members:
                start = c.series_start or c.created or to_ms(now)
                args += [c.delivery_id, c.lease, c.created or to_ms(now), start]
                args += [1 if c.fresh else 0, 1 if fits[index] else 0]
            calls.append(Call(self._admit, keys.receiver_keys(origin), args))
        answers: list[Admission] = ["lost"] * len(candidates)
        writes = _Writes()
        for (origin, members), reply in zip(groups, await run(self.redis, calls), strict=True):
            replies, wakes, probe, held = reply
            writes.probe(probe)
            if int(held):
                writes.held.add(origin)
            for (index, c), answer, wake in zip(members, replies, wakes, strict=True):
                answers[index] = answer
                if answer in ("held", "busy", "share"):
                    writes.due.append((c.delivery_id, str(c.lease), int(wake)))
                if answer == "share":
                    writes.share_add.append((c.tenant, c.delivery_id, c.created))
                else:
                    writes.share_remove.append((c.tenant, c.delivery_id))
                if answer == "held":
                    writes.notes.add((c.tenant, origin))
        await self._write(writes, now)
        return answers

    async def record(
        self, reports: Iterable[Report], now: float, *, release: Mapping[str, int] | None = None
    ) -> Recorded:
        """Note how attempts went; `release`: how many deliveries parked over each
        tenant's share may go now."""
        groups = grouped(reports, lambda r: r.candidate.origin)
        if not groups and not release:
            return Recorded()
        calls = []
        for origin, members in groups:
            args = [*self._common(now), to_ms(HOLD_START), to_ms(HOLD_MAX)]
            for r in members:
                args += [r.candidate.member, r.verdict, r.candidate.created]
            calls.append(Call(self._record, keys.receiver_keys(origin), args))
        tenants = list((release or {}).items())
        calls += [
            Call(self._release_share, [keys.share_parked(tenant)], [count])
            for tenant, count in tenants
        ]
        replies = await run(self.redis, calls)
        writes = _Writes()
        holds = ups = downs = 0
        for (origin, members), reply in zip(groups, replies[: len(groups)], strict=True):
            held_now, probes_up, probes_down, released, probe, held, recovered = reply
            holds, ups, downs = (
                holds + int(held_now),
                ups + int(probes_up),
                downs + int(probes_down),
            )
            writes.due += [(str(d), "", to_ms(now)) for d in released]
            writes.probe(probe)
            if int(held):
                writes.held.add(origin)
            if int(recovered):
                writes.recovered.add(origin)
            if int(held_now):
                writes.notes.update((r.candidate.tenant, origin) for r in members)
        drained = []
        for (tenant, _count), (released, empty) in zip(
            tenants, replies[len(groups) :], strict=True
        ):
            writes.due += [(str(d), "", to_ms(now)) for d in released]
            if int(empty):
                drained.append(tenant)
        moved = await self._write(writes, now, clean=True)
        return Recorded(holds, ups, downs, moved, tuple(drained))

    async def _write(self, writes: _Writes, now: float, *, clean: bool = False) -> int:
        """What the scripts answered for other tags; returns how many due times moved."""
        calls = [
            Call(
                self._reschedule,
                [keys.delivery_due(shard)],
                [v for entry in entries for v in entry],
            )
            for shard, entries in grouped(writes.due, lambda e: keys.delivery_shard(e[0]))
        ]
        moved = sum(int(n) for n in await run(self.redis, calls))
        ttl = to_ms(STATE_TTL)
        async with self.redis.pipeline(transaction=False) as pipe:
            for tenant, delivery_id, created in writes.share_add:
                pipe.zadd(keys.share_parked(tenant), {delivery_id: created})
                pipe.pexpire(keys.share_parked(tenant), ttl)
            for tenant, pairs in grouped(writes.share_remove, lambda p: p[0]):
                pipe.zrem(keys.share_parked(tenant), *(did for _, did in pairs))
            for tenant, origin in writes.notes:
                pipe.zadd(keys.held_for_tenant(tenant), {origin: to_ms(now)})
                pipe.pexpire(keys.held_for_tenant(tenant), ttl)
            if clean:
                pipe.zremrangebyscore(keys.HELD_RECEIVERS, "-inf", to_ms(now) - ttl)
            for origin in writes.recovered - writes.held:
                pipe.zrem(keys.HELD_RECEIVERS, origin)
            if writes.held:
                pipe.zadd(keys.HELD_RECEIVERS, dict.fromkeys(writes.held, to_ms(now)))
                pipe.pexpire(keys.HELD_RECEIVERS, ttl)
            if len(pipe):
                await pipe.execute()
        return moved


async def held_receivers(redis: Client, tenant: str, now: float) -> list[HeldReceiver]:
    """The held receivers this tenant's deliveries wait for, longest held first."""
    origins = await redis.zrangebyscore(
        keys.held_for_tenant(tenant), to_ms(now - STATE_TTL), "+inf"
    )
    if not origins:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for origin in origins:
            pipe.hmget(keys.receiver(origin), ["hs", "hu", "f"])
        states = await pipe.execute()
    held = [
        HeldReceiver(str(o), int(hs) / 1000, int(hu) / 1000, int(f or 0))
        for o, (hs, hu, f) in zip(origins, states, strict=True)
        if hs and int(hs) > 0
    ]
    return sorted(held, key=lambda h: (h.held_since, h.origin))
