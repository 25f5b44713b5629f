"""Every Lua script the relay runs on tasks and queues, in one place.

Each script is one atomic step of the relay's life: a registration, a claim
of due polls or deliveries, the write of a poll's outcome with the events it
makes, the end of a delivery attempt. Atomic steps are what lets any process
die at any moment without losing or doubling an event.

Every script touches the keys of one hash slot (see `relay.store.keys`) and
names each of them in KEYS: a shard's queues, and the records of the shard's
tasks it works on, which the caller names from the task ids. No script builds a
key name. What lives under a tenant's, a receiver's or no tag is written by the
caller in calls of its own, from what these scripts answer. Times are integer
unix milliseconds.

A task's record is one string of fields (`relay.store.record` reads it in
Python): `load` splits it, `save` joins it again. Keeping a task's whole world
in one key is what lets every script name its keys, and costs far less memory
than a hash table per task and a key per delivery, event and outbox.
"""

from __future__ import annotations

# A task's record, read and written as a table of fields (see relay.store.record for
# what each field holds), and the record's expiry.
_RECORD = """
local FS, RS, AS = string.char(30), string.char(31), string.char(29)
local FIELD = '([^' .. FS .. RS .. ']+)' .. FS .. '([^' .. RS .. ']*)'

local function load(key)
  local raw = redis.call('GET', key)
  if not raw then return nil end
  local t = {}
  for f, v in string.gmatch(raw, FIELD) do t[f] = v end
  return t
end

local function save(key, t)
  local parts = {}
  for f, v in pairs(t) do parts[#parts + 1] = f .. FS .. v end
  redis.call('SET', key, table.concat(parts, RS), 'KEEPTTL')
end

local function words(s)
  local w = {}
  if s then for x in string.gmatch(s, '%S+') do w[#w + 1] = x end end
  return w
end

local function join(w)
  if #w == 0 then return nil end
  return table.concat(w, ' ')
end

local function without(w, x)
  local kept = {}
  for _, y in ipairs(w) do if y ~= x then kept[#kept + 1] = y end end
  return kept
end

-- The tenants registered for a task: its fields named 'r:<tenant>', in order.
local function tenants_of(T)
  local found = {}
  for f in pairs(T) do
    if string.sub(f, 1, 2) == 'r:' then found[#found + 1] = string.sub(f, 3) end
  end
  table.sort(found)
  return found
end

-- A tracked task never expires; an ended one (final, or left by every tenant)
-- expires `retention` after it ended, or after its last delivery left its outbox.
local function settle(key, T, retention)
  if not T.fe and #tenants_of(T) > 0 then
    redis.call('PERSIST', key)
    return
  end
  for f, v in pairs(T) do
    if string.sub(f, 1, 2) == 'o:' and v ~= '' then
      redis.call('PERSIST', key)
      return
    end
  end
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, retention) end
end
"""

# The poll schedule of a shard: one sorted set of task id -> next poll time (ms) in
# its meaning, kept as `keys.DUE_BUCKETS` small ones, a hash of the id picking its
# bucket (keys.due_bucket_of), so that each stays a listpack (a sorted set of more
# than 128 members costs three times as much per member). HEADS holds each
# non-empty bucket's earliest time, kept exact by every write, so that a claim
# reads only the buckets with something due. A script using it says where its
# buckets start in KEYS (DUE0: the first bucket) and how many there are.
_HEADS = """
-- The bucket's head from its earliest member (none when it is empty).
local function head_mend(key, index)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('ZREM', HEADS, index)
  else
    redis.call('ZADD', HEADS, first[2], index)
  end
end
"""

