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
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, TypeVar

from redis.asyncio import Redis

from relay.store import keys
from relay.store.redis import to_ms

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

_COMMON = """
local P, now = ARGV[1], tonumber(ARGV[2])
local threshold, w0, wmax = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local idle, park, ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local due, held_all = P .. 'dlv_due', P .. 'rcv_held'

-- f: failures in a row; ok: window growth; lok: last success; hs: held since (0: not
-- held); hu: next probe allowed at; h: current hold; pl, pd: the probe's lease and
-- member; pc: the parked delivery scheduled to come back as the next probe.
local FIELDS = {'f', 'ok', 'lok', 'hs', 'hu', 'h', 'pl', 'pd', 'pc'}

local function load(o)
  local key = P .. 'rcv:' .. o
  local r = redis.call('HMGET', key, unpack(FIELDS))
  local s = {key = key, flying = key .. ':f', parked = key .. ':q', retrying = key .. ':r'}
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

-- Schedule the oldest parked delivery as the next probe, at the hold's end.
local function schedule_probe(s)
  s.pc = ''
  while true do
    local first = redis.call('ZRANGE', s.parked, 0, 0)[1]
    if not first then return end
    if redis.call('ZSCORE', due, first) then
      redis.call('ZADD', due, s.hu, first)
      s.pc = first
      return
    end
    redis.call('ZREM', s.parked, first)
  end
end

-- A tenant's deliveries parked over its share of a worker's slots -> creation (ms).
local function share_key(tenant) return P .. 'rcv:share:' .. tenant end

local function note_tenant(tenant, o)
  local key = P .. 'rcv_held:' .. tenant
  redis.call('ZADD', key, now, o)
  redis.call('PEXPIRE', key, ttl)
end
"""

