#!lua name=dispatch___VERSION__
--[[
The dispatch state machine: every transition that must be atomic, as one Redis function library.

Each function is called with one key, the namespace's event stream (`{ns}:events`), which routes
the call on a cluster (all keys of a namespace share the `{ns}` hash tag) and from which the key
prefix is derived. Every state change appends an event to that stream in the same atomic step;
`ts` is always Redis's own clock (TIME), the one authoritative clock.

Functions reply with an array whose first element is `ok` (or another success word) or an error
code from shared/src/error.rs (`offer_not_found`, `offer_expired`, ...).

Matching happens where the change happens, so that no change waits for another process:

- A function that frees an agent (accept with capacity left, complete, decline, an offer lapsing,
  going available, reconnecting, a profile change, a cancelled ticket) offers it, in the same
  atomic step, the best ticket waiting for an agent ([`serve`]). Such functions take an offer id
  and the offer timeout for that offer.
- A ticket that needs an agent is "routing" (in the `routing` zset) until the choice policy, which
  runs in the dispatcher (dispatcher/src/policy.rs), has picked its agent: `candidates` returns the
  agents that can be best and `offer_ticket` makes the offer. When no agent is eligible the ticket
  is parked in its language's queue, where a freed agent finds it. A new ticket gets its first
  page of candidates from `create_ticket` itself; a ticket that comes back (declined, lapsed,
  withdrawn, requeued) is also pushed on the `routeq` list, which the dispatchers pop. A routing
  ticket no dispatcher finished with (it crashed) is picked up again by `stale_routing`.

A routing ticket is not in any queue, so a freed agent does not take it: it goes to the agent the
policy picks among all free agents, whichever of the two changes landed first.

Agent hash fields: profile (JSON as stored), langs ("sv,en"), skills ("refunds:4,disputes:2"),
regions (",eu,nordics,"), max, status, connected ("1"/"0"), conn, inst, active, offer, idle_since,
missed, shift, shift_started, rate, currency, tz, last_seen, disc_at, lost, idx (free-index keys,
"|"-sep), iscore (their score).
Ticket hash fields: conv, lang, req ("refunds:3"), skills (JSON), prio, region, pref, summary,
context (JSON), status, agent, offer, offer_agent, offers, created, qscore, queued_at,
assigned_at, completed_at, cancelled_at, outcome, note.
]]

-- A last-resort cap: the ledger trims what it has stored; the cap only bounds memory if no ledger
-- runs for days.
local MAXLEN = '20000000'
local OFFER_KEEP_SECS = 3600
-- How many waiting tickets per language a freed agent looks at.
local QUEUE_SCAN = 256

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function prefix_of(keys)
  return string.sub(keys[1], 1, -7)
end

local function fmt(n)
  return string.format('%.0f', n)
end

-- HMGET of `fields` as a table; nil when the hash does not exist (its first field is nil: every
-- field list below starts with one that every such hash has).
local function hmget(key, fields)
  local values = redis.call('HMGET', key, unpack(fields))
  if not values[1] then return nil end
  local t = {}
  for i, f in ipairs(fields) do
    if values[i] then t[f] = values[i] end
  end
  return t
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- What the state machine reads of an agent and a ticket (not the profile JSON, the context or the
-- summary, which can be large): HMGET of these instead of HGETALL.
local AGENT_FIELDS = {'status', 'langs', 'skills', 'regions', 'max', 'connected', 'conn', 'inst',
  'active', 'offer', 'idle_since', 'missed', 'shift', 'rate', 'currency', 'tz', 'disc_at', 'lost'}
local CANDIDATE_FIELDS = {'status', 'langs', 'skills', 'regions', 'max', 'connected', 'active',
  'offer', 'idle_since'}
local TICKET_FIELDS = {'status', 'lang', 'req', 'region', 'pref', 'agent', 'offer', 'offer_agent',
  'qscore'}