_DUE = (
    _HEADS
    + """
-- Bucket number -> its key, for the buckets this call names in KEYS: all of them from
-- DUE0 on (name_all_buckets), or, where a task's key is followed by its bucket's and
-- its part's (name_buckets_of), only those its tasks are in.
local BUCKET, FAIR_PART = {}, {}  -- the same for the fair queue's parts (_FAIR)

local function name_all_buckets()
  for index = 0, DUE_BUCKETS - 1 do
    BUCKET[index] = KEYS[DUE0 + index]
    FAIR_PART[index] = KEYS[DUE0 + DUE_BUCKETS + index]
  end
end

local BUCKET_OF = {}  -- task id -> its bucket number: a write asks for it several times

local function bucket_of(id)
  local index = BUCKET_OF[id]
  if not index then
    index = tonumber(string.sub(redis.sha1hex(id), 1, 2), 16) % DUE_BUCKETS
    BUCKET_OF[id] = index
  end
  return index
end

-- Names one task's bucket and part: KEYS[at] and KEYS[at + 1].
local function name_buckets_of(id, at)
  local index = bucket_of(id)
  BUCKET[index], FAIR_PART[index] = KEYS[at], KEYS[at + 1]
end

-- The key of a task's bucket (BUCKET) or part (FAIR_PART), and its number.
local function named(table_of, what, id)
  local index = bucket_of(id)
  local key = table_of[index]
  if not key then error('the ' .. what .. ' of ' .. id .. ' is not in KEYS') end
  return key, index
end

local function due_key(id)
  return named(BUCKET, 'schedule bucket', id)
end

local function due_score(id)
  local key = due_key(id)
  return redis.call('ZSCORE', key, id)
end

-- `old`: the task's time as the caller just read it (false: not in the schedule), or
-- nil to read it here.
local function due_set(id, ms, old)
  local key, index = due_key(id)
  if old == nil then old = redis.call('ZSCORE', key, id) end
  redis.call('ZADD', key, ms, id)
  if not old or tonumber(ms) < tonumber(old) then
    -- In, or earlier (most writes: a claim's lease ends later than the next poll): the
    -- head can only come earlier, which ZADD LT does without reading it first.
    redis.call('ZADD', HEADS, 'LT', ms, index)
  elseif tonumber(ms) > tonumber(old) then
    local head = redis.call('ZSCORE', HEADS, index)
    if not head or tonumber(old) == tonumber(head) then
      head_mend(key, index)  -- the earliest went later
    end
  end
end

-- An earlier time for a task in the schedule; false for one out of it.
local function due_earlier(id, ms)
  local score = due_score(id)
  if not score then return false end
  if tonumber(ms) < tonumber(score) then due_set(id, ms, score) end
  return true
end

local function due_rem(id)
  local key, index = due_key(id)
  local old = redis.call('ZSCORE', key, id)
  if not old then return end
  redis.call('ZREM', key, id)
  local head = redis.call('ZSCORE', HEADS, index)
  if not head or tonumber(old) <= tonumber(head) then head_mend(key, index) end
end

-- Later times for many tasks at once (a claim's leases), each bucket's head mended once.
local function due_later(ids, ms)
  local touched = {}
  for _, id in ipairs(ids) do
    local key, index = due_key(id)
    redis.call('ZADD', key, ms, id)
    touched[index] = key
  end
  for index, key in pairs(touched) do head_mend(key, index) end
end

-- How many tasks of `buckets` are due by `upto`, counted no further than past `cap`.
local function due_count(buckets, upto, cap)
  local count = 0
  for _, key in ipairs(buckets) do
    count = count + redis.call('ZCOUNT', key, '-inf', upto)
    if count > cap then return count end
  end
  return count
end

-- Up to `limit` tasks of `buckets` due by `upto`, earliest bucket first.
local function due_range(buckets, upto, limit)
  local ids = {}
  for _, key in ipairs(buckets) do
    if #ids >= limit then break end
    local more = redis.call('ZRANGEBYSCORE', key, '-inf', upto, 'LIMIT', 0, limit - #ids)
    for _, id in ipairs(more) do ids[#ids + 1] = id end
  end
  return ids
end
"""
)

# The fair queue of a shard: every tenant's tracked tasks by due time, members
# '<tenant> <due ms, 13 digits> <task id>' at score 0, read by range of tenant and
# time when more polls are due than the rate allows (CLAIM_POLLS). Kept in parts as
# the schedule is, a task's members in the part of its schedule bucket's number (the
# parts follow the buckets in KEYS), so that each stays a listpack; FAIR_MASKS says
# which parts hold a tenant's members, so that a read of one tenant visits only
# those. FAIR_COUNTS counts each tenant's members. A task's members are all at its
# record's `fd`.
_FAIR = """
local function fair_member(tenant, ms, id)
  return tenant .. ' ' .. string.format('%013d', tonumber(ms)) .. ' ' .. id
end

-- The fair queue's part a task's members are in (the schedule's bucket number).
local function fair_key(id)
  return named(FAIR_PART, 'fair queue part', id)
end

local function fair_count(tenant, delta)
  if delta ~= 0 and redis.call('HINCRBY', FAIR_COUNTS, tenant, delta) <= 0 then
    redis.call('HDEL', FAIR_COUNTS, tenant)
    redis.call('HDEL', FAIR_MASKS, tenant)
  end
end

-- Which parts hold a tenant's members: one character per part, '1' set as a member
-- goes in, '0' again when a read finds none of the tenant's there.
local function mask_mark(tenant, index, bit)
  local mask = redis.call('HGET', FAIR_MASKS, tenant) or string.rep('0', DUE_BUCKETS)
  if string.sub(mask, index + 1, index + 1) ~= bit then
    mask = string.sub(mask, 1, index) .. bit .. string.sub(mask, index + 2)
    redis.call('HSET', FAIR_MASKS, tenant, mask)
  end
end

local function fair_add(tenant, ms, id)
  local key, index = fair_key(id)
  local added = redis.call('ZADD', key, 0, fair_member(tenant, ms, id))
  if added > 0 then mask_mark(tenant, index, '1') end
  fair_count(tenant, added)
end

local function fair_rem(tenant, ms, id)
  local key = fair_key(id)
  fair_count(tenant, -redis.call('ZREM', key, fair_member(tenant, ms, id)))
end

-- Every tenant of the task to `ms` in the fair queue (nil: out of it).
local function fair_move(T, id, ms)
  local old = T.fd
  if old and ms and tonumber(old) == tonumber(ms) then return end
  local key, index = fair_key(id)
  for _, tenant in ipairs(tenants_of(T)) do
    local removed = 0
    if old then removed = redis.call('ZREM', key, fair_member(tenant, old, id)) end
    local added = 0
    if ms then
      added = redis.call('ZADD', key, 0, fair_member(tenant, ms, id))
      -- A member moved within its part leaves the mask as it was (marked).
      if added > 0 and removed == 0 then mask_mark(tenant, index, '1') end
    end
    fair_count(tenant, added - removed)
  end
  if ms then T.fd = string.format('%d', tonumber(ms)) else T.fd = nil end
end
"""