# ARGV: prefix, now, hold_after, window start, window max, idle ms, park ms, ttl ms,
#       span ms, k, then k times (tenant, attempts it may still start in the asking
#       worker), then per receiver: origin, n, and n times (delivery id, lease, tenant)
# Returns one admission per delivery, in order.
ADMIT = (
    _COMMON
    + """
local span = tonumber(ARGV[9])
local room, i = {}, 11
for _ = 1, tonumber(ARGV[10]) do
  room[ARGV[i]] = tonumber(ARGV[i + 1])
  i = i + 2
end
-- Whether a tenant has deliveries parked over its share (asked once per call).
local over = {}
local function share_parked(tenant)
  if over[tenant] == nil then over[tenant] = redis.call('EXISTS', share_key(tenant)) == 1 end
  return over[tenant]
end

-- When this delivery's series ends for good: the span after its start (its creation,
-- or when a redelivered series was first seen here); and whether it is a redelivered
-- series not yet attempted (someone asked for it now: it may probe at once).
local function series_of(dkey)
  local d = redis.call('HMGET', dkey, 'created', 'series', 'sn', 'ss', 'attempt')
  local start = tonumber(d[1] or now) or now
  if d[2] and d[2] ~= '1' then
    if d[3] ~= d[2] then
      redis.call('HSET', dkey, 'sn', d[2], 'ss', now)
      start = now
    else
      start = tonumber(d[4]) or now
    end
  end
  return start + span, d[2] and d[2] ~= '1' and d[5] == '0'
end

local out, shared = {}, {}
while i <= #ARGV do
  local o, n = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local s = load(o)
  local held = s.hs > 0
  local free = 0
  if not held then free = limit(s) - in_flight(s) end
  local dirty, flying, parked, reschedule = false, false, false, false
  local any_parked = redis.call('EXISTS', s.parked) == 1
  for _ = 1, n do
    local did, lease, tenant = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    i = i + 3
    local dkey = P .. 'dlv:' .. did
    local score = redis.call('ZSCORE', due, did)
    local answer, ends, asked = nil, nil, false
    local fits = (room[tenant] or 1) > 0
    if held and score and tonumber(score) == tonumber(lease) then ends, asked = series_of(dkey) end
    if not score or tonumber(score) ~= tonumber(lease) then
      answer = 'lost'
    elseif held and now > ends then
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
      if room[tenant] then room[tenant] = room[tenant] - 1 end
    end
    if answer ~= 'lost' and answer ~= 'share' and share_parked(tenant) then
      redis.call('ZREM', share_key(tenant), did)
    end
    if answer == 'held' or answer == 'busy' or answer == 'share' then
      -- Safety nets spread over a second PARK by the id's last hex digits, so that a
      -- big parked backlog never comes back all at once.
      local spread = park * ((tonumber(string.sub(did, -5), 16) or 0) / 1048576)
      local wake = now + park + spread
      if answer == 'held' then
        if s.pc == '' and now < s.hu then
          wake, s.pc, dirty = s.hu, did, true  -- this one comes back as the probe
        else
          wake = math.max(s.hu, s.pl, now) + park + spread
        end
        -- Back in time to end failed when its span has passed.
        wake = math.min(wake, ends + 1)
        note_tenant(tenant, o)
      end
      local created = tonumber(redis.call('HGET', dkey, 'created') or now)
      if answer == 'share' then
        -- Over its tenant's share: it waits for room in that share (the caller releases
        -- it), not for this receiver. A probe it was to be stays its, for when it is back.
        redis.call('ZADD', share_key(tenant), created, did)
        over[tenant], shared[tenant] = true, true
        if any_parked then redis.call('ZREM', s.parked, did) end
      else
        redis.call('ZADD', s.parked, created, did)
        parked = true
      end
      redis.call('ZADD', due, wake, did)
      redis.call('HSET', dkey, 'lease', 0)
    else
      if any_parked then redis.call('ZREM', s.parked, did) end
      if did == s.pc then
        s.pc, dirty = '', true
        if held and answer ~= 'probe' then reschedule = true end
      end
    end
    out[#out + 1] = answer
  end
  -- The delivery meant to come back as the probe will not be it: name another.
  if reschedule then schedule_probe(s) end
  if dirty then save(s) end
  if flying then redis.call('PEXPIRE', s.flying, ttl) end
  if parked then redis.call('PEXPIRE', s.parked, ttl) end
  if held then redis.call('ZADD', held_all, now, o) end
end
for tenant in pairs(shared) do redis.call('PEXPIRE', share_key(tenant), ttl) end
return out
"""
)

