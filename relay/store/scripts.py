"""Every Lua script the relay runs, in one place.

Each script is one atomic step of the relay's life: a registration, a claim
of due polls or deliveries, the write of a poll's outcome with the events it
makes, the end of a delivery attempt. Atomic steps are what lets any process
die at any moment without losing or doubling an event.

Every script touches the keys of one hash slot (see `relay.store.keys`): the
shard scripts take their shard's queues as KEYS (`SHARD_KEYS`: due, dlv_due,
due_tenants, due_turn) and its key prefix as ARGV[1], from which they name the
keys of the shard's tasks and deliveries; what lives under a tenant's, a
receiver's or no tag is written by the caller in calls of its own, from what
these scripts answer. Times are integer unix milliseconds.
"""

from __future__ import annotations

# What KEYS every shard script takes, in order.
SHARD_KEYS = ("due", "dlv_due", "due_tenants", "due_turn")

# Shared by every script that registers, polls or ends a task: a task's tenants, and
# each tenant's bookkeeping of its tracked tasks. Every such script takes the shard's
# key prefix as ARGV[1] and SHARD_KEYS as KEYS.
_TENANTS = """
local P = ARGV[1]
local DUE, DLV_DUE, DUE_TENANTS, DUE_TURN = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

-- The tenants registered for a task: its hash's fields named 'r:<tenant>'.
local function tenants_of(tkey)
  local found = {}
  for _, field in ipairs(redis.call('HKEYS', tkey)) do
    if string.sub(field, 1, 2) == 'r:' then found[#found + 1] = string.sub(field, 3) end
  end
  return found
end

-- A tenant's own copy of its tasks' poll times (`tdue:<tenant>`), read only when more
-- polls are due than the rate allows, to share the rate fairly (CLAIM_POLLS).
local function tenant_due(tenant, score, id)
  redis.call('ZADD', P .. 'tdue:' .. tenant, score, id)
  redis.call('SADD', DUE_TENANTS, tenant)
end

local function tenant_done(tenant, id)
  local tdue = P .. 'tdue:' .. tenant
  redis.call('ZREM', tdue, id)
  if redis.call('ZCARD', tdue) == 0 then redis.call('SREM', DUE_TENANTS, tenant) end
end

-- The tenant no longer tracks the task (it ended, or the tenant deleted it): it
-- leaves the tenant's copy of the poll times here, and its quota (a key of the
-- tenant's) through the caller, which reads UNTRACKED ('<task id> <tenant>' each).
local UNTRACKED = {}
local function untrack(tenant, id)
  UNTRACKED[#UNTRACKED + 1] = id .. ' ' .. tenant
  tenant_done(tenant, id)
end
"""

