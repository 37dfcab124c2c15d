-- matching.lua: routing by the choice policy (API.md §5): a ticket that needs an agent is
-- offered to the best eligible agent, one agent at a time, or parked in the queues (queues.lua)
-- while no agent can take it.
--
-- The choice policy runs here, in the call that reserves the agent (`Match.route`), so a new
-- ticket is created and offered in one atomic call, with no race to retry. A ticket that comes
-- back (declined, lapsed, withdrawn) is "routing" (in the `routing` zset, and signalled on
-- `routeq`) until a dispatcher routes it with `route_ticket`. When no agent is eligible the
-- ticket is parked in its queues, where a freed agent finds it (`Queue.serve`). A routing
-- ticket is in no queue, so a freed agent does not take it: it goes to the agent the policy
-- picks among all free agents, whichever of the two changes landed first.

-- The offers one call may make ({next = id maker, timeout = ms}): the caller's id `base` for
-- the first, then `<base>.002`, ... Every transition that may free an agent takes the two.
function Match.offers(base, timeout)
  local n = 0
  return {
    timeout = tonumber(timeout),
    next = function()
      n = n + 1
      if n == 1 then return base end
      return string.format('%s.%03d', base, n)
    end,
  }
end

-- The ticket needs an agent: it is queued, in no queue, until the policy has picked its agent
-- (`signal`: and a dispatcher is told to route it, through `routeq`); `extra` (field, value,
-- ...) is written to its hash with the rest.
function Match.to_routing(P, tid, now, signal, extra)
  local pairs = {'status', 'queued', 'agent', '', 'offer', '', 'offer_agent', '', 'queued_at',
    U.fmt(now), 'wait', 'routing'}
  for _, v in ipairs(extra or {}) do pairs[#pairs + 1] = v end
  redis.call('HSET', K.key(P, 'ticket', tid), unpack(pairs))
  redis.call('ZADD', K.key(P, 'routing'), U.fmt(now), tid)
  if signal then redis.call('LPUSH', K.key(P, 'route_queue'), tid) end
end

-- The ticket (fields `t`) is no longer routing, if it was.
function Match.leave_routing(P, tid, t)
  if t.wait == nil or t.wait == 'routing' then redis.call('ZREM', K.key(P, 'routing'), tid) end
end

-- Makes offer `oid` of ticket `tid` to agent `aid`, both checked eligible by the caller, for
-- `timeout_ms` (API.md §5: one agent at a time; §6: the offer shows no context). Returns its
-- deadline.
function Match.reserve(P, tid, t, aid, a, oid, timeout_ms, now)
  local expires = now + timeout_ms
  local tk = K.key(P, 'ticket', tid)
  -- The ticket remembers its offers, so that their records leave Redis with it.
  local offer_ids = oid
  if not U.blank(t.offer_ids) then offer_ids = t.offer_ids .. ',' .. oid end
  Queue.unpark(P, tid, t)
  Match.leave_routing(P, tid, t)
  t.wait = ''
  Ticket.write(P, tid, t, {'status', 'offered', 'offer', oid, 'offer_agent', aid, 'offer_ids',
    offer_ids, 'offers', U.fmt(tonumber(t.offers or '0') + 1), 'wait', ''})
  redis.call('HSET', K.key(P, 'offer', oid), 'ticket', tid, 'agent', aid, 'status', 'pending',
    'created', U.fmt(now), 'expires', U.fmt(expires))
  redis.call('ZADD', K.key(P, 'deadlines'), U.fmt(expires), oid)
  a.offer = oid
  Agent.reindex(P, aid, a, {'offer', oid, 'pending', oid .. '|' .. tid .. '|' .. U.fmt(expires)})
  -- A ticket offered in the call that creates it has one event for both (`Ticket.create`).
  if not t.creating then
    U.emit(P, now, 'offer_created', {'ticket', tid, 'agent', aid, 'offer', oid, 'expires',
      U.fmt(expires)})
  end
  -- A ticket created in this call has what the offer shows at hand; others read it.
  if not t.summary then
    local shown = redis.call('HMGET', tk, unpack(Ticket.SHOWN))
    for i, f in ipairs(Ticket.SHOWN) do t[f] = shown[i] end
  end
  U.push(P, a, {kind = 'offer', agent = aid, offer_id = oid, ticket_id = tid, summary = t.summary,
    language = t.lang, skills = t.skills, priority = tonumber(t.prio),
    created_ms = tonumber(t.created), now_ms = now, expires_ms = expires})
  return expires
end

-- API.md §5, the choice policy: whether candidate `x` is a better choice than `y` (each
-- {id, pref, active, idle, level}): the preferred agent; then fewest active tickets; then
-- longest idle; then the higher summed level; then the agent id, byte by byte.
-- dispatcher/src/policy.rs is the same order in Rust, and a test compares the two.
function Match.better(x, y)
  if x.pref ~= y.pref then return x.pref end
  if x.active ~= y.active then return x.active < y.active end
  if x.idle ~= y.idle then return x.idle < y.idle end
  if x.level ~= y.level then return x.level > y.level end
  return U.bytes_before(x.id, y.id)
end

-- Routes queued ticket `tid` (fields `t`) by the choice policy (API.md §5): the best eligible
-- agent is offered it in this same call, or, with none in the whole index, it is parked. The
-- index is sorted by (active tickets, idle since), so only the preferred agent and the first
-- group of eligible agents with one score can hold the best; an eligible preferred agent needs
-- no index read at all (it is looked at on every call, so also when it became free between the
-- calls of one routing). Index entries are read from `offset`, in chunks growing from 16; while
-- nobody eligible is found, at most `limit` of them. `offers` is from `Match.offers`.
-- Returns {'offered', agent, deadline, offer id}, {'parked'} or {'more', next offset}.
function Match.route(P, tid, t, now, offers, offset, limit)
  local best = nil
  local function consider(aid, a, preferred)
    local c = {id = aid, a = a, pref = preferred, active = tonumber(a.active),
      idle = tonumber(a.idle_since), level = Agent.summed_level(a, t)}
    if not best or Match.better(c, best) then best = c end
  end
  local pref = t.pref or ''
  if pref ~= '' then
    local a = U.hmget(K.key(P, 'agent', pref), Agent.CANDIDATE_FIELDS)
    if a and Agent.eligible(P, pref, a, tid, t) then consider(pref, a, true) end
  end
  local index = nil
  if not best then index = K.key(P, 'free', t.lang) end
  local first, seen, chunk = nil, 0, 16
  while index and (first or seen < limit) do
    local n = chunk
    if not first then n = math.min(chunk, limit - seen) end
    local entries = redis.call('ZRANGE', index, offset + seen, offset + seen + n - 1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      local aid, score = entries[i], tonumber(entries[i + 1])
      if first and score > first then index = nil break end
      if aid ~= pref then
        local a = U.hmget(K.key(P, 'agent', aid), Agent.CANDIDATE_FIELDS)
        if a and Agent.eligible(P, aid, a, tid, t) then
          first = first or score
          consider(aid, a, false)
        end
      end
    end
    seen = seen + #entries / 2
    if #entries < 2 * n then index = nil end
    chunk = chunk * 4
  end
  if best then
    local oid = offers.next()
    local expires = Match.reserve(P, tid, t, best.id, best.a, oid, offers.timeout, now)
    return {'offered', best.id, U.fmt(expires), oid}
  end
  if index then return {'more', tostring(offset + seen)} end
  Queue.park(P, tid, t)
  return {'parked'}
end

-- route_ticket: routes a queued ticket by the choice policy (`Match.route`). ARGV: ticket id,
-- offset into the index, how many index entries to look at while nobody eligible is found,
-- offer id, timeout ms. Reply: 'offered', agent, deadline ms, offer id; 'parked'; 'more', next offset
-- (call again from there); or 'not_queued'.
function Match.route_ticket(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local tid = args[1]
  local t = Ticket.read_for_offer(P, tid)
  if not t or t.status ~= 'queued' then
    redis.call('ZREM', K.key(P, 'routing'), tid)
    return {'not_queued'}
  end
  t.wait = nil
  return Match.route(P, tid, t, now, Match.offers(args[4], args[5]), tonumber(args[2]),
    tonumber(args[3]))
end

-- stale_routing: routing tickets that have waited `older` ms for a dispatcher (which must have
-- died): their time is reset, so that one dispatcher takes each. ARGV: max count, older (ms).
-- Reply: 'ok', then ticket ids.
function Match.stale_routing(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local routing = K.key(P, 'routing')
  local due = redis.call('ZRANGEBYSCORE', routing, '-inf', U.fmt(now - tonumber(args[2])),
    'LIMIT', 0, tonumber(args[1]))
  local reply = {'ok'}
  for _, tid in ipairs(due) do
    redis.call('ZADD', routing, U.fmt(now), tid)
    reply[#reply + 1] = tid
  end
  return reply
end