# Deliveries live in their task's record: 'd:<k>' is delivery k's fields, in the order
# of relay.store.record.DeliveryFields, '~' for none (no tenant name holds one); 'a:<k>'
# its attempts; 'l:<tenant>' and 'o:<tenant>' the tenant's delivery keys (all, and those
# still to send, in order: only an outbox's head is in the delivery queue); 'e:<event
# id>' each event. A delivery's id is 'dlv_', its task's compact id and k.
# Every script is handed a task's compact id (keys.compact_id), never its UUID: the
# members of the shard's queues and the ids in replies are compact.
_DELIVERIES = """
local TENANT, RID, EVENT, TYPE, STATUS, ATTEMPT, SERIES, CREATED, NEXT, ENDED, SUPERSEDED,
  SERIES_START = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12

local function did_of(id, k)
  return 'dlv_' .. id .. k
end

local function dget(T, k)
  local d = words(T['d:' .. k])
  if #d == 0 then return nil end
  for i = 1, SERIES_START do if d[i] == '~' then d[i] = nil end end
  return d
end

local function dput(T, k, d)
  local w = {}
  for i = 1, SERIES_START do w[i] = d[i] or '~' end
  T['d:' .. k] = table.concat(w, ' ')
end

-- Neither due (a retry waiting, or a head just put in the queue) nor back from a lapsed
-- claim: an attempt holds it.
local function in_flight(id, k, d, now)
  local score = redis.call('ZSCORE', DLV_DUE, did_of(id, k))
  return score ~= false and tonumber(score) > now and tonumber(score) ~= tonumber(d[NEXT] or '0')
end

local function schedule(id, k, d, at)
  redis.call('ZADD', DLV_DUE, at, did_of(id, k))
  d[NEXT] = string.format('%d', at)
end

-- Events no delivery refers to any more go, but the final one stays with its task.
local function drop_unused_events(T)
  local used = {}
  if T.fe then used[T.fe] = true end
  for f, v in pairs(T) do
    if string.sub(f, 1, 2) == 'd:' then used[words(v)[EVENT]] = true end
  end
  for f in pairs(T) do
    if string.sub(f, 1, 2) == 'e:' and not used[string.sub(f, 3)] then T[f] = nil end
  end
end

local function forget(T, id, tenant, k)
  redis.call('ZREM', DLV_DUE, did_of(id, k))
  T['d:' .. k], T['a:' .. k] = nil, nil
  T['l:' .. tenant] = join(without(words(T['l:' .. tenant]), k))
  T['o:' .. tenant] = join(without(words(T['o:' .. tenant]), k))
end
"""

# Shared by the scripts that make events: one delivery per subscriber that asked for
# the event type and has a webhook URL.
_FAN_OUT = """
local function make_delivery(T, id, tenant, reg, event_id, etype, now, final)
  local k = string.sub(redis.sha1hex(event_id .. '|' .. tenant .. '|' .. reg.rid), 1, 8)
  if final then
    -- A progress delivery still waiting when the final event is made is superseded;
    -- one in flight finishes its attempt first, so the order is kept.
    for i, other in ipairs(words(T['o:' .. tenant])) do
      local o = dget(T, other)
      if o and o[TYPE] == 'task.progress' then
        if i == 1 and in_flight(id, other, o, now) then
          o[SUPERSEDED] = '1'
          dput(T, other, o)
        else
          forget(T, id, tenant, other)
        end
      end
    end
  end
  local d = {tenant, reg.rid, event_id, etype, 'pending', '0', '1', string.format('%d', now)}
  local listing = words(T['l:' .. tenant])
  local outbox = words(T['o:' .. tenant])
  listing[#listing + 1] = k
  outbox[#outbox + 1] = k
  T['l:' .. tenant], T['o:' .. tenant] = join(listing), join(outbox)
  if outbox[1] == k then schedule(id, k, d, now) end
  dput(T, k, d)
end

local DEFAULT_EVENTS = {'task.succeeded', 'task.failed', 'task.timed_out'}

-- A stored registration (codec.StoredRegistration: rid, url, events, ...); fails on
-- one that cannot be read.
local function registration(raw)
  local a = cjson.decode(raw)
  assert(type(a) == 'table' and type(a[1]) == 'string', 'not a registration')
  local url, ev = a[2], a[3]
  if url == cjson.null then url = nil end
  if ev == nil or ev == cjson.null then ev = DEFAULT_EVENTS end
  return {rid = a[1], url = url, ev = ev}
end

local function wants(reg, etype)
  if reg.url == nil then return false end
  for _, e in ipairs(reg.ev) do
    if e == etype then return true end
  end
  return false
end

-- Registrations set aside by fan_out because they could not be read: one bad
-- registration must not stop the event reaching the task's other subscribers.
local SKIPPED = {}

-- Returns how many deliveries were made.
local function fan_out(T, id, event_id, etype, now, final, only_tenant)
  local made = 0
  local tenants = tenants_of(T)
  if only_tenant ~= '' then tenants = {only_tenant} end
  for _, tenant in ipairs(tenants) do
    local raw = T['r:' .. tenant]
    local readable, reg = false, nil
    if raw then readable, reg = pcall(registration, raw) end
    if raw and not readable then
      SKIPPED[#SKIPPED + 1] = id .. ' ' .. tenant
    elseif raw then
      if wants(reg, etype) and T['g:' .. tenant] ~= reg.rid then
        make_delivery(T, id, tenant, reg, event_id, etype, now, final)
        made = made + 1
      end
    end
  end
  return made
end
"""

_TASK = _RECORD + _DUE + _FAIR + _DELIVERIES + _FAN_OUT