# Shared by the scripts that make events: create one delivery per subscriber
# that asked for the event type and has a webhook URL.
_FAN_OUT = (
    _TENANTS
    + """

-- A delivery id is its shard (two hex digits: the prefix's number) and 24 of a hash.
local SHARD_HEX = string.format('%02x', tonumber(string.match(P, '{s(%d+)}')))

local function make_delivery(task_id, tenant, reg, event_id, etype, now, final)
  local digest = redis.sha1hex(event_id .. '|' .. tenant .. '|' .. reg.rid)
  local suffix = SHARD_HEX .. string.sub(digest, 1, 24)
  local did = 'dlv_' .. suffix
  local dkey = P .. 'dlv:' .. did
  local listing = P .. 'dlvs:' .. tenant .. ':' .. task_id
  local obox = P .. 'outbox:' .. tenant .. ':' .. task_id
  if final then
    -- A progress delivery still waiting when the final event is made is superseded;
    -- one in flight finishes its attempt first, so the order is kept.
    local waiting = redis.call('LRANGE', obox, 0, -1)
    for i, other in ipairs(waiting) do
      local okey = P .. 'dlv:' .. other
      if redis.call('HGET', okey, 'type') == 'task.progress' then
        local lease = tonumber(redis.call('HGET', okey, 'lease') or '0')
        if i == 1 and lease > now then
          redis.call('HSET', okey, 'superseded', '1')
        else
          redis.call('LREM', obox, 1, other)
          redis.call('LREM', listing, 1, other)
          redis.call('ZREM', DLV_DUE, other)
          redis.call('DEL', okey, okey .. ':attempts')
        end
      end
    end
  end
  redis.call('HSET', dkey, 'task', task_id, 'tenant', tenant, 'rid', reg.rid,
    'event', event_id, 'type', etype, 'status', 'pending', 'attempt', '0',
    'series', '1', 'webhook_id', 'msg_' .. suffix, 'created', now)
  redis.call('RPUSH', listing, did)
  redis.call('RPUSH', obox, did)
  if redis.call('LINDEX', obox, 0) == did then
    redis.call('ZADD', DLV_DUE, now, did)
  end
end

local DEFAULT_EVENTS = {'task.succeeded', 'task.failed', 'task.timed_out'}

local function wants(reg, etype)
  if reg.url == nil or reg.url == cjson.null then return false end
  for _, e in ipairs(reg.ev or DEFAULT_EVENTS) do
    if e == etype then return true end
  end
  return false
end

-- Registrations set aside by fan_out because they could not be read: one bad
-- registration must not stop the event reaching the task's other subscribers.
local SKIPPED = {}

-- Returns how many deliveries were made.
local function fan_out(task_id, event_id, etype, now, final, only_tenant)
  local tkey = P .. 'task:' .. task_id
  local gone = P .. 'gone:' .. task_id
  local made = 0
  local tenants = tenants_of(tkey)
  if only_tenant ~= '' then tenants = {only_tenant} end
  for _, tenant in ipairs(tenants) do
    local raw = redis.call('HGET', tkey, 'r:' .. tenant)
    local readable, reg = false, nil
    if raw then readable, reg = pcall(cjson.decode, raw) end
    if raw and not readable then
      SKIPPED[#SKIPPED + 1] = task_id .. ' ' .. tenant
    elseif raw then
      if wants(reg, etype) and redis.call('HGET', gone, tenant) ~= reg.rid then
        make_delivery(task_id, tenant, reg, event_id, etype, now, final)
        made = made + 1
      end
    end
  end
  return made
end
"""
)

# KEYS: SHARD_KEYS of the task's shard
# ARGV: shard prefix, task_id, tenant, registration JSON, initial state JSON, now,
#       upstream webhook (1: the upstream calls back for this registration, else 0),
#       may track (1: the tenant's quota has room for it, see RESERVE; 0: it has none),
#       the registration's metadata JSON ('' for none; stored, never decoded)
# `nw` in the task's hash counts the registrations that did not say the upstream
# calls back: at 0 the task is polled only as a safety net. `u:<tenant>` marks a
# registration that did, so that UNREGISTER can keep the count without decoding it.
# Returns {outcome, registration, state, polls, metadata, final} as they are after the
# call, the outcome being 'exists' (the tenant's registration was there: it is
# returned), 'created' (a new task), 'joined' (a task others track), 'final' (a task
# already final: the tenant gets its final event), or 'quota' (the task would be
# tracked and the quota has no room: nothing was stored); final is 1 when the task is
# final (it is not tracked: it costs no quota).
REGISTER = (
    _FAN_OUT
    + """
local id, tenant, reg, init, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local calls_back, may_track, metadata = ARGV[7] == '1', ARGV[8] == '1', ARGV[9]
local tkey = P .. 'task:' .. id
local existed = redis.call('HEXISTS', tkey, 'state') == 1
local final_event = redis.call('HGET', tkey, 'final_event')
local function answer(outcome)
  local t = redis.call('HMGET', tkey, 'r:' .. tenant, 'state', 'polls', 'm:' .. tenant)
  return {outcome, t[1], t[2], t[3], t[4], final_event and 1 or 0}
end
if redis.call('HEXISTS', tkey, 'r:' .. tenant) == 1 then
  return answer('exists')
end
if not final_event and not may_track then
  return {'quota', false, false, false, false, 0}
end
redis.call('HSET', tkey, 'r:' .. tenant, reg)
if metadata ~= '' then redis.call('HSET', tkey, 'm:' .. tenant, metadata) end
if calls_back then
  redis.call('HSET', tkey, 'u:' .. tenant, '1')
  redis.call('HINCRBY', tkey, 'nw', 0)
else
  redis.call('HINCRBY', tkey, 'nw', 1)
end
redis.call('HDEL', P .. 'gone:' .. id, tenant)
if not existed then
  redis.call('HSET', tkey, 'state', init, 'polls', '0')
  redis.call('ZADD', DUE, now, id)
  tenant_due(tenant, now, id)
  return {'created', reg, init, '0', metadata, 0}
end
if final_event then
  -- Already final: this tenant gets the final event now, without a new poll;
  -- its registration is a field of the task's hash and expires with it.
  fan_out(id, final_event, redis.call('HGET', tkey, 'final_type'), now, true, tenant)
  local ttl = redis.call('PTTL', tkey)
  if ttl > 0 then
    redis.call('PEXPIRE', P .. 'dlvs:' .. tenant .. ':' .. id, ttl)
    redis.call('PEXPIRE', P .. 'outbox:' .. tenant .. ':' .. id, ttl)
  end
  return answer('final')
end
redis.call('PERSIST', tkey)
local score = redis.call('ZSCORE', DUE, id)
if not score then
  score = now
  redis.call('ZADD', DUE, now, id)
end
tenant_due(tenant, score, id)
return answer('joined')
"""
)