local function list(s, sep)
  local out = {}
  if s == nil or s == '' then return out end
  for item in string.gmatch(s, '[^' .. sep .. ']+') do out[#out + 1] = item end
  return out
end

-- "refunds:3,disputes:1" -> {refunds = 3, disputes = 1}
local function levels(s)
  local out = {}
  if s == nil or s == '' then return out end
  for name, lvl in string.gmatch(s, '([^,:]+):(%d+)') do out[name] = tonumber(lvl) end
  return out
end

local function emit(P, now, kind, fields)
  local args = {P .. 'events', 'MAXLEN', '~', MAXLEN, '*', 'type', kind, 'ts', fmt(now)}
  for i = 1, #fields do args[#args + 1] = fields[i] end
  redis.call('XADD', unpack(args))
end

local function push(P, msg)
  redis.call('PUBLISH', P .. 'push', cjson.encode(msg))
end

local function agent_key(P, id) return P .. 'agent:' .. id end
local function ticket_key(P, id) return P .. 'ticket:' .. id end

local function is_free(a)
  return a.status == 'available' and a.connected == '1'
    and tonumber(a.active) < tonumber(a.max) and (a.offer == nil or a.offer == '')
end

-- Puts the agent in exactly the free indexes it belongs in now (none unless it can take an offer),
-- touching Redis only where that changed. The recorded keys and score are read from Redis, not
-- from `a`: a nested call may have re-indexed the agent since the caller read its hash.
local function reindex(P, id, a)
  local k = agent_key(P, id)
  local rec = redis.call('HMGET', k, 'idx', 'iscore')
  local old_idx, old_score = rec[1] or '', rec[2] or ''
  local idx, score = '', ''
  local keys = {}
  if is_free(a) then
    score = fmt(tonumber(a.active) * 1e13 + tonumber(a.idle_since))
    local skills = list(a.skills, ',')
    local regions = list(a.regions, ',')
    for _, lang in ipairs(list(a.langs, ',')) do
      local base = P .. 'free:' .. lang
      keys[#keys + 1] = base
      for _, pair in ipairs(skills) do
        keys[#keys + 1] = base .. ':' .. string.match(pair, '^[^:]+')
      end
      for _, region in ipairs(regions) do keys[#keys + 1] = base .. ':@' .. region end
    end
    idx = table.concat(keys, '|')
  end
  if idx == old_idx and score == old_score then return end
  if idx ~= old_idx then
    for _, key in ipairs(list(old_idx, '|')) do redis.call('ZREM', key, id) end
  end
  for _, key in ipairs(keys) do redis.call('ZADD', key, score, id) end
  redis.call('HSET', k, 'idx', idx, 'iscore', score)
end

-- Whether agent `aid` (fields `a`) may be offered ticket `tid` (fields `t`): API.md §5.
local function eligible(P, aid, a, tid, t)
  if not is_free(a) then return false end
  if not string.find(',' .. (a.langs or '') .. ',', ',' .. t.lang .. ',', 1, true) then
    return false
  end
  if t.req ~= nil and t.req ~= '' then
    local have = levels(a.skills)
    for skill, need in pairs(levels(t.req)) do
      if (have[skill] or 0) < need then return false end
    end
  end
  if t.region ~= nil and t.region ~= '' then
    if not string.find(a.regions or '', ',' .. t.region .. ',', 1, true) then return false end
  end
  return redis.call('SISMEMBER', ticket_key(P, tid) .. ':declined', aid) == 0
end

local function summed_level(a, t)
  local have, sum = levels(a.skills), 0
  for skill, _ in pairs(levels(t.req)) do sum = sum + (have[skill] or 0) end
  return sum
end

-- Offer ids for the offers one call makes: the caller's id for the first, then `<id>.002`, ...
local function offer_ids(base)
  local n = 0
  return function()
    n = n + 1
    if n == 1 then return base end
    return string.format('%s.%03d', base, n)
  end
end

-- The ticket needs an agent: it is queued, in no queue, until the policy has picked its agent
-- (`signal`: and a dispatcher is told to route it).
local function to_routing(P, tid, now, signal)
  redis.call('HSET', ticket_key(P, tid), 'status', 'queued', 'agent', '', 'offer', '',
    'offer_agent', '', 'queued_at', fmt(now))
  redis.call('ZADD', P .. 'routing', fmt(now), tid)
  if signal then redis.call('LPUSH', P .. 'routeq', tid) end
end

-- No agent can take the ticket now: it waits in its language's queue for a freed agent.
local function park(P, tid, t)
  redis.call('ZADD', P .. 'queue:' .. t.lang, t.qscore, tid)
  redis.call('SADD', P .. 'queues', t.lang)
  redis.call('ZREM', P .. 'routing', tid)
end

-- Makes offer `oid` of ticket `tid` to agent `aid`; both were checked eligible by the caller.
local function reserve(P, tid, t, aid, a, oid, timeout_ms, now)
  local expires = now + timeout_ms
  local tk = ticket_key(P, tid)
  redis.call('HSET', tk, 'status', 'offered', 'offer', oid, 'offer_agent', aid)
  redis.call('HINCRBY', tk, 'offers', 1)
  redis.call('ZREM', P .. 'queue:' .. t.lang, tid)
  redis.call('ZREM', P .. 'routing', tid)
  redis.call('HSET', P .. 'offer:' .. oid, 'ticket', tid, 'agent', aid, 'status', 'pending',
    'created', fmt(now), 'expires', fmt(expires))
  redis.call('ZADD', P .. 'deadlines', fmt(expires), oid)
  a.offer = oid
  redis.call('HSET', agent_key(P, aid), 'offer', oid)
  reindex(P, aid, a)
  emit(P, now, 'offer_created', {'ticket', tid, 'agent', aid, 'offer', oid, 'expires', fmt(expires)})
  local shown = redis.call('HMGET', tk, 'summary', 'skills', 'prio', 'created')
  push(P, {kind = 'offer', agent = aid, offer_id = oid, ticket_id = tid, summary = shown[1],
    language = t.lang, skills = cjson.decode(shown[2]), priority = tonumber(shown[3]),
    created_ms = tonumber(shown[4]), now_ms = now, expires_ms = expires})
  return expires
end

-- API.md §5: a free agent is offered the waiting ticket it is eligible for with the highest
-- priority, oldest first. `offer` is {next = offer id maker, timeout = ms}. Returns the ticket.
local function serve(P, aid, a, now, offer)
  if not is_free(a) then return nil end
  local best_tid, best_t, best_score = nil, nil, nil
  for _, lang in ipairs(list(a.langs, ',')) do
    local entries = redis.call('ZRANGE', P .. 'queue:' .. lang, 0, QUEUE_SCAN - 1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      local tid, score = entries[i], tonumber(entries[i + 1])
      if best_score and score >= best_score then break end
      local t = hmget(ticket_key(P, tid), TICKET_FIELDS)
      if t and t.status == 'queued' and eligible(P, aid, a, tid, t) then
        best_tid, best_t, best_score = tid, t, score
        break
      end
    end
  end
  if not best_tid then return nil end
  reserve(P, best_tid, best_t, aid, a, offer.next(), offer.timeout, now)
  return best_tid
end

-- Ends pending offer `oid` (fields `o`): the ticket goes back to routing, the agent is freed.
-- `why` is expired, declined, cancelled (ticket cancelled) or withdrawn (agent left).
-- Returns the agent's fields (nil if it is gone).
local function end_offer(P, oid, o, why, now, notify)
  redis.call('ZREM', P .. 'deadlines', oid)
  redis.call('HSET', P .. 'offer:' .. oid, 'status', why, 'ended', fmt(now))
  redis.call('EXPIRE', P .. 'offer:' .. oid, OFFER_KEEP_SECS)
  local a = hmget(agent_key(P, o.agent), AGENT_FIELDS)
  if a and a.offer == oid then
    a.offer = ''
    redis.call('HSET', agent_key(P, o.agent), 'offer', '')
    reindex(P, o.agent, a)
  end
  local t = hmget(ticket_key(P, o.ticket), TICKET_FIELDS)
  if t and t.status == 'offered' and t.offer == oid then
    if why == 'expired' or why == 'declined' then
      redis.call('SADD', ticket_key(P, o.ticket) .. ':declined', o.agent)
    end
    if why ~= 'cancelled' then to_routing(P, o.ticket, now, true) end
  end
  if notify and a then
    local reason = 'cancelled'
    if why == 'expired' then reason = 'expired' end
    push(P, {kind = 'offer_revoked', agent = o.agent, offer_id = oid, ticket_id = o.ticket, reason = reason})
  end
  return a
end

-- Sends every ticket the agent holds back to routing.
local function requeue_held(P, aid, a, now)
  local held = redis.call('SMEMBERS', agent_key(P, aid) .. ':tickets')
  for _, tid in ipairs(held) do
    local t = hmget(ticket_key(P, tid), TICKET_FIELDS)
    if t and t.status == 'assigned' and t.agent == aid then
      to_routing(P, tid, now, true)
      redis.call('HSET', ticket_key(P, tid), 'assigned_at', '')
      emit(P, now, 'ticket_requeued', {'ticket', tid, 'agent', aid})
    end
  end
  redis.call('DEL', agent_key(P, aid) .. ':tickets')
  a.active = '0'
  redis.call('HSET', agent_key(P, aid), 'active', '0')
end

-- Withdraws the agent's pending offer, if any (the agent left; the ticket is re-routed).
local function withdraw_offer(P, aid, a, now, notify)
  if a.offer ~= nil and a.offer ~= '' then
    local oid = a.offer
    local o = hgetall(P .. 'offer:' .. oid)
    if o and o.status == 'pending' then
      end_offer(P, oid, o, 'withdrawn', now, notify)
      emit(P, now, 'offer_withdrawn', {'ticket', o.ticket, 'agent', aid, 'offer', oid})
    end
    a.offer = ''
    redis.call('HSET', agent_key(P, aid), 'offer', '')
  end
end

-- Ends the agent's shift at `ended_at` (the shift's last moment), for `reason`.
local function end_shift(P, aid, a, now, ended_at, reason)
  withdraw_offer(P, aid, a, now, reason == 'requested')
  requeue_held(P, aid, a, now)
  if a.shift ~= nil and a.shift ~= '' then
    emit(P, now, 'shift_ended', {'agent', aid, 'shift', a.shift, 'ended_at', fmt(ended_at), 'reason', reason})
  end
  a.status, a.shift = 'offline', ''
  redis.call('HSET', agent_key(P, aid), 'status', 'offline', 'shift', '', 'missed', '0')
  redis.call('ZREM', P .. 'grace', aid)
  reindex(P, aid, a)
end

local function set_status_event(P, aid, a, status, reason, now)
  a.status = status
  redis.call('HSET', agent_key(P, aid), 'status', status)
  emit(P, now, 'agent_status', {'agent', aid, 'status', status, 'reason', reason, 'shift', a.shift or ''})
end

-- Marks the agent's connection `conn` gone at `at`; starts the grace period if on shift.
-- `lost` marks a connection whose gateway died: a shift it ends is marked recovered.
local function drop_connection(P, aid, a, conn, at, grace_ms, now, lost)
  if a.conn ~= conn or a.connected ~= '1' then return false end
  a.connected = '0'
  redis.call('HSET', agent_key(P, aid), 'connected', '0', 'disc_at', fmt(at), 'last_seen', fmt(at),
    'lost', lost and '1' or '0')
  if a.inst and a.inst ~= '' then redis.call('SREM', P .. 'gw:' .. a.inst .. ':conns', aid) end
  withdraw_offer(P, aid, a, now, false)
  if a.status ~= 'offline' then redis.call('ZADD', P .. 'grace', fmt(at + grace_ms), aid) end
  reindex(P, aid, a)
  emit(P, now, 'agent_disconnected', {'agent', aid, 'conn', conn, 'at', fmt(at)})
  return true
end

-- The agents that can be best for queued ticket `tid` (fields `t`), from index entry `offset`,
-- looking at `limit` entries: {next offset or -1, then per candidate: id, active, idle_since,
-- summed level, preferred (1/0)}. Only the first (active, idle_since) group of eligible agents
-- in index order can hold the best agent (plus the preferred agent), so only those are returned.
-- A ticket nobody in the whole index can take is parked.
local function find_candidates(P, tid, t, offset, limit)
  local out = {'-1'}
  local function add(aid, a, preferred)
    out[#out + 1] = aid
    out[#out + 1] = a.active
    out[#out + 1] = a.idle_since
    out[#out + 1] = tostring(summed_level(a, t))
    out[#out + 1] = preferred
  end
  local pref = t.pref or ''
  if offset == 0 and pref ~= '' then
    local a = hmget(agent_key(P, pref), CANDIDATE_FIELDS)
    if a and eligible(P, pref, a, tid, t) then add(pref, a, '1') end
  end
  -- The smallest index that holds every eligible agent: by language, and narrower by a skill
  -- or the region the ticket needs.
  local index = P .. 'free:' .. t.lang
  local narrower = {}
  for skill, _ in pairs(levels(t.req)) do narrower[#narrower + 1] = P .. 'free:' .. t.lang .. ':' .. skill end
  if t.region ~= nil and t.region ~= '' then narrower[#narrower + 1] = P .. 'free:' .. t.lang .. ':@' .. t.region end
  local best = -1
  for _, key in ipairs(narrower) do
    local n = redis.call('ZCARD', key)
    if best < 0 or n < best then index, best = key, n end
  end
  -- Read the index in small chunks: usually the first entry is the answer.
  local first, seen, chunk = nil, 0, 16
  while seen < limit do
    local n = math.min(chunk, limit - seen)
    local entries = redis.call('ZRANGE', index, offset + seen, offset + seen + n - 1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      local aid, score = entries[i], tonumber(entries[i + 1])
      if first and score > first then return out end
      if aid ~= pref then
        local a = hmget(agent_key(P, aid), CANDIDATE_FIELDS)
        if a and eligible(P, aid, a, tid, t) then
          first = first or score
          add(aid, a, '0')
        end
      end
    end
    seen = seen + #entries / 2
    if #entries < 2 * n then
      if #out == 1 then park(P, tid, t) end
      return out
    end
    chunk = chunk * 4
  end
  if first == nil then out[1] = tostring(offset + limit) end
  return out
end

-- PUT /v1/agents/{id}. ARGV: id, profile JSON, langs, skills, regions, max, rate, currency, tz,
-- offer id, offer timeout ms.
local function put_agent(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local aid = args[1]
  local k = agent_key(P, aid)
  local a = hmget(k, AGENT_FIELDS)
  local created = a == nil
  if created then
    a = {status = 'offline', connected = '0', active = '0', offer = '', idle_since = '0',
      missed = '0', shift = '', conn = '', inst = ''}
    redis.call('HSET', k, 'status', a.status, 'connected', a.connected, 'active', a.active,
      'offer', '', 'idle_since', '0', 'missed', '0', 'shift', '', 'conn', '', 'inst', '',
      'idx', '', 'iscore', '')
    redis.call('ZADD', P .. 'agents', 0, aid)
  end
  a.langs, a.skills, a.regions, a.max = args[3], args[4], args[5], args[6]
  redis.call('HSET', k, 'profile', args[2], 'langs', args[3], 'skills', args[4], 'regions', args[5],
    'max', args[6], 'rate', args[7], 'currency', args[8], 'tz', args[9])
  reindex(P, aid, a)
  emit(P, now, 'agent_upserted', {'agent', aid})
  serve(P, aid, a, now, {next = offer_ids(args[10]), timeout = tonumber(args[11])})
  if created then return {'created'} end
  return {'updated'}
end

-- DELETE /v1/agents/{id}.
local function remove_agent(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local aid = args[1]
  local a = hmget(agent_key(P, aid), AGENT_FIELDS)
  if not a then return {'agent_not_found'} end
  if a.connected == '1' then
    push(P, {kind = 'status', agent = aid, status = 'offline', reason = 'removed'})
    push(P, {kind = 'close', agent = aid, conn = a.conn, code = 4003})
  end
  end_shift(P, aid, a, now, now, 'removed')
  if a.inst and a.inst ~= '' then redis.call('SREM', P .. 'gw:' .. a.inst .. ':conns', aid) end
  redis.call('DEL', agent_key(P, aid), agent_key(P, aid) .. ':tickets')
  redis.call('ZREM', P .. 'agents', aid)
  emit(P, now, 'agent_removed', {'agent', aid})
  return {'ok'}
end

-- POST /v1/tickets. ARGV: id, idempotency key ('' if none), body hash, how many free-index entries
-- to look at for candidates, then field/value pairs.
-- Reply: 'created', id, created ms, then as `candidates` (next offset, candidates); or
-- 'existing', id (an earlier ticket with the same key and body).
local function create_ticket(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local tid, ikey, hash, limit = args[1], args[2], args[3], tonumber(args[4])
  if ikey ~= '' then
    local seen = redis.call('GET', P .. 'idem:' .. ikey)
    if seen then
      local h, existing = string.match(seen, '^(.-)|(.*)$')
      if h ~= hash then return {'idempotency_key_reused'} end
      return {'existing', existing}
    end
  end
  local t = {}
  local fields = {}
  for i = 5, #args, 2 do
    t[args[i]] = args[i + 1]
    fields[#fields + 1] = args[i]
    fields[#fields + 1] = args[i + 1]
  end
  local seq = redis.call('INCR', P .. 'seq')
  t.qscore = fmt((9 - tonumber(t.prio)) * 1e14 + seq)
  t.status = 'queued'
  redis.call('HSET', ticket_key(P, tid), 'created', fmt(now), 'qscore', t.qscore, 'offers', '0',
    unpack(fields))
  to_routing(P, tid, now, false)
  if ikey ~= '' then
    redis.call('SET', P .. 'idem:' .. ikey, hash .. '|' .. tid, 'EX', 172800)
  end
  emit(P, now, 'ticket_created', {'ticket', tid, 'language', t.lang, 'priority', t.prio})
  local reply = {'created', tid, fmt(now)}
  for _, v in ipairs(find_candidates(P, tid, t, 0, limit)) do reply[#reply + 1] = v end
  return reply
end

-- Matching, step 1: the eligible agents that can be best for a queued ticket (see
-- `find_candidates`). ARGV: ticket id, offset into the index, how many index entries to look at.
-- Reply: 'candidates', next offset (-1 when done), then the candidates; or 'not_queued'.
local function candidates(keys, args)
  local P = prefix_of(keys)
  local tid, offset, limit = args[1], tonumber(args[2]), tonumber(args[3])
  local t = hmget(ticket_key(P, tid), TICKET_FIELDS)
  if not t or t.status ~= 'queued' then
    redis.call('ZREM', P .. 'routing', tid)
    return {'not_queued'}
  end
  local reply = {'candidates'}
  for _, v in ipairs(find_candidates(P, tid, t, offset, limit)) do reply[#reply + 1] = v end
  return reply
end

-- Matching, step 2: offer the ticket to the chosen agent, if both are still free.
-- ARGV: ticket id, agent id, offer id, timeout ms.
local function offer_ticket(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local tid, aid, oid, timeout = args[1], args[2], args[3], tonumber(args[4])
  local t = hmget(ticket_key(P, tid), TICKET_FIELDS)
  if not t or t.status ~= 'queued' then return {'ticket_not_queued'} end
  local a = hmget(agent_key(P, aid), AGENT_FIELDS)
  if not a or not eligible(P, aid, a, tid, t) then return {'agent_not_eligible'} end
  return {'offered', fmt(reserve(P, tid, t, aid, a, oid, timeout, now))}
end

-- Routing tickets that have waited `older` ms for a dispatcher (which must have died): their
-- time is reset, so that one dispatcher takes each. ARGV: max count, older (ms).
-- Reply: 'ok', then ticket ids.
local function stale_routing(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local due = redis.call('ZRANGEBYSCORE', P .. 'routing', '-inf', fmt(now - tonumber(args[2])),
    'LIMIT', 0, tonumber(args[1]))
  local reply = {'ok'}
  for _, tid in ipairs(due) do
    redis.call('ZADD', P .. 'routing', fmt(now), tid)
    reply[#reply + 1] = tid
  end
  return reply
end

local function pending_offer_of(P, aid, oid, now)
  local o = hgetall(P .. 'offer:' .. oid)
  if not o or o.agent ~= aid then return nil, 'offer_not_found' end
  if o.status == 'expired' then return nil, 'offer_expired' end
  if o.status ~= 'pending' then return nil, 'offer_not_found' end
  if now > tonumber(o.expires) then return nil, 'offer_expired' end
  return o, nil
end

-- The agent accepts. ARGV: agent id, offer id, next offer id, timeout ms (an agent with capacity
-- left is offered the next waiting ticket). Reply: 'ok', ticket id, then the ticket's fields.
local function accept(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local aid, oid = args[1], args[2]
  local o, err = pending_offer_of(P, aid, oid, now)
  if not o then return {err} end
  local a = hmget(agent_key(P, aid), AGENT_FIELDS)
  if not a then return {'offer_not_found'} end
  redis.call('ZREM', P .. 'deadlines', oid)
  redis.call('HSET', P .. 'offer:' .. oid, 'status', 'accepted', 'ended', fmt(now))
  redis.call('EXPIRE', P .. 'offer:' .. oid, OFFER_KEEP_SECS)
  redis.call('HSET', ticket_key(P, o.ticket), 'status', 'assigned', 'agent', aid, 'offer', '',
    'offer_agent', '', 'assigned_at', fmt(now))
  redis.call('SADD', agent_key(P, aid) .. ':tickets', o.ticket)
  a.offer, a.active, a.idle_since, a.missed = '', tostring(tonumber(a.active) + 1), fmt(now), '0'
  redis.call('HSET', agent_key(P, aid), 'offer', '', 'active', a.active, 'idle_since', a.idle_since,
    'missed', '0', 'last_seen', fmt(now))
  reindex(P, aid, a)
  emit(P, now, 'ticket_assigned', {'ticket', o.ticket, 'agent', aid, 'offer', oid, 'shift', a.shift or ''})
  local reply = {'ok', o.ticket}
  for _, v in ipairs(redis.call('HGETALL', ticket_key(P, o.ticket))) do reply[#reply + 1] = v end
  serve(P, aid, a, now, {next = offer_ids(args[3]), timeout = tonumber(args[4])})
  return reply
end

-- The agent declines. ARGV: agent id, offer id, reason, next offer id, timeout ms.
local function decline(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local aid, oid = args[1], args[2]
  local o, err = pending_offer_of(P, aid, oid, now)
  if not o then return {err} end
  redis.call('HSET', agent_key(P, aid), 'missed', '0', 'last_seen', fmt(now))
  local a = end_offer(P, oid, o, 'declined', now, false)
  emit(P, now, 'offer_declined', {'ticket', o.ticket, 'agent', aid, 'offer', oid, 'reason', args[3] or ''})
  if a then serve(P, aid, a, now, {next = offer_ids(args[4]), timeout = tonumber(args[5])}) end
  return {'ok'}
end

-- Offers past their deadline lapse. ARGV: max count, missed offers before away, offer id for the
-- offers made to the freed agents, timeout ms. Reply: 'ok', how many lapsed.
local function expire_offers(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local limit, threshold = tonumber(args[1]), tonumber(args[2])
  local offer = {next = offer_ids(args[3]), timeout = tonumber(args[4])}
  local due = redis.call('ZRANGEBYSCORE', P .. 'deadlines', '-inf', fmt(now), 'LIMIT', 0, limit)
  for _, oid in ipairs(due) do
    local o = hgetall(P .. 'offer:' .. oid)
    if o and o.status == 'pending' then
      local a = end_offer(P, oid, o, 'expired', now, true)
      emit(P, now, 'offer_expired', {'ticket', o.ticket, 'agent', o.agent, 'offer', oid})
      if a then
        local missed = redis.call('HINCRBY', agent_key(P, o.agent), 'missed', 1)
        if missed >= threshold and a.status == 'available' then
          set_status_event(P, o.agent, a, 'away', 'missed_offers', now)
          reindex(P, o.agent, a)
          push(P, {kind = 'status', agent = o.agent, status = 'away', reason = 'missed_offers'})
        end
        serve(P, o.agent, a, now, offer)
      end
    else
      redis.call('ZREM', P .. 'deadlines', oid)
    end
  end
  return {'ok', tostring(#due)}
end

-- The agent completes a ticket. ARGV: agent id, ticket id, outcome, note, next offer id,
-- timeout ms.
local function complete(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local aid, tid = args[1], args[2]
  local t = hmget(ticket_key(P, tid), TICKET_FIELDS)
  if not t or t.status ~= 'assigned' or t.agent ~= aid then return {'ticket_not_found'} end
  local a = hmget(agent_key(P, aid), AGENT_FIELDS)
  if not a then return {'ticket_not_found'} end
  redis.call('HSET', ticket_key(P, tid), 'status', 'completed', 'completed_at', fmt(now),
    'outcome', args[3], 'note', args[4] or '')
  redis.call('SREM', agent_key(P, aid) .. ':tickets', tid)
  a.active = tostring(math.max(0, tonumber(a.active) - 1))
  redis.call('HSET', agent_key(P, aid), 'active', a.active, 'last_seen', fmt(now))
  reindex(P, aid, a)
  emit(P, now, 'ticket_completed', {'ticket', tid, 'agent', aid, 'outcome', args[3], 'shift', a.shift or ''})
  serve(P, aid, a, now, {next = offer_ids(args[5]), timeout = tonumber(args[6])})
  return {'ok'}
end

-- DELETE /v1/tickets/{id}. ARGV: ticket id, offer id for the freed agent, timeout ms.
-- Reply: 'ok' or an error code.
local function cancel_ticket(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local tid = args[1]
  local t = hmget(ticket_key(P, tid), TICKET_FIELDS)
  if not t then return {'ticket_not_found'} end
  if t.status == 'completed' then return {'ticket_completed'} end
  if t.status == 'cancelled' then return {'ok'} end
  local freed, a = '', nil
  if t.status == 'queued' then
    redis.call('ZREM', P .. 'queue:' .. t.lang, tid)
    redis.call('ZREM', P .. 'routing', tid)
  elseif t.status == 'offered' then
    local o = hgetall(P .. 'offer:' .. t.offer)
    if o then a = end_offer(P, t.offer, o, 'cancelled', now, true) end
    freed = t.offer_agent
  elseif t.status == 'assigned' then
    a = hmget(agent_key(P, t.agent), AGENT_FIELDS)
    if a then
      redis.call('SREM', agent_key(P, t.agent) .. ':tickets', tid)
      a.active = tostring(math.max(0, tonumber(a.active) - 1))
      redis.call('HSET', agent_key(P, t.agent), 'active', a.active)
      reindex(P, t.agent, a)
      push(P, {kind = 'ticket_cancelled', agent = t.agent, ticket_id = tid})
    end
    freed = t.agent
  end
  redis.call('HSET', ticket_key(P, tid), 'status', 'cancelled', 'cancelled_at', fmt(now), 'offer', '',
    'offer_agent', '')
  emit(P, now, 'ticket_cancelled', {'ticket', tid, 'agent', freed, 'was', t.status})
  if a then serve(P, freed, a, now, {next = offer_ids(args[2]), timeout = tonumber(args[3])}) end
  return {'ok'}
end

-- The agent asks for a status. ARGV: agent id, status, a fresh shift id (used if a shift starts),
-- offer id (for an agent that goes available), timeout ms. Reply: 'ok', status, shift id.
local function set_status(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local aid, want, new_shift = args[1], args[2], args[3]
  local a = hmget(agent_key(P, aid), AGENT_FIELDS)
  if not a then return {'agent_not_found'} end
  redis.call('HSET', agent_key(P, aid), 'last_seen', fmt(now))
  if want == a.status then return {'ok', a.status, a.shift or ''} end
  if want == 'offline' then
    end_shift(P, aid, a, now, now, 'requested')
    emit(P, now, 'agent_status', {'agent', aid, 'status', 'offline', 'reason', 'requested', 'shift', ''})
    return {'ok', 'offline', ''}
  end
  if a.status == 'offline' then
    if want ~= 'available' then return {'invalid_status_transition'} end
    a.shift, a.idle_since = new_shift, fmt(now)
    redis.call('HSET', agent_key(P, aid), 'shift', new_shift, 'shift_started', fmt(now),
      'idle_since', a.idle_since)
    emit(P, now, 'shift_started', {'agent', aid, 'shift', new_shift, 'rate', a.rate or '0',
      'currency', a.currency or '', 'tz', a.tz or 'UTC'})
  end
  if want == 'available' then redis.call('HSET', agent_key(P, aid), 'missed', '0') end
  set_status_event(P, aid, a, want, 'requested', now)
  reindex(P, aid, a)
  serve(P, aid, a, now, {next = offer_ids(args[4]), timeout = tonumber(args[5])})
  return {'ok', a.status, a.shift or ''}
end

-- A WebSocket was authenticated. ARGV: agent id, connection id, gateway instance id, offer id (for
-- an agent that is free again), timeout ms.
-- Reply: 'ok', status, shift id, pending offer id, then assigned ticket ids.
local function connect(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local aid, conn, inst = args[1], args[2], args[3]
  local a = hmget(agent_key(P, aid), AGENT_FIELDS)
  if not a then return {'agent_not_found'} end
  local grace_end = redis.call('ZSCORE', P .. 'grace', aid)
  if grace_end and a.connected ~= '1' and tonumber(grace_end) <= now then
    local reason = 'disconnected'
    if a.lost == '1' then reason = 'recovered' end
    end_shift(P, aid, a, now, tonumber(a.disc_at or now), reason)
  end
  if a.connected == '1' and a.conn ~= '' and a.conn ~= conn then
    push(P, {kind = 'close', agent = aid, conn = a.conn, code = 4009})
    if a.inst and a.inst ~= '' then redis.call('SREM', P .. 'gw:' .. a.inst .. ':conns', aid) end
  end
  redis.call('ZREM', P .. 'grace', aid)
  a.connected, a.conn, a.inst = '1', conn, inst
  redis.call('HSET', agent_key(P, aid), 'connected', '1', 'conn', conn, 'inst', inst,
    'last_seen', fmt(now))
  redis.call('SADD', P .. 'gw:' .. inst .. ':conns', aid)
  reindex(P, aid, a)
  emit(P, now, 'agent_connected', {'agent', aid, 'conn', conn, 'shift', a.shift or ''})
  serve(P, aid, a, now, {next = offer_ids(args[4]), timeout = tonumber(args[5])})
  local reply = {'ok', a.status, a.shift or '', a.offer or ''}
  for _, tid in ipairs(redis.call('SMEMBERS', agent_key(P, aid) .. ':tickets')) do
    reply[#reply + 1] = tid
  end
  return reply
end

-- A WebSocket closed. ARGV: agent id, connection id, grace ms.
local function disconnect(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local aid = args[1]
  local a = hmget(agent_key(P, aid), AGENT_FIELDS)
  if not a then return {'ok'} end
  drop_connection(P, aid, a, args[2], now, tonumber(args[3]), now, false)
  return {'ok'}
end

-- Grace periods that ran out end their shifts at the drop. ARGV: max count.
local function expire_grace(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local due = redis.call('ZRANGEBYSCORE', P .. 'grace', '-inf', fmt(now), 'LIMIT', 0, tonumber(args[1]))
  for _, aid in ipairs(due) do
    local a = hmget(agent_key(P, aid), AGENT_FIELDS)
    if a and a.connected ~= '1' then
      local reason = 'disconnected'
      if a.lost == '1' then reason = 'recovered' end
      end_shift(P, aid, a, now, tonumber(a.disc_at or now), reason)
    else
      redis.call('ZREM', P .. 'grace', aid)
    end
  end
  return {'ok', tostring(#due)}
end

-- A gateway instance stopped heartbeating: its connections are gone since its last heartbeat.
-- ARGV: instance id, grace ms.
local function reap_gateway(keys, args)
  local P, now = prefix_of(keys), now_ms()
  local inst, grace = args[1], tonumber(args[2])
  local seen = tonumber(redis.call('ZSCORE', P .. 'gateways', inst) or now)
  local n = 0
  for _, aid in ipairs(redis.call('SMEMBERS', P .. 'gw:' .. inst .. ':conns')) do
    local a = hmget(agent_key(P, aid), AGENT_FIELDS)
    if a and a.inst == inst and drop_connection(P, aid, a, a.conn, seen, grace, now, true) then n = n + 1 end
  end
  redis.call('DEL', P .. 'gw:' .. inst .. ':conns')
  redis.call('ZREM', P .. 'gateways', inst)
  return {'ok', tostring(n)}
end

-- A lease held by one instance at a time (the ledger writer). ARGV: name, holder, ttl ms.
-- Reply: 'ok' if `holder` holds it now (taken or renewed), 'held' otherwise.
local function lease(keys, args)
  local P = prefix_of(keys)
  local key = P .. 'lease:' .. args[1]
  local current = redis.call('GET', key)
  if current and current ~= args[2] then return {'held'} end
  redis.call('SET', key, args[2], 'PX', tonumber(args[3]))
  return {'ok'}
end

-- Function names carry the library's content hash (filled in by shared/src/store/mod.rs), so
-- instances of different builds sharing a Redis (a rolling deploy) each call their own code.
local function register(name, fn)
  redis.register_function('dispatch_' .. name .. '___VERSION__', fn)
end
register('put_agent', put_agent)
register('remove_agent', remove_agent)
register('create_ticket', create_ticket)
register('candidates', candidates)
register('offer_ticket', offer_ticket)
register('stale_routing', stale_routing)
register('accept', accept)
register('decline', decline)
register('expire_offers', expire_offers)
register('complete', complete)
register('cancel_ticket', cancel_ticket)
register('set_status', set_status)
register('connect', connect)
register('disconnect', disconnect)
register('expire_grace', expire_grace)
register('reap_gateway', reap_gateway)
register('lease', lease)
