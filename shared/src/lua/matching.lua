-- matching.lua: routing by the choice policy (API.md §5): a ticket that needs an agent is
-- offered to the best eligible agent, one agent at a time, or parked in the queues (queues.lua)
-- while no agent can take it.
--
-- A ticket that needs an agent is "routing" (in the `routing` zset) until the choice policy,
-- which runs in the dispatcher (dispatcher/src/policy.rs), has picked its agent: `candidates`
-- returns the agents that can be best and `offer_ticket` makes the offer. When no agent is
-- eligible the ticket is parked in its language's queue, where a freed agent finds it
-- (`Queue.serve`). A routing ticket is in no queue, so a freed agent does not take it: it goes
-- to the agent the policy picks among all free agents, whichever of the two changes landed first.

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
-- (`signal`: and a dispatcher is told to route it, through `routeq`).
function Match.to_routing(P, tid, now, signal)
  redis.call('HSET', K.key(P, 'ticket', tid), 'status', 'queued', 'agent', '', 'offer', '',
    'offer_agent', '', 'queued_at', U.fmt(now))
  redis.call('ZADD', K.key(P, 'routing'), U.fmt(now), tid)
  if signal then redis.call('LPUSH', K.key(P, 'route_queue'), tid) end
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
  redis.call('HSET', tk, 'status', 'offered', 'offer', oid, 'offer_agent', aid, 'offer_ids',
    offer_ids)
  redis.call('HINCRBY', tk, 'offers', 1)
  Queue.unpark(P, tid, t)
  redis.call('ZREM', K.key(P, 'routing'), tid)
  redis.call('HSET', K.key(P, 'offer', oid), 'ticket', tid, 'agent', aid, 'status', 'pending',
    'created', U.fmt(now), 'expires', U.fmt(expires))
  redis.call('ZADD', K.key(P, 'deadlines'), U.fmt(expires), oid)
  a.offer = oid
  redis.call('HSET', K.key(P, 'agent', aid), 'offer', oid)
  Agent.reindex(P, aid, a)
  U.emit(P, now, 'offer_created', {'ticket', tid, 'agent', aid, 'offer', oid, 'expires',
    U.fmt(expires)})
  local shown = redis.call('HMGET', tk, 'summary', 'skills', 'prio', 'created')
  U.push(P, {kind = 'offer', agent = aid, offer_id = oid, ticket_id = tid, summary = shown[1],
    language = t.lang, skills = cjson.decode(shown[2]), priority = tonumber(shown[3]),
    created_ms = tonumber(shown[4]), now_ms = now, expires_ms = expires})
  return expires
end

-- The agents that can be best for queued ticket `tid` (fields `t`), from index entry `offset`,
-- looking at `limit` entries: {next offset or -1, then per candidate: id, active, idle_since,
-- summed level, preferred (1/0)}. Only the first (active, idle_since) group of eligible agents
-- in index order can hold the best agent (plus the preferred agent), so only those are returned.
-- A ticket nobody in the whole index can take is parked.
function Match.find_candidates(P, tid, t, offset, limit)
  local out = {'-1'}
  local function add(aid, a, preferred)
    out[#out + 1] = aid
    out[#out + 1] = a.active
    out[#out + 1] = a.idle_since
    out[#out + 1] = tostring(Agent.summed_level(a, t))
    out[#out + 1] = preferred
  end
  local pref = t.pref or ''
  if offset == 0 and pref ~= '' then
    local a = U.hmget(K.key(P, 'agent', pref), Agent.CANDIDATE_FIELDS)
    if a and Agent.eligible(P, pref, a, tid, t) then add(pref, a, '1') end
  end
  -- The smallest index that holds every eligible agent: by language, and narrower by a skill
  -- or the region the ticket needs.
  local index = K.key(P, 'free', t.lang)
  local narrower = {}
  for skill, _ in pairs(U.levels(t.req)) do
    narrower[#narrower + 1] = K.key(P, 'free_skill', t.lang, skill)
  end
  if not U.blank(t.region) then narrower[#narrower + 1] = K.key(P, 'free_region', t.lang, t.region) end
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
        local a = U.hmget(K.key(P, 'agent', aid), Agent.CANDIDATE_FIELDS)
        if a and Agent.eligible(P, aid, a, tid, t) then
          first = first or score
          add(aid, a, '0')
        end
      end
    end
    seen = seen + #entries / 2
    if #entries < 2 * n then
      if #out == 1 then Queue.park(P, tid, t) end
      return out
    end
    chunk = chunk * 4
  end
  if first == nil then out[1] = tostring(offset + limit) end
  return out
end

-- candidates: matching, step 1: the eligible agents that can be best for a queued ticket (see
-- `Match.find_candidates`). ARGV: ticket id, offset into the index, how many index entries to
-- look at. Reply: 'candidates', next offset (-1 when done), then the candidates; or 'not_queued'.
function Match.candidates(keys, args)
  local P = K.prefix_of(keys)
  local tid, offset, limit = args[1], tonumber(args[2]), tonumber(args[3])
  local t = Ticket.read(P, tid)
  if not t or t.status ~= 'queued' then
    redis.call('ZREM', K.key(P, 'routing'), tid)
    return {'not_queued'}
  end
  local reply = {'candidates'}
  for _, v in ipairs(Match.find_candidates(P, tid, t, offset, limit)) do reply[#reply + 1] = v end
  return reply
end

-- offer_ticket: matching, step 2: offers the ticket to the agent the policy chose, if both are
-- still free for it (so racing dispatchers offer a ticket once). ARGV: ticket id, agent id,
-- offer id, timeout ms. Reply: 'offered', deadline ms; or 'ticket_not_queued' or
-- 'agent_not_eligible'.
function Match.offer_ticket(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local tid, aid, oid, timeout = args[1], args[2], args[3], tonumber(args[4])
  local t = Ticket.read(P, tid)
  if not t or t.status ~= 'queued' then return {'ticket_not_queued'} end
  local a = Agent.read(P, aid)
  if not a or not Agent.eligible(P, aid, a, tid, t) then return {'agent_not_eligible'} end
  return {'offered', U.fmt(Match.reserve(P, tid, t, aid, a, oid, timeout, now))}
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