# KEYS: the tenant's active set (keys.active_tasks)
# ARGV: task_id, the most tasks the tenant may track at once (RELAY_TENANT_MAX_TASKS)
# A place in the tenant's quota for a task about to be registered, taken before
# REGISTER (another slot) and given back by the caller if REGISTER does not track it.
# Returns 'had' (the task holds a place already), 'added', or 'full'.
RESERVE = """
local active, id, max_tasks = KEYS[1], ARGV[1], tonumber(ARGV[2])
if redis.call('SISMEMBER', active, id) == 1 then return 'had' end
if redis.call('SCARD', active) >= max_tasks then return 'full' end
redis.call('SADD', active, id)
return 'added'
"""

# KEYS: the tenant's task listing, its failed deliveries (keys.tenant_tasks, .failed_deliveries)
# ARGV: before ms, failed-before ms
# Trims one tenant's listings of entries whose task has certainly expired.
SWEEP = """
local trimmed = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return trimmed + redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
"""

# KEYS: SHARD_KEYS of the task's shard
# ARGV: shard prefix, task_id, tenant, retention ms
# Returns {1 if a registration was removed else 0, {its delivery ids}}: the caller
# takes the task out of the tenant's keys (listing, quota, failed deliveries).
UNREGISTER = (
    _TENANTS
    + """
local id, tenant, retention = ARGV[2], ARGV[3], tonumber(ARGV[4])
local tkey = P .. 'task:' .. id
if redis.call('HDEL', tkey, 'r:' .. tenant) == 0 then return {0, {}} end
redis.call('HDEL', tkey, 'm:' .. tenant)
if redis.call('HDEL', tkey, 'u:' .. tenant) == 0 and redis.call('HEXISTS', tkey, 'nw') == 1 then
  redis.call('HINCRBY', tkey, 'nw', -1)
end
redis.call('HDEL', P .. 'gone:' .. id, tenant)
tenant_done(tenant, id)
local listing = P .. 'dlvs:' .. tenant .. ':' .. id
local dids = redis.call('LRANGE', listing, 0, -1)
for _, did in ipairs(dids) do
  redis.call('ZREM', DLV_DUE, did)
  redis.call('DEL', P .. 'dlv:' .. did, P .. 'dlv:' .. did .. ':attempts')
end
redis.call('DEL', listing, P .. 'outbox:' .. tenant .. ':' .. id)
if #tenants_of(tkey) == 0 then
  -- Nobody is left to tell: stop polling; keep the state a while for a re-registration.
  redis.call('ZREM', DUE, id)
  if redis.call('PTTL', tkey) < 0 then redis.call('PEXPIRE', tkey, retention) end
end
return {1, dids}
"""
)

# KEYS: the shared token bucket, the upstream pause (keys.UPSTREAM_BUCKET, .UPSTREAM_PAUSED)
# ARGV: now, tokens wanted, rate per second, burst
# Takes up to `wanted` tokens of the rate shared by every worker, none while the
# upstream is paused; the claims of due tasks (CLAIM_POLLS, shard by shard) spend them
# and REFUND_TOKENS gives back what they did not. Returns the tokens taken, or -1
# while the upstream is paused.
TAKE_TOKENS = """
local now, wanted = tonumber(ARGV[1]), tonumber(ARGV[2])
local rate, burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return -1 end
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(b[1] or burst), tonumber(b[2] or now)
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
  ts = now
end
local n = math.max(0, math.min(wanted, math.floor(tokens)))
redis.call('HSET', KEYS[1], 'tokens', tokens - n, 'ts', ts)
return n
"""

