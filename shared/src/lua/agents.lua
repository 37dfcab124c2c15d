-- agents.lua: the roster (API.md §3), who can take an offer now (the free indexes) and who may
-- take which ticket (API.md §5, eligibility and the policy's summed level).
--
-- Agent hash fields: profile (JSON as stored), langs ("sv,en"), skills ("refunds:4,disputes:2"),
-- regions (",eu,nordics,"), max, status, connected ("1"/"0"), conn, inst, active, offer,
-- idle_since, missed, shift, shift_started, rate, currency, tz, last_seen, disc_at, lost,
-- idx (the free-index keys it is in, "|"-separated), iscore (its score there), pending (the
-- pending offer as "offer|ticket|deadline ms", true only while `offer` names the same offer:
-- it is not cleared when the offer ends, and builds before it do not write it).

-- What the state machine reads of an agent (not the profile JSON, which can be large).
-- `idx` and `iscore` come with every read, so that re-indexing needs no read of its own.
Agent.FIELDS = {'status', 'langs', 'skills', 'regions', 'max', 'connected', 'conn', 'inst',
  'active', 'offer', 'idle_since', 'missed', 'shift', 'rate', 'currency', 'tz', 'disc_at', 'lost',
  'idx', 'iscore', 'pinst', 'pending'}
-- What eligibility, the choice policy and an offer read of a candidate.
Agent.CANDIDATE_FIELDS = {'status', 'langs', 'skills', 'regions', 'max', 'connected', 'active',
  'offer', 'idle_since', 'idx', 'iscore', 'inst', 'pinst'}

-- The agent's fields, or nil if it is not on the roster.
function Agent.read(P, id)
  return U.hmget(K.key(P, 'agent', id), Agent.FIELDS)
end

-- API.md §5, the agent's half of eligibility: available, connected, below capacity, no offer
-- outstanding.
function Agent.is_free(a)
  return a.status == 'available' and a.connected == '1'
    and tonumber(a.active) < tonumber(a.max) and U.blank(a.offer)
end

-- Puts the agent in exactly the free indexes it belongs in now (none unless it can take an
-- offer): one per language it speaks, sorted by (active tickets, idle since); skills and regions
-- are checked on the agent's own fields when a ticket is matched (one index per language costs
-- one ZADD or ZREM per language a change touches, where an index per skill and per region cost
-- one per skill and region as well). Touches Redis only where that changed, and writes `fields`
-- (name, value pairs, may be nil) to its hash in the same HSET. The keys and score it is indexed
-- under are those of `a` (read with the agent's fields), which this updates: every function
-- keeps one table per agent it changes, so they stay true. (Keys of indexes an earlier build
-- kept, per skill and per region, are in `idx` too, and so are removed here.)
function Agent.reindex(P, id, a, fields)
  local old_idx, old_score = a.idx or '', a.iscore or ''
  local idx, score = '', ''
  local keys = {}
  if Agent.is_free(a) then
    score = U.fmt(tonumber(a.active) * 1e13 + tonumber(a.idle_since))
    for _, lang in ipairs(U.list(a.langs, ',')) do keys[#keys + 1] = K.key(P, 'free', lang) end
    idx = table.concat(keys, '|')
  end
  local writes = fields or {}
  if idx ~= old_idx or score ~= old_score then
    if idx ~= old_idx then
      for _, key in ipairs(U.list(old_idx, '|')) do redis.call('ZREM', key, id) end
    end
    for _, key in ipairs(keys) do redis.call('ZADD', key, score, id) end
    writes[#writes + 1] = 'idx'
    writes[#writes + 1] = idx
    writes[#writes + 1] = 'iscore'
    writes[#writes + 1] = score
    a.idx, a.iscore = idx, score
  end
  if #writes > 0 then redis.call('HSET', K.key(P, 'agent', id), unpack(writes)) end
end

-- API.md §5: whether agent `aid` (fields `a`) may be offered ticket `tid` (fields `t`): free,
-- speaks the language, has every skill at the level, is inside the region, and has not declined
-- or let lapse this ticket before.
function Agent.eligible(P, aid, a, tid, t)
  if not Agent.is_free(a) then return false end
  if not string.find(',' .. (a.langs or '') .. ',', ',' .. t.lang .. ',', 1, true) then
    return false
  end
  if not U.blank(t.req) then
    local have = U.levels(a.skills)
    for skill, need in pairs(U.levels(t.req)) do
      if (have[skill] or 0) < need then return false end
    end
  end
  if not U.blank(t.region) then
    if not string.find(a.regions or '', ',' .. t.region .. ',', 1, true) then return false end
  end
  if not Ticket.may_be_declined(t) then return true end
  return redis.call('SISMEMBER', K.key(P, 'declined', tid), aid) == 0
end

-- The policy's fourth key (API.md §5): the agent's summed level on the ticket's skills.
function Agent.summed_level(a, t)
  local have, sum = U.levels(a.skills), 0
  for skill, _ in pairs(U.levels(t.req)) do sum = sum + (have[skill] or 0) end
  return sum
end

-- put_agent: PUT /v1/agents/{id} (API.md §3), creating or replacing a profile; it takes effect
-- for the next offer, and a free agent is offered the best waiting ticket at once.
-- ARGV: id, profile JSON, langs, skills, regions, max, rate, currency, tz, offer id, timeout ms.
-- Reply: 'created' or 'updated'.
function Agent.put(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local aid = args[1]
  local k = K.key(P, 'agent', aid)
  local a = Agent.read(P, aid)
  local created = a == nil
  if created then
    a = {status = 'offline', connected = '0', active = '0', offer = '', idle_since = '0',
      missed = '0', shift = '', conn = '', inst = ''}
    redis.call('HSET', k, 'status', a.status, 'connected', a.connected, 'active', a.active,
      'offer', '', 'idle_since', '0', 'missed', '0', 'shift', '', 'conn', '', 'inst', '',
      'idx', '', 'iscore', '')
    redis.call('ZADD', K.key(P, 'agents'), 0, aid)
  end
  a.langs, a.skills, a.regions, a.max = args[3], args[4], args[5], args[6]
  redis.call('HSET', k, 'profile', args[2], 'langs', args[3], 'skills', args[4], 'regions', args[5],
    'max', args[6], 'rate', args[7], 'currency', args[8], 'tz', args[9])
  Agent.reindex(P, aid, a)
  U.emit(P, now, 'agent_upserted', {'agent', aid})
  Queue.serve(P, aid, a, now, Match.offers(args[10], args[11]))
  if created then return {'created'} end
  return {'updated'}
end

-- remove_agent: DELETE /v1/agents/{id} (API.md §3): its connection is closed, its open shift
-- ended, its pending offer and active tickets go back to routing. ARGV: id. Reply: 'ok'.
function Agent.remove(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local aid = args[1]
  local a = Agent.read(P, aid)
  if not a then return U.reject('agent_not_found') end
  if a.connected == '1' then
    U.push(P, a, {kind = 'status', agent = aid, status = 'offline', reason = 'removed'})
    U.push(P, a, {kind = 'close', agent = aid, conn = a.conn, code = 4003})
  end
  Shift.finish(P, aid, a, now, now, 'removed')
  if not U.blank(a.inst) then redis.call('SREM', K.key(P, 'gateway_conns', a.inst), aid) end
  redis.call('DEL', K.key(P, 'agent', aid), K.key(P, 'agent_tickets', aid),
    K.key(P, 'agent_declined', aid))
  redis.call('ZREM', K.key(P, 'agents'), aid)
  U.emit(P, now, 'agent_removed', {'agent', aid})
  return {'ok'}
end