# KEYS: the task's record, its shard's poll schedule heads, fair queue masks, fair
#       counts, delivery queue, then the task's poll schedule bucket and fair queue
#       part (keys.task_keys)
# ARGV: task_id, tenant, registration JSON, initial state JSON, now (ms, the
#       registration's time), upstream webhook (1: the upstream calls back for this
#       registration, else 0), may track (1: the tenant's quota has room for it, see
#       RESERVE; 0: it has none), the registration's metadata JSON ('' for none;
#       stored, never decoded), retention ms, the registration JSON with its time (for
#       a task registered at another time: codec.dump_registrations), the number of
#       buckets a shard's schedule has (keys.DUE_BUCKETS)
# `u:<tenant>` marks a registration that said the upstream calls back: with every
# registration so marked, the task is polled only as a safety net.
# Returns {outcome, registration, state, polls, metadata, final} as they are after the
# call, the outcome being 'exists' (the tenant's registration was there: it is
# returned), 'created' (a new task), 'joined' (a task others track), 'final' (a task
# already final: the tenant gets its final event), or 'quota' (the task would be
# tracked and the quota has no room: nothing was stored); final is 1 when the task is
# final (it is not tracked: it costs no quota).
REGISTER = (
    """
local KEY, HEADS, FAIR_MASKS, FAIR_COUNTS, DLV_DUE = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local DUE0, DUE_BUCKETS = nil, tonumber(ARGV[11])
"""
    + _TASK
    + """
local id, tenant, reg, init, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
name_buckets_of(id, 6)
local calls_back, may_track, metadata = ARGV[6] == '1', ARGV[7] == '1', ARGV[8]
local retention, reg_timed = tonumber(ARGV[9]), ARGV[10]
local T = load(KEY)
local existed = T ~= nil and T.s ~= nil
local function answer(outcome)
  return {outcome, T['r:' .. tenant] or false, T.s or false, T.p or false,
          T['m:' .. tenant] or false, T.fe and 1 or 0}
end
if T and T['r:' .. tenant] then return answer('exists') end
if not (T and T.fe) and not may_track then
  return {'quota', false, false, false, false, 0}
end
T = T or {}
if existed and tonumber(string.match(T.s, '^%[(%d+)')) ~= now then reg = reg_timed end
T['r:' .. tenant] = reg
if metadata ~= '' then T['m:' .. tenant] = metadata end
if calls_back then T['u:' .. tenant] = '1' end
T['g:' .. tenant] = nil
if not existed then
  T.s, T.p = init, '0'
  due_set(id, now)
  fair_move(T, id, now)
  save(KEY, T)
  settle(KEY, T, retention)
  return {'created', reg, init, '0', metadata, 0}
end
if T.fe then
  -- Already final: this tenant gets the final event now, without a new poll.
  fan_out(T, id, T.fe, T.ft, now, true, tenant)
  save(KEY, T)
  settle(KEY, T, retention)
  return answer('final')
end
local score = due_score(id)
if not score then
  score = now
  due_set(id, now)
end
if T.fd then fair_add(tenant, T.fd, id) else fair_move(T, id, score) end
save(KEY, T)
settle(KEY, T, retention)
return answer('joined')
"""
)

# KEYS: the tenant's quota (keys.active_tasks)
# ARGV: the most tasks the tenant may track at once (RELAY_TENANT_MAX_TASKS)
# A place in the tenant's quota for a task about to be registered, taken before
# REGISTER (another slot) and given back (RELEASE) if REGISTER does not track it.
# Returns 'added' or 'full'.
RESERVE = """
if tonumber(redis.call('HGET', KEYS[1], 'n') or '0') >= tonumber(ARGV[1]) then
  return 'full'
end
redis.call('HINCRBY', KEYS[1], 'n', 1)
return 'added'
"""

# KEYS: the tenant's quota (keys.active_tasks)
# ARGV: how many places to give back
# Returns the places still held.
RELEASE = """
local n = redis.call('HINCRBY', KEYS[1], 'n', -tonumber(ARGV[1]))
if n <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
return n
"""

# KEYS: the tenant's quota (keys.active_tasks)
# ARGV: the tenant's tracked tasks as counted just before, shard by shard
# Mends the places held after a crash between the steps that take and give them:
# fewer than counted is set right at once (the quota never lets a tenant past it);
# more is given back only up to what the previous sweep found too, since a
# registration between RESERVE and REGISTER holds a place no shard counts yet.
# Returns the places given back.
RECOUNT = """
local n, counted = tonumber(redis.call('HGET', KEYS[1], 'n') or '0'), tonumber(ARGV[1])
local excess = n - counted
if excess <= 0 then
  if counted > 0 then
    redis.call('HSET', KEYS[1], 'n', counted)
    redis.call('HDEL', KEYS[1], 'x')
  else
    redis.call('DEL', KEYS[1])
  end
  return 0
end
local cut = math.min(tonumber(redis.call('HGET', KEYS[1], 'x') or '0'), excess)
if n - cut <= 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'n', n - cut, 'x', excess - cut)
end
return cut
"""

# KEYS: the tenant's task listing (keys.tenant_tasks)
# ARGV: the task's entry (keys.listed), how many of the newest entries to look past
# Lists a registration, newest first by registration time: registrations made at
# once by several API processes finish in any order, so the entry goes in after
# the newest ones registered later than it (among the first few), not simply at
# the head. A tie goes first: within a millisecond, the last to arrive is newest.
LIST_TASK = """
local entry, window = ARGV[1], tonumber(ARGV[2])
local at = tonumber(string.sub(entry, 23), 36)
local newest = redis.call('LRANGE', KEYS[1], 0, window - 1)
for i, other in ipairs(newest) do
  if tonumber(string.sub(other, 23), 36) <= at then
    if i == 1 then return redis.call('LPUSH', KEYS[1], entry) end
    return redis.call('LINSERT', KEYS[1], 'BEFORE', other, entry)
  end
end
if #newest < window then return redis.call('RPUSH', KEYS[1], entry) end
return redis.call('LINSERT', KEYS[1], 'AFTER', newest[#newest], entry)
"""