# KEYS: the shared token bucket
# ARGV: tokens to give back, burst
REFUND_TOKENS = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or ARGV[2])
redis.call('HSET', KEYS[1], 'tokens', math.min(tonumber(ARGV[2]), tokens + tonumber(ARGV[1])))
return 1
"""

# KEYS: SHARD_KEYS of one shard
# ARGV: shard prefix, now, limit (tokens taken for this shard, TAKE_TOKENS), lease ms,
#       mode: 'take' (up to `limit` due tasks, shared fairly among tenants), 'peek'
#       (which those would be, taking none) or 'ids' (the task ids that follow, those
#       still due: the ones a peek of every shard chose)
# Takes due tasks of the shard and pushes each one's due time a lease ahead: a claim
# that is never written back comes due again by itself when the lease ends.
# Returns {lease, {task_id, state|'', polls, nw|'', signals|'', ...}, more}: more is 1
# when tasks still due were left; nw and signals are the task hash's fields of those
# names (see REGISTER and SIGNAL). A peek returns {{task_id, tenant, due ms, ...}, more}.
CLAIM_POLLS = (
    _TENANTS
    + """
local now, n, lease_ms, mode = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local due = DUE
local OWNER, SCORE = {}, {}  -- task id -> the tenant whose turn picked it, its due time