# ARGV: prefix, now, hold_after, window start, window max, idle ms, park ms, ttl ms,
#       hold start ms, hold max ms, k, then k times (tenant, deliveries parked over its
#       share to release), then per receiver: origin, n, and n times
#       (in-flight member, verdict up|down|none, tenant)
# Returns {receivers held, probes up, probes down, parked deliveries released,
#          {tenants of the k with none left parked over their share}}.
RECORD = (
    _COMMON
    + """
local hold_start, hold_max = tonumber(ARGV[9]), tonumber(ARGV[10])
local holds, ups, downs, released = 0, 0, 0, 0

local function release(parked, free)
  local n = 0
  while n < free do
    local popped = redis.call('ZPOPMIN', parked)
    if #popped == 0 then break end
    if redis.call('ZSCORE', due, popped[1]) then
      redis.call('ZADD', due, now, popped[1])
      n = n + 1
    end
  end
  return n
end

redis.call('ZREMRANGEBYSCORE', held_all, '-inf', now - ttl)
local releases, i = {}, 12
for _ = 1, tonumber(ARGV[11]) do
  releases[#releases + 1] = {ARGV[i], tonumber(ARGV[i + 1])}
  i = i + 2
end
while i <= #ARGV do
  local o, n = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local s = load(o)
  local any_retrying = redis.call('EXISTS', s.retrying) == 1
  for _ = 1, n do
    local member, verdict, tenant = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    i = i + 3
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
        redis.call('ZREM', held_all, o)
        redis.call('ZUNIONSTORE', s.parked, 2, s.parked, s.retrying, 'AGGREGATE', 'MIN')
        redis.call('DEL', s.retrying)
        redis.call('PEXPIRE', s.parked, ttl)
        if probe then ups = ups + 1 end
      else
        s.ok = math.min(s.ok + 1, wmax)
      end
    elseif verdict == 'down' then
      s.f, s.ok = s.f + 1, math.floor(s.ok / 2)
      local created = redis.call('HGET', P .. 'dlv:' .. did, 'created')
      if created then
        redis.call('ZADD', s.retrying, tonumber(created) or now, did)
        redis.call('PEXPIRE', s.retrying, ttl)
        any_retrying = true
      end
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
        note_tenant(tenant, o)
        schedule_probe(s)
      end
    end
  end
  save(s)
  if s.hs > 0 then
    redis.call('ZADD', held_all, now, o)
    redis.call('PEXPIRE', held_all, ttl)
  else
    released = released + release(s.parked, limit(s) - in_flight(s))
  end
end
local drained = {}
for _, r in ipairs(releases) do
  local key = share_key(r[1])
  released = released + release(key, r[2])
  if redis.call('EXISTS', key) == 0 then drained[#drained + 1] = r[1] end
end
return {holds, ups, downs, released, drained}
"""
)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A claimed delivery asking for a slot at its receiver."""

    delivery_id: str
    lease: int
    tenant: str
    origin: str

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


class Receivers:
    def __init__(self, redis: Redis, *, hold_after: int = HOLD_AFTER) -> None:
        self.redis = redis
        self.hold_after = hold_after
        self._admit = redis.register_script(ADMIT)
        self._record = redis.register_script(RECORD)

    def _common(self, now: float) -> list[str | int]:
        return [
            keys.PREFIX,
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
        """One admission per candidate, in order, in one script call. `room`: how many
        attempts each tenant it names may still start (beyond it: `share`)."""
        if not candidates:
            return []
        args = [*self._common(now), to_ms(span), *_pairs(room or {})]
        order: list[int] = []
        for origin, members in _by_origin(enumerate(candidates), lambda c: c[1].origin):
            args += [origin, len(members)]
            for index, c in members:
                args += [c.delivery_id, c.lease, c.tenant]
                order.append(index)
        replies = await self._admit(args=args)
        answers: list[Admission] = ["lost"] * len(candidates)
        for index, reply in zip(order, replies, strict=True):
            answers[index] = reply
        return answers

    async def record(
        self, reports: Iterable[Report], now: float, *, release: Mapping[str, int] | None = None
    ) -> Recorded:
        """Note how attempts went; `release`: how many deliveries parked over each
        tenant's share may go now."""
        grouped = _by_origin(reports, lambda r: r.candidate.origin)
        if not grouped and not release:
            return Recorded()
        args = [*self._common(now), to_ms(HOLD_START), to_ms(HOLD_MAX), *_pairs(release or {})]
        for origin, members in grouped:
            args += [origin, len(members)]
            for r in members:
                args += [r.candidate.member, r.verdict, r.candidate.tenant]
        holds, ups, downs, released, drained = await self._record(args=args)
        return Recorded(int(holds), int(ups), int(downs), int(released), tuple(drained))


async def held_receivers(redis: Redis, tenant: str, now: float) -> list[HeldReceiver]:
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


def _pairs(counts: Mapping[str, int]) -> list[str | int]:
    flat: list[str | int] = [len(counts)]
    for name, count in counts.items():
        flat += [name, count]
    return flat


T = TypeVar("T")


def _by_origin(items: Iterable[T], origin: Callable[[T], str]) -> list[tuple[str, list[T]]]:
    groups: defaultdict[str, list[T]] = defaultdict(list)
    for item in items:
        groups[origin(item)].append(item)
    return list(groups.items())