# KEYS: the set of every tenant (keys.TENANTS)
# ARGV: a tenant
# A script only so that it goes in one pipeline with LIST_TASK (relay.store.calls.run).
NOTE_TENANT = """
return redis.call('SADD', KEYS[1], ARGV[1])
"""

# KEYS: the tenant's task listing, its failed deliveries (keys.tenant_tasks, .failed_deliveries)
# ARGV: before ms, failed-before ms, most listing entries to take
# Trims one tenant's listings of entries whose task has certainly expired: the
# listing at its old end (its entries come in registration order, give or take
# the clocks of the API's processes). Returns {listing entries, failed} trimmed.
SWEEP = """
local before, limit, trimmed = tonumber(ARGV[1]), tonumber(ARGV[3]), 0
while trimmed < limit do
  local oldest = redis.call('LINDEX', KEYS[1], -1)
  if not oldest or tonumber(string.sub(oldest, 23), 36) >= before then break end
  redis.call('RPOP', KEYS[1])
  trimmed = trimmed + 1
end
return {trimmed, redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])}
"""

# KEYS: keys.task_keys of the task (as REGISTER)
# ARGV: task_id, tenant, retention ms, the number of buckets a shard's schedule has
# Returns {1 if a registration was removed else 0, {its delivery ids}, 1 if the task
# is final else 0}: the caller takes the task out of the tenant's failed deliveries
# and, unless it was final (its place went then), gives back its place in the quota.
UNREGISTER = (
    """
local KEY, HEADS, FAIR_MASKS, FAIR_COUNTS, DLV_DUE = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local DUE0, DUE_BUCKETS = nil, tonumber(ARGV[4])
"""
    + _TASK
    + """
local id, tenant, retention = ARGV[1], ARGV[2], tonumber(ARGV[3])
name_buckets_of(id, 6)
local T = load(KEY)
if not T or not T['r:' .. tenant] then return {0, {}, 0} end
if T.fd then fair_rem(tenant, T.fd, id) end
T['r:' .. tenant], T['m:' .. tenant], T['g:' .. tenant] = nil, nil, nil
T['u:' .. tenant] = nil
local dids = {}
for _, k in ipairs(words(T['l:' .. tenant])) do
  dids[#dids + 1] = did_of(id, k)
  forget(T, id, tenant, k)
end
T['l:' .. tenant], T['o:' .. tenant] = nil, nil
drop_unused_events(T)
if #tenants_of(T) == 0 then
  -- Nobody is left to tell: stop polling; keep the state a while for a re-registration.
  due_rem(id)
  T.fd = nil
end
save(KEY, T)
settle(KEY, T, retention)
return {1, dids, T.fe and 1 or 0}
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

# KEYS: one shard's poll schedule heads, fair queue masks, fair counts and turn, then
#       its poll schedule's buckets and its fair queue's parts (keys.claim_keys)
# ARGV: now, limit (tokens taken for this shard, TAKE_TOKENS), lease ms,
#       mode: 'take' (up to `limit` due tasks, shared fairly among tenants), 'peek'
#       (which those would be, taking none) or 'ids' (the task ids that follow, those
#       still due: the ones a peek of every shard chose)
# Takes due tasks of the shard and pushes each one's due time a lease ahead: a claim
# that is never written back comes due again by itself when the lease ends. The
# caller then reads the claimed tasks' records.
# Returns {lease, {task_id, ...}, more}: more is 1 when tasks still due were left. A
# peek returns {{task_id, tenant, due ms, ...}, more}.
CLAIM_POLLS = (
    """
local HEADS, FAIR_MASKS, FAIR_COUNTS, TURN = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local DUE0, DUE_BUCKETS = 5, (#KEYS - 4) / 2
"""
    + _DUE
    + _FAIR
    + """
name_all_buckets()
local now, n, lease_ms, mode = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local OWNER, SCORE = {}, {}  -- task id -> the tenant whose turn picked it, its due time

-- The buckets with a task due, earliest head first, and each one's head (a bucket
-- not due: never), read once per claim.
local HEAD_OF, DUE_ORDER
local function due_order()
  if not DUE_ORDER then
    HEAD_OF, DUE_ORDER = {}, {}
    local flat = redis.call('ZRANGEBYSCORE', HEADS, '-inf', now, 'WITHSCORES')
    for i = 1, #flat, 2 do
      local index = tonumber(flat[i])
      HEAD_OF[index], DUE_ORDER[#DUE_ORDER + 1] = tonumber(flat[i + 1]), index
    end
  end
  return DUE_ORDER
end
local function head_of(index)
  due_order()
  return HEAD_OF[index] or math.huge
end

local DUE_NOW  -- the keys of those buckets, in the same order
local function due_now()
  if not DUE_NOW then
    DUE_NOW = {}
    for _, index in ipairs(due_order()) do DUE_NOW[#DUE_NOW + 1] = BUCKET[index] end
  end
  return DUE_NOW
end

-- More due than can be taken: an equal share for each tenant with due tasks, its
-- earliest first, taken one task per tenant in turn (a tenant with few due tasks
-- leaves the rest to the others; a task shared by tenants counts once). The fair
-- queue's times may be stale (a claim's lease is kept in the schedule only): the
-- schedule says whether a task is due; members of tasks it no longer has are dropped.
local function fair_pick(count)
  local tenants = redis.call('HKEYS', FAIR_COUNTS)
  if #tenants == 0 then return {} end
  if #tenants == 1 then
    -- Nobody to share with: its earliest due, read from the schedule (the fair queue
    -- would give the same tasks, at the cost of a time lookup for each).
    local ids = due_range(due_now(), now, count)
    for _, id in ipairs(ids) do OWNER[id] = tenants[1] end
    return ids
  end
  table.sort(tenants)
  local start = redis.call('INCR', TURN) % #tenants
  local upto = ' ' .. string.format('%013d', now) .. ' ~'
  local queues = {}
  for i = 1, #tenants do
    local tenant = tenants[(start + i - 1) % #tenants + 1]
    -- Its parts whose schedule bucket has a task due, earliest head first.
    local mask, parts = redis.call('HGET', FAIR_MASKS, tenant) or '', {}
    for _, index in ipairs(due_order()) do
      if string.byte(mask, index + 1) == 49 then parts[#parts + 1] = index end  -- '1'
    end
    queues[i] = {tenant = tenant, low = '[' .. tenant .. ' ', high = '[' .. tenant .. upto,
                 parts = parts, next = 1, buf = {}, pos = 1, offsets = {}, full = {},
                 reads = 0}
  end
  local picked, seen, stale = {}, {}, {}
  -- A tenant's members come from its parts in time order without reading them all:
  -- parts are read earliest head first (a part's head, the schedule's, is no later
  -- than any of its tasks still due), and a member goes once no unread part can
  -- hold an earlier one. One tenant's members sort by time.
  local function member_ms(q, member)
    return tonumber(string.sub(member, #q.tenant + 2, #q.tenant + 14))
  end
  local function read_part(q, index)
    local key = FAIR_PART[index]
    local offset = q.offsets[index] or 0
    local page = redis.call('ZRANGEBYLEX', key, q.low, q.high, 'LIMIT', offset, count)
    q.reads, q.offsets[index] = q.reads + 1, offset + #page
    if #page == count then q.full[#q.full + 1] = index end
    if #page == 0 and offset == 0 and
        redis.call('ZLEXCOUNT', key, q.low, '[' .. q.tenant .. ' ~') == 0 then
      mask_mark(q.tenant, index, '0')  -- none of the tenant's left in this part
    end
    local rest = {}
    for i = q.pos, #q.buf do rest[#rest + 1] = q.buf[i] end
    for _, member in ipairs(page) do rest[#rest + 1] = {member, key} end
    table.sort(rest, function(a, b) return a[1] < b[1] end)
    q.buf, q.pos = rest, 1
  end
  local function next_of(q)
    while true do
      -- Reads at most 16 parts per claim: members of claims in flight are skipped.
      while q.next <= #q.parts and q.reads < 16 do
        local index = q.parts[q.next]
        local best = q.buf[q.pos]
        if best and member_ms(q, best[1]) <= head_of(index) then break end
        read_part(q, index)
        q.next = q.next + 1
      end
      if q.pos > #q.buf then
        -- Every part read once: further pages of those that had more, in turn.
        local index = table.remove(q.full, 1)
        if not index or q.reads >= 16 then return nil end
        read_part(q, index)
      else
        local member, key = q.buf[q.pos][1], q.buf[q.pos][2]
        q.pos = q.pos + 1
        local id = string.match(member, '^%S+ %d+ (%S+)$')
        if id and not seen[id] then
          local score = due_score(id)
          if not score then
            stale[#stale + 1] = {q.tenant, member, key}
          elseif tonumber(score) <= now then
            seen[id] = true
            OWNER[id], SCORE[id] = q.tenant, score
            return id
          end
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
    -- Whatever the fair queue does not name still goes.
    for _, id in ipairs(due_range(due_now(), now, count)) do
      if #picked >= count then break end
      if not seen[id] then
        seen[id] = true
        picked[#picked + 1] = id
      end
    end
  end
  for _, entry in ipairs(stale) do
    local key = entry[3]
    fair_count(entry[1], -redis.call('ZREM', key, entry[2]))
  end
  return picked
end

-- Counted no further than it takes to know whether all of it can go.
local ids, backlog = {}, 0
if mode == 'peek' then
  backlog = due_count(due_now(), now, n)
  local out = {}
  for _, id in ipairs(fair_pick(n)) do
    out[#out + 1] = id
    out[#out + 1] = OWNER[id] or ''
    out[#out + 1] = SCORE[id] or due_score(id)
  end
  return {out, backlog > n and 1 or 0}
elseif mode == 'ids' then
  for i = 5, #ARGV do
    local score = due_score(ARGV[i])
    if score and tonumber(score) <= now then ids[#ids + 1] = ARGV[i] end
  end
elseif n > 0 then
  backlog = due_count(due_now(), now, n)
  if backlog > n then
    ids = fair_pick(n)
  elseif backlog > 0 then
    ids = due_range(due_now(), now, n)
  end
end
local more = 0
if backlog > #ids then more = 1 end
if #ids == 0 then return {0, {}, more} end
local lease = now + lease_ms
due_later(ids, lease)
return {lease, ids, more}
"""
)

# KEYS: one shard's poll schedule heads, one of its buckets (keys.due_heads, .due_buckets)
# ARGV: the bucket's number, then the task ids to take out of it
# Drops tasks whose records are gone from the schedule, the bucket's head kept exact.
DROP_DUE = (
    """
local HEADS, BUCKET = KEYS[1], KEYS[2]
"""
    + _HEADS
    + """
redis.call('ZREM', BUCKET, unpack(ARGV, 2))
head_mend(BUCKET, ARGV[1])
return 1
"""
)

# KEYS: one shard's poll schedule heads, fair queue masks and counts and delivery
#       queue (keys.apply_keys), then for each task written its record, the schedule
#       bucket and the fair queue part it is in (keys.task, .due_bucket, .fair_bucket):
#       a call names only the buckets its tasks need, not all of them
# ARGV: now, retention ms, the channel of finals (keys.FINALS), how many buckets the
#       schedule has (keys.DUE_BUCKETS), then the outcomes in one msgpack array
#       (redis-py packs every argument in Python: one is cheaper than eleven each),
#       each 11 values:
#       the index in KEYS of its task's record (its bucket's and part's follow), task_id,
#       lease ('' when not from a claim), expected state JSON, new state JSON,
#       count poll (0/1), next due ms ('' when final), event type ('' for none),
#       event id, event JSON,
#       signals left ('' leaves the field as it is, '0' removes it)
# Writes each outcome if the task's state is still the one it was computed
# from (and, for a poll, the claim is still held), and makes the event's
# deliveries. Returns {replies, skipped, untracked}: one of 'ok' | 'lost' | 'conflict'
# | 'error' per outcome ('error': that outcome failed and was left for its lease to
# bring back, the others went on), '<task id> <tenant>' for each registration that
# could not be read and got no delivery, and for each tenant of a task that became
# final (the caller takes it out of the tenant's quota).
APPLY = (
    """
local HEADS, FAIR_MASKS, FAIR_COUNTS, DLV_DUE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- Each task's schedule bucket and fair queue part follow its record.
local DUE0, DUE_BUCKETS = nil, tonumber(ARGV[4])
"""
    + _TASK
    + """
local now, retention = tonumber(ARGV[1]), tonumber(ARGV[2])
local UNTRACKED = {}

-- Whether more than one tenant has tasks in this shard, read once. With one, nobody
-- reads the fair queue (a claim takes the schedule's earliest), so a poll leaves the
-- task's members where they are; once a second tenant comes, each poll moves them
-- again, and until then a claim finds those not due yet by the schedule, as it finds
-- the members of a claim in flight.
local SHARED
local function shared()
  if SHARED == nil then SHARED = redis.call('HLEN', FAIR_COUNTS) > 1 end
  return SHARED
end

local function apply_one(key, id, lease, expect, new_state, count_poll, next_due, etype,
                         event_id, event_json, signals)
  local T = load(key)
  if not T then return 'conflict' end
  if count_poll == '1' then T.p = tostring(tonumber(T.p or '0') + 1) end
  local score  -- the task's time in the schedule, once read
  if lease ~= '' then
    score = due_score(id)
    if not score or tonumber(score) ~= tonumber(lease) then
      save(key, T)
      return 'lost'
    end
  end
  if T.s ~= expect then
    save(key, T)
    return 'conflict'
  end
  T.s = new_state
  if signals == '0' then T.sg = nil elseif signals ~= '' then T.sg = signals end
  local final = next_due == ''
  if etype ~= '' then
    local made = fan_out(T, id, event_id, etype, now, final, '')
    if made > 0 or final then T['e:' .. event_id] = event_json end
  end
  if final then
    due_rem(id)
    fair_move(T, id, nil)
    if etype ~= '' then T.fe, T.ft = event_id, etype end
    T.sg = nil
    drop_unused_events(T)  -- those of progress deliveries the final one superseded
    for _, tenant in ipairs(tenants_of(T)) do UNTRACKED[#UNTRACKED + 1] = id .. ' ' .. tenant end
    -- Wakes the API processes' long-polls (`GET /v1/tasks/{id}/wait`) for this task.
    redis.call('PUBLISH', ARGV[3], id)
    save(key, T)
    settle(key, T, retention)
  else
    -- Still tracked: its record has no expiry (REGISTER took any away).
    due_set(id, tonumber(next_due), score)
    if shared() then fair_move(T, id, next_due) end
    save(key, T)
  end
  return 'ok'
end

local replies = {}
for _, o in ipairs(cmsgpack.unpack(ARGV[5])) do
  name_buckets_of(o[2], o[1] + 1)
  local ok, reply = pcall(apply_one, KEYS[o[1]], o[2], o[3], o[4], o[5], o[6], o[7], o[8],
    o[9], o[10], o[11])
  replies[#replies + 1] = ok and reply or 'error'
end
return {replies, SKIPPED, UNTRACKED}
"""
)

# KEYS: the task's record, its shard's poll schedule heads, fair queue masks and fair
#       counts, then the task's poll schedule bucket and fair queue part
#       (keys.signal_keys)
# ARGV: task id, now ms, signals (how many quick re-fetches may follow if the fetch
#       still answers the old state), the number of buckets a shard's schedule has
# The upstream called back for the task: poll it now, within the shared rate
# limit like any poll (a claim in flight loses its lease and its write-back, so
# the fresher fetch wins). Returns 'ignored' for a task nobody tracks or a final
# one, else 'signalled'.
SIGNAL = (
    """
local KEY, HEADS, FAIR_MASKS, FAIR_COUNTS = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local DUE0, DUE_BUCKETS = nil, tonumber(ARGV[4])
"""
    + _RECORD
    + _DUE
    + _FAIR
    + """
local id, now, signals = ARGV[1], tonumber(ARGV[2]), ARGV[3]
name_buckets_of(id, 5)
if not due_earlier(id, now) then return 'ignored' end
local T = load(KEY)
if T then
  if not T.fd or tonumber(T.fd) > now then fair_move(T, id, now) end
  T.sg = signals
  save(KEY, T)
end
return 'signalled'
"""
)

# KEYS: one shard's delivery queue (keys.delivery_due)
# ARGV: now, limit, lease ms
# Takes due deliveries and pushes each one's due time a lease ahead; the caller reads
# them from their tasks' records. Returns {lease, {delivery id, ...}} or {}.
CLAIM_DELIVERIES = """
local now, limit, lease_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
if #ids == 0 then return {} end
local lease = now + lease_ms
for _, did in ipairs(ids) do redis.call('ZADD', KEYS[1], lease, did) end
return {lease, ids}
"""

# KEYS: one shard's delivery queue, then the record of each task named
# ARGV: now, retention ms, then for each finished attempt 7 values:
#       the index in KEYS of its task's record, task id, delivery key (the id's end),
#       lease, outcome (retry|delivered|failed|gone|drop), next due ms (retry only),
#       attempt JSON ('' for none)
# Returns {one of 'ok' | 'lost' | 'missing' per attempt, {'<tenant> <delivery id>' of
# each that failed}}: the caller lists those in the tenant's failed deliveries.
FINISH_DELIVERY = (
    """
local DLV_DUE = KEYS[1]
"""
    + _RECORD
    + _DELIVERIES
    + """
local now, retention = tonumber(ARGV[1]), tonumber(ARGV[2])
local failed = {}

local function append_attempt(T, k, attempt)
  local kept = {}
  local log = T['a:' .. k]
  if log then for a in string.gmatch(log, '[^' .. AS .. ']+') do kept[#kept + 1] = a end end
  kept[#kept + 1] = attempt
  while #kept > 100 do table.remove(kept, 1) end
  T['a:' .. k] = table.concat(kept, AS)
end

local function finish_one(key, id, k, lease, outcome, next_due, attempt)
  local did = did_of(id, k)
  local T = load(key)
  local d = T and dget(T, k)
  if not d then
    redis.call('ZREM', DLV_DUE, did)
    return 'missing'
  end
  if attempt ~= '' then
    append_attempt(T, k, attempt)
    d[ATTEMPT] = tostring(tonumber(d[ATTEMPT]) + 1)
    dput(T, k, d)
  end
  local score = redis.call('ZSCORE', DLV_DUE, did)
  if not score or tonumber(score) ~= tonumber(lease) then
    save(key, T)
    return 'lost'
  end
  if outcome == 'retry' and d[SUPERSEDED] == '1' then
    -- The final event replaced this progress event while it was in flight.
    outcome = 'drop'
  end
  if outcome == 'retry' then
    schedule(id, k, d, tonumber(next_due))
    dput(T, k, d)
    save(key, T)
    return 'ok'
  end
  local tenant = d[TENANT]
  redis.call('ZREM', DLV_DUE, did)
  if outcome == 'drop' then
    forget(T, id, tenant, k)
    drop_unused_events(T)
  else
    d[STATUS], d[ENDED], d[NEXT] = outcome, string.format('%d', now), nil
    dput(T, k, d)
    if outcome == 'failed' then failed[#failed + 1] = tenant .. ' ' .. did end
  end
  local outbox = without(words(T['o:' .. tenant]), k)
  if outcome == 'gone' then
    -- 410 ends this registration's webhooks: what is still queued goes nowhere, and
    -- ends like this one.
    T['g:' .. tenant] = d[RID]
    for _, other in ipairs(outbox) do
      local o = dget(T, other)
      redis.call('ZREM', DLV_DUE, did_of(id, other))
      if o then
        o[STATUS], o[ENDED], o[NEXT] = 'gone', string.format('%d', now), nil
        dput(T, other, o)
      end
    end
    outbox = {}
  elseif outbox[1] then
    local head = dget(T, outbox[1])
    if head then
      schedule(id, outbox[1], head, now)
      dput(T, outbox[1], head)
    end
  end
  T['o:' .. tenant] = join(outbox)
  save(key, T)
  settle(key, T, retention)
  return 'ok'
end

local replies = {}
for i = 3, #ARGV, 7 do
  replies[#replies + 1] = finish_one(KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2],
    ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6])
end
return {replies, failed}
"""
)

# KEYS: the task's record, its shard's delivery queue
# ARGV: tenant, task_id, now, delivery key ('' for the latest), retention ms
# Starts a new attempt series for a delivery of this registration (by default
# its latest), same webhook-id. Returns the delivery id, or false when there
# is none; the caller takes it out of the tenant's failed deliveries.
REDELIVER = (
    """
local KEY, DLV_DUE = KEYS[1], KEYS[2]
"""
    + _RECORD
    + _DELIVERIES
    + """
local tenant, id, now, k = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local retention = tonumber(ARGV[5])
local T = load(KEY)
if not T then return false end
if k == '' then
  local listing = words(T['l:' .. tenant])
  k = listing[#listing]
  if not k then return false end
end
local d = dget(T, k)
if not d or d[TENANT] ~= tenant then return false end
local outbox = words(T['o:' .. tenant])
if d[STATUS] == 'pending' then
  -- Already on its way: bring a waiting retry forward rather than queue it twice.
  if outbox[1] == k and not in_flight(id, k, d, now) then
    schedule(id, k, d, now)
    dput(T, k, d)
    save(KEY, T)
  end
  return did_of(id, k)
end
T['g:' .. tenant] = nil
d[STATUS], d[ATTEMPT], d[SERIES] = 'pending', '0', tostring(tonumber(d[SERIES]) + 1)
d[ENDED], d[SUPERSEDED], d[SERIES_START] = nil, nil, string.format('%d', now)
outbox[#outbox + 1] = k
T['o:' .. tenant] = join(outbox)
if outbox[1] == k then schedule(id, k, d, now) end
dput(T, k, d)
save(KEY, T)
settle(KEY, T, retention)
return did_of(id, k)
"""
)