-- More due than can be taken: an equal share for each tenant with due tasks, its
-- earliest first, taken one task per tenant in turn (a tenant with few due tasks
-- leaves the rest to the others; a task shared by tenants counts once). Each
-- tenant's `tdue` copy of the poll times may be stale (a claim's lease is kept in
-- `due` only): `due` says whether a task is due; entries of tasks it no longer has
-- are dropped.
local function fair_pick(count)
  local tenants = redis.call('SMEMBERS', DUE_TENANTS)
  if #tenants == 0 then return {} end
  table.sort(tenants)
  local start = redis.call('INCR', DUE_TURN) % #tenants
  local queues = {}
  for i = 1, #tenants do
    local tenant = tenants[(start + i - 1) % #tenants + 1]
    queues[i] = {key = P .. 'tdue:' .. tenant, tenant = tenant, buf = {}, pos = 1,
                 offset = 0, pages = 0, open = true}
  end
  local picked, seen, stale = {}, {}, {}
  local function next_of(q)
    while true do
      if q.pos > #q.buf then
        -- A few pages at most per claim: entries of claims in flight are skipped.
        if not q.open or q.pages >= 4 then return nil end
        q.buf = redis.call('ZRANGEBYSCORE', q.key, '-inf', now, 'LIMIT', q.offset, count)
        q.pages, q.pos, q.offset = q.pages + 1, 1, q.offset + #q.buf
        if #q.buf < count then q.open = false end
        if #q.buf == 0 then return nil end
      end
      local id = q.buf[q.pos]
      q.pos = q.pos + 1
      if not seen[id] then
        local score = redis.call('ZSCORE', due, id)
        if not score then
          stale[#stale + 1] = {q, id}
        elseif tonumber(score) <= now then
          seen[id] = true
          OWNER[id], SCORE[id] = q.tenant, score
          return id
        end
      end
    end
  end
  local live = #queues
  while #picked < count and live > 0 do
    live = 0
    for _, q in ipairs(queues) do
      if #picked >= count then break end
      if q.live ~= false then
        local id = next_of(q)
        if id then
          picked[#picked + 1] = id
          live = live + 1
        else
          q.live = false
        end
      end
    end
  end
  if #picked < count then
    -- Whatever no tenant's copy names (kept from before the copies existed) still goes.
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, count)) do
      if #picked >= count then break end
      if not seen[id] then
        seen[id] = true
        picked[#picked + 1] = id
      end
    end
  end
  for _, entry in ipairs(stale) do tenant_done(entry[1].tenant, entry[2]) end
  return picked
end

local backlog = redis.call('ZCOUNT', due, '-inf', now)
local ids = {}
if mode == 'peek' then
  local out = {}
  for _, id in ipairs(fair_pick(n)) do
    out[#out + 1] = id
    out[#out + 1] = OWNER[id] or ''
    out[#out + 1] = SCORE[id] or redis.call('ZSCORE', due, id)
  end
  return {out, backlog > n and 1 or 0}
elseif mode == 'ids' then
  for i = 6, #ARGV do
    local score = redis.call('ZSCORE', due, ARGV[i])
    if score and tonumber(score) <= now then ids[#ids + 1] = ARGV[i] end
  end
elseif n > 0 and backlog > 0 then
  if backlog <= n then
    ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, n)
  else
    ids = fair_pick(n)
  end
end
local more = 0
if backlog > #ids then more = 1 end
if #ids == 0 then return {0, {}, more} end
local lease = now + lease_ms
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', due, lease, id)
  local t = redis.call('HMGET', P .. 'task:' .. id, 'state', 'polls', 'nw', 'sg')
  out[#out + 1] = id
  out[#out + 1] = t[1] or ''
  out[#out + 1] = t[2] or '0'
  out[#out + 1] = t[3] or ''
  out[#out + 1] = t[4] or ''
end
return {lease, out, more}
"""
)

# KEYS: SHARD_KEYS of the shard of every task named
# ARGV: shard prefix, now, retention ms, the channel of finals (keys.FINALS), then for
#       each outcome 10 values:
#       task_id, lease ('' when not from a claim), expected state JSON,
#       new state JSON, count poll (0/1), next due ms ('' when final),
#       event type ('' for none), event id, event JSON,
#       signals left ('' leaves the field as it is, '0' removes it)
# Writes each outcome if the task's state is still the one it was computed
# from (and, for a poll, the claim is still held), and makes the event's
# deliveries. Returns {replies, skipped, untracked}: one of 'ok' | 'lost' | 'conflict'
# | 'error' per outcome ('error': that outcome failed and was left for its lease to
# bring back, the others went on), '<task id> <tenant>' for each registration that
# could not be read and got no delivery, and for each tenant of a task that became
# final (the caller takes it out of the tenant's quota).
APPLY = (
    _FAN_OUT
    + """
local now, retention = tonumber(ARGV[2]), tonumber(ARGV[3])
local due = DUE

local function apply_one(id, lease, expect, new_state, count_poll, next_due, etype,
                         event_id, event_json, signals)
  local tkey = P .. 'task:' .. id
  if count_poll == '1' and redis.call('EXISTS', tkey) == 1 then
    redis.call('HINCRBY', tkey, 'polls', 1)
  end
  if lease ~= '' then
    local score = redis.call('ZSCORE', due, id)
    if not score or tonumber(score) ~= tonumber(lease) then return 'lost' end
  end
  if redis.call('HGET', tkey, 'state') ~= expect then return 'conflict' end
  redis.call('HSET', tkey, 'state', new_state)
  if signals == '0' then
    redis.call('HDEL', tkey, 'sg')
  elseif signals ~= '' then
    redis.call('HSET', tkey, 'sg', signals)
  end
  local final = next_due == ''
  if etype ~= '' then
    local made = fan_out(id, event_id, etype, now, final, '')
    if made > 0 or final then
      redis.call('SET', P .. 'event:' .. event_id, event_json, 'PX', retention)
    end
  end
  if final then
    -- Everything of a final task expires together, `retention` from now.
    redis.call('ZREM', due, id)
    if etype ~= '' then
      redis.call('HSET', tkey, 'final_event', event_id, 'final_type', etype)
    end
    redis.call('PEXPIRE', tkey, retention)
    redis.call('PEXPIRE', P .. 'gone:' .. id, retention)
    for _, tenant in ipairs(tenants_of(tkey)) do
      redis.call('PEXPIRE', P .. 'dlvs:' .. tenant .. ':' .. id, retention)
      redis.call('PEXPIRE', P .. 'outbox:' .. tenant .. ':' .. id, retention)
      untrack(tenant, id)
    end
    -- Wakes the API processes' long-polls (`GET /v1/tasks/{id}/wait`) for this task.
    redis.call('PUBLISH', ARGV[4], id)
  else
    redis.call('ZADD', due, tonumber(next_due), id)
    for _, tenant in ipairs(tenants_of(tkey)) do tenant_due(tenant, next_due, id) end
  end
  return 'ok'
end

local replies = {}
for i = 5, #ARGV, 10 do
  local ok, reply = pcall(apply_one, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
    ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], ARGV[i + 9])
  replies[#replies + 1] = ok and reply or 'error'
end
return {replies, SKIPPED, UNTRACKED}
"""
)

# KEYS: SHARD_KEYS of the task's shard
# ARGV: shard prefix, task id, now ms, signals (how many quick re-fetches may follow if
#       the fetch still answers the old state)
# The upstream called back for the task: poll it now, within the shared rate
# limit like any poll (a claim in flight loses its lease and its write-back, so
# the fresher fetch wins). Returns 'ignored' for a task nobody tracks or a final
# one, else 'signalled'.
SIGNAL = (
    _TENANTS
    + """
local id, now, signals = ARGV[2], ARGV[3], ARGV[4]
local tkey, due = P .. 'task:' .. id, DUE
if not redis.call('ZSCORE', due, id) then return 'ignored' end
redis.call('ZADD', due, 'XX', 'LT', now, id)
for _, tenant in ipairs(tenants_of(tkey)) do
  redis.call('ZADD', P .. 'tdue:' .. tenant, 'XX', 'LT', now, id)
end
redis.call('HSET', tkey, 'sg', signals)
return 'signalled'
"""
)

# KEYS: SHARD_KEYS of one shard
# ARGV: shard prefix, now, limit, lease ms
# Returns {lease, {delivery_id, task, tenant, rid, event, type, attempt,
#          superseded, webhook_id, registration|'', event JSON|'', metadata|'',
#          created, series start, fresh, ...}} or {}: series start is when this
# attempt series began (its creation, or when a redelivered series was first
# claimed), fresh is 1 for a redelivered series not yet attempted.
CLAIM_DELIVERIES = """
local P, now, limit, lease_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local due = KEYS[2]
local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, limit)
if #ids == 0 then return {} end
local lease = now + lease_ms
local out = {}
for _, did in ipairs(ids) do
  local dkey = P .. 'dlv:' .. did
  local d = redis.call('HMGET', dkey, 'task', 'tenant', 'rid', 'event', 'type', 'attempt',
    'superseded', 'webhook_id', 'created', 'series', 'sn', 'ss')
  if not d[1] then
    redis.call('ZREM', due, did)
  else
    redis.call('ZADD', due, lease, did)
    redis.call('HSET', dkey, 'lease', lease)
    out[#out + 1] = did
    for i = 1, 8 do out[#out + 1] = d[i] or '' end
    local reg = redis.call('HMGET', P .. 'task:' .. d[1], 'r:' .. d[2], 'm:' .. d[2])
    out[#out + 1] = reg[1] or ''
    out[#out + 1] = redis.call('GET', P .. 'event:' .. d[4]) or ''
    out[#out + 1] = reg[2] or ''
    local created, series = d[9] or tostring(now), d[10] or '1'
    local start = created
    if series ~= '1' then
      if d[11] ~= series then
        redis.call('HSET', dkey, 'sn', series, 'ss', now)
        start = tostring(now)
      else
        start = d[12] or tostring(now)
      end
    end
    out[#out + 1] = created
    out[#out + 1] = start
    out[#out + 1] = (series ~= '1' and d[6] == '0') and '1' or '0'
  end
end
if #out == 0 then return {} end
return {lease, out}
"""

# KEYS: SHARD_KEYS of the shard of every delivery named
# ARGV: shard prefix, now, retention ms, then for each finished attempt 5 values:
#       delivery id, lease, outcome (retry|delivered|failed|gone|drop),
#       next due ms (retry only), attempt JSON ('' for none)
# Returns {one of 'ok' | 'lost' | 'missing' per attempt, {'<tenant> <delivery id>' of
# each that failed}}: the caller lists those in the tenant's failed deliveries.
FINISH_DELIVERY = """
local P, now, retention = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local due = KEYS[2]
local failed = {}

local function finish_one(did, lease, outcome, next_due, attempt)
  local dkey = P .. 'dlv:' .. did
  if redis.call('EXISTS', dkey) == 0 then
    redis.call('ZREM', due, did)
    return 'missing'
  end
  if attempt ~= '' then
    redis.call('RPUSH', dkey .. ':attempts', attempt)
    redis.call('LTRIM', dkey .. ':attempts', -100, -1)
    redis.call('HINCRBY', dkey, 'attempt', 1)
    -- A late record of an attempt of a delivery already ended expires with it.
    local ttl = redis.call('PTTL', dkey)
    if ttl > 0 then redis.call('PEXPIRE', dkey .. ':attempts', ttl) end
  end
  local score = redis.call('ZSCORE', due, did)
  if not score or tonumber(score) ~= tonumber(lease) then return 'lost' end
  if outcome == 'retry' and redis.call('HGET', dkey, 'superseded') == '1' then
    -- The final event replaced this progress event while it was in flight.
    outcome = 'drop'
  end
  if outcome == 'retry' then
    redis.call('HSET', dkey, 'next_at', next_due)
    redis.call('ZADD', due, tonumber(next_due), did)
    return 'ok'
  end
  local d = redis.call('HMGET', dkey, 'task', 'tenant', 'rid')
  local task_id, tenant = d[1], d[2]
  local obox = P .. 'outbox:' .. tenant .. ':' .. task_id
  redis.call('ZREM', due, did)
  redis.call('LREM', obox, 1, did)
  if outcome == 'drop' then
    redis.call('LREM', P .. 'dlvs:' .. tenant .. ':' .. task_id, 1, did)
    redis.call('DEL', dkey, dkey .. ':attempts')
  else
    redis.call('HSET', dkey, 'status', outcome, 'ended', now)
    redis.call('HDEL', dkey, 'next_at')
    redis.call('PEXPIRE', dkey, retention)
    redis.call('PEXPIRE', dkey .. ':attempts', retention)
    if outcome == 'failed' then failed[#failed + 1] = tenant .. ' ' .. did end
  end
  if outcome == 'gone' then
    -- 410 ends this registration's webhooks: what is still queued goes nowhere, and
    -- ends (and expires) like this one.
    local gone = P .. 'gone:' .. task_id
    redis.call('HSET', gone, tenant, d[3])
    -- The mark lives as long as the task; a final task's expiry was set before it.
    local ttl = redis.call('PTTL', P .. 'task:' .. task_id)
    if ttl > 0 then
      redis.call('PEXPIRE', gone, ttl)
    elseif ttl == -2 then
      redis.call('PEXPIRE', gone, retention)
    end
    for _, other in ipairs(redis.call('LRANGE', obox, 0, -1)) do
      local okey = P .. 'dlv:' .. other
      redis.call('ZREM', due, other)
      redis.call('HSET', okey, 'status', 'gone', 'ended', now)
      redis.call('HDEL', okey, 'next_at')
      redis.call('PEXPIRE', okey, retention)
      redis.call('PEXPIRE', okey .. ':attempts', retention)
    end
    redis.call('DEL', obox)
  else
    local head = redis.call('LINDEX', obox, 0)
    if head then redis.call('ZADD', due, now, head) end
  end
  return 'ok'
end

local replies = {}
for i = 4, #ARGV, 5 do
  replies[#replies + 1] = finish_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
end
return {replies, failed}
"""

# KEYS: SHARD_KEYS of the task's shard
# ARGV: shard prefix, tenant, task_id, now, delivery id ('' for the latest)
# Starts a new attempt series for a delivery of this registration (by default
# its latest), same webhook-id. Returns the delivery id, or false when there
# is none; the caller takes it out of the tenant's failed deliveries.
REDELIVER = """
local P, tenant, id, now, did = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local due = KEYS[2]
if did == '' then
  did = redis.call('LINDEX', P .. 'dlvs:' .. tenant .. ':' .. id, -1)
  if not did then return false end
end
local dkey = P .. 'dlv:' .. did
local owner = redis.call('HMGET', dkey, 'tenant', 'task')
if owner[1] ~= tenant or owner[2] ~= id then return false end
local obox = P .. 'outbox:' .. tenant .. ':' .. id
if redis.call('HGET', dkey, 'status') == 'pending' then
  -- Already on its way: bring a waiting retry forward rather than queue it twice.
  local in_flight = tonumber(redis.call('HGET', dkey, 'lease') or '0') > now
  if redis.call('LINDEX', obox, 0) == did and not in_flight then
    redis.call('ZADD', due, now, did)
  end
  return did
end
redis.call('HDEL', P .. 'gone:' .. id, tenant)
redis.call('HSET', dkey, 'status', 'pending', 'attempt', '0')
redis.call('HINCRBY', dkey, 'series', 1)
redis.call('HDEL', dkey, 'ended', 'superseded')
redis.call('PERSIST', dkey)
redis.call('PERSIST', dkey .. ':attempts')
redis.call('RPUSH', obox, did)
-- The outbox now lives until its last delivery leaves it: expiring with a final task
-- while this one waits behind its head, it would leave it unscheduled for ever.
redis.call('PERSIST', obox)
if redis.call('LINDEX', obox, 0) == did then
  redis.call('ZADD', due, now, did)
end
return did
"""
