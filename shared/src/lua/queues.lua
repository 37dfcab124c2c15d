-- queues.lua: the waiting queues (API.md §5): tickets no agent can take now wait by priority,
-- oldest first, in their language's queue and in the queue of their class, and a freed agent
-- is offered the best it may take.
--
-- A class is what a ticket needs besides its language (skills and levels, region). A freed
-- agent looks only at the classes it may take (`queue_classes` lists a language's), at the head
-- of each, skipping only the tickets it declined: tickets nobody can take, however many wait
-- ahead, cost it nothing (API.md §5: no ticket starves behind others).

-- A ticket's class: what it needs of an agent besides the language, "refunds:3,disputes:2@north"
-- ("@" when nothing). Tickets of one class are eligible for the same agents (but for declines).
function Queue.class_of(t)
  return (t.req or '') .. '@' .. (t.region or '')
end

-- No agent can take the ticket now: it waits in its language's queue for a freed agent, and in
-- the queue of its class, which a freed agent looks at only if it may take that class
-- (`ticket_queued`: webhooks and live events tell the escalation engine it waits).
function Queue.park(P, tid, t)
  local class = Queue.class_of(t)
  redis.call('ZADD', K.key(P, 'queue', t.lang), t.qscore, tid)
  redis.call('ZADD', K.key(P, 'class_queue', t.lang, class), t.qscore, tid)
  redis.call('HSET', K.key(P, 'queue_classes', t.lang), class, '1')
  redis.call('SADD', K.key(P, 'queues'), t.lang)
  Match.leave_routing(P, tid, t)
  t.wait = 'parked'
  Ticket.write(P, tid, t, {'wait', 'parked'})
  -- A ticket parked in the call that creates it says so in its `ticket_created`.
  if not t.creating then
    local now = U.now_ms()
    U.emit(P, now, 'ticket_queued', {'ticket', tid})
  end
end

-- The ticket leaves its queues, if it is parked (it is offered or cancelled); empty queues
-- are forgotten.
function Queue.unpark(P, tid, t)
  if t.wait ~= nil and t.wait ~= 'parked' then return end
  if redis.call('ZREM', K.key(P, 'queue', t.lang), tid) == 0 then return end
  Queue.drop(P, tid, t.lang, Queue.class_of(t))
end

-- Ticket `tid` leaves the queue of `class` in `lang` and the language's queue; empty queues
-- are forgotten.
function Queue.drop(P, tid, lang, class)
  local queue = K.key(P, 'queue', lang)
  local class_queue = K.key(P, 'class_queue', lang, class)
  redis.call('ZREM', class_queue, tid)
  if redis.call('EXISTS', class_queue) == 0 then
    redis.call('HDEL', K.key(P, 'queue_classes', lang), class)
  end
  redis.call('ZREM', queue, tid)
  if redis.call('EXISTS', queue) == 0 then redis.call('SREM', K.key(P, 'queues'), lang) end
end

-- Whether agent `a` (its levels `have`) may take tickets of `class` (API.md §5: every skill at
-- the level, inside the region; the language is the queue's).
function Queue.may_take(a, have, class)
  local req, region = string.match(class, '^(.*)@(.*)$')
  for skill, need in pairs(U.levels(req)) do
    if (have[skill] or 0) < need then return false end
  end
  return region == '' or string.find(a.regions or '', ',' .. region .. ',', 1, true) ~= nil
end

-- The first ticket of class queue `queue` scoring below `bound` (if given) that the agent has
-- not declined (set `declined`, nil if it declined nothing): its id and score, or nil. Read in
-- chunks growing from 16 to 1,024 and checked a chunk per command, so skipping the tickets an
-- agent declined costs one ZRANGE and one SMISMEMBER per chunk, not a read per ticket.
function Queue.first_not_declined(queue, declined, bound)
  local offset, chunk = 0, 1
  if declined then chunk = 16 end
  while true do
    local entries = redis.call('ZRANGE', queue, offset, offset + chunk - 1, 'WITHSCORES')
    if #entries == 0 then return nil end
    local ids = {}
    for i = 1, #entries, 2 do ids[#ids + 1] = entries[i] end
    local seen = {}
    if declined then seen = redis.call('SMISMEMBER', declined, unpack(ids)) end
    for i, tid in ipairs(ids) do
      local score = tonumber(entries[2 * i])
      if bound and score >= bound then return nil end
      if seen[i] ~= 1 then return tid, score end
    end
    if #ids < chunk then return nil end
    offset = offset + chunk
    chunk = math.min(chunk * 4, 1024)
  end
end

-- API.md §5: a free agent is offered the waiting ticket it is eligible for with the highest
-- priority, oldest first. Only the classes it may take are looked at, and in each only the
-- tickets ahead that it declined are skipped, so tickets it cannot take, however many, cost
-- nothing. `offers` is from `Match.offers`. Returns the ticket offered, if any.
function Queue.serve(P, aid, a, now, offers)
  if not Agent.is_free(a) then return nil end
  local have = U.levels(a.skills)
  local queues = {}
  -- Only the languages with waiting tickets (`queues`), asked for all of them at once: when
  -- nothing waits, as in a fleet that keeps up, that is the one command this costs.
  local langs = U.list(a.langs, ',')
  if #langs == 0 then return nil end
  local waiting = redis.call('SMISMEMBER', K.key(P, 'queues'), unpack(langs))
  for i, lang in ipairs(langs) do
    if waiting[i] == 1 then
      for _, class in ipairs(redis.call('HKEYS', K.key(P, 'queue_classes', lang))) do
        if Queue.may_take(a, have, class) then
          queues[#queues + 1] = {key = K.key(P, 'class_queue', lang, class), lang = lang,
            class = class}
        end
      end
    end
  end
  if #queues == 0 then return nil end
  local declined = K.key(P, 'agent_declined', aid)
  if redis.call('EXISTS', declined) == 0 then declined = nil end
  local best_tid, best_score, best_q = nil, nil, nil
  for _, q in ipairs(queues) do
    local tid, score = Queue.first_not_declined(q.key, declined, best_score)
    if tid then best_tid, best_score, best_q = tid, score, q end
  end
  if not best_tid then return nil end
  local t = Ticket.read_for_offer(P, best_tid)
  if not t or t.status ~= 'queued' then
    -- A stale entry (an older build moved the ticket without `wait`): dropped, and the agent
    -- served again.
    Queue.drop(P, best_tid, best_q.lang, best_q.class)
    return Queue.serve(P, aid, a, now, offers)
  end
  if t.wait ~= 'parked' then t.wait = nil end
  Match.reserve(P, best_tid, t, aid, a, offers.next(), offers.timeout, now)
  return best_tid
end

-- sweep: a safety net that changes nothing while the state machine keeps its promise: up to
-- `count` free agents of a language, from index entry `offset`, are each offered the best
-- waiting ticket they can take (as a transition that frees them would have). The caller
-- continues from the offset returned, so every free agent is looked at in turn.
-- ARGV: language, offset, count, offer id, timeout ms. Reply: 'ok', next offset (0 when the
-- index ended), how many offers were made.
function Queue.sweep(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local offset, count = tonumber(args[2]), tonumber(args[3])
  local offers = Match.offers(args[4], args[5])
  local free = redis.call('ZRANGE', K.key(P, 'free', args[1]), offset, offset + count - 1)
  local made = 0
  for _, aid in ipairs(free) do
    local a = Agent.read(P, aid)
    if a and Queue.serve(P, aid, a, now, offers) then made = made + 1 end
  end
  local next_offset = offset + #free - made
  if #free < count then next_offset = 0 end
  return {'ok', tostring(next_offset), tostring(made)}
end

-- Whether every agent able to take tickets of class `c` may take those of class `k`: each skill
-- `k` needs at no higher a level than `c` does, and `k`'s region is none or `c`'s.
function Queue.implies(c, k)
  local creq, cregion = string.match(c, '^(.*)@(.*)$')
  local kreq, kregion = string.match(k, '^(.*)@(.*)$')
  if kregion ~= '' and kregion ~= cregion then return false end
  local have = U.levels(creq)
  for skill, need in pairs(U.levels(kreq)) do
    if (have[skill] or 0) < need then return false end
  end
  return true
end

-- How many parked tickets of `lang` an agent able to take class `class` is offered before a
-- ticket of queue score `qscore` (API.md §5's order): those ahead of it in every class that
-- class implies, which any such agent may take.
function Queue.ahead(P, lang, class, qscore)
  local n = 0
  for _, k in ipairs(redis.call('HKEYS', K.key(P, 'queue_classes', lang))) do
    if Queue.implies(class, k) then
      n = n + redis.call('ZCOUNT', K.key(P, 'class_queue', lang, k), '-inf', '(' .. qscore)
    end
  end
  return n
end

-- queue_position: a queued ticket's place (API.md §8): 1 + the tickets an agent able to take it
-- is offered first; 1 while a dispatcher is placing it. ARGV: ticket id. Reply: 'ok', position;
-- or 'none' if it is not queued.
function Queue.position(keys, args)
  local P = K.prefix_of(keys)
  local t = U.hmget(K.key(P, 'ticket', args[1]), {'status', 'lang', 'qscore', 'req', 'region',
    'wait'})
  if not t or t.status ~= 'queued' then return {'none'} end
  if t.wait ~= 'parked' then return {'ok', '1'} end
  return {'ok', tostring(1 + Queue.ahead(P, t.lang, Queue.class_of(t), t.qscore))}
end

-- queue_overview: per language (GET /v1/queues, API.md §8): how many wait, when the longest
-- waiting one was created (ms, '' if none: the first of each priority is its oldest), the free
-- agents, and the place of a new ticket of priority 5 with no skills. ARGV: languages (those
-- with waiting tickets are added). Reply: 'ok', then (language, waiting, oldest created ms,
-- free agents, position) for each.
function Queue.overview(keys, args)
  local P = K.prefix_of(keys)
  local langs, seen = {}, {}
  for _, l in ipairs(args) do
    if not seen[l] then langs[#langs + 1], seen[l] = l, true end
  end
  for _, l in ipairs(redis.call('SMEMBERS', K.key(P, 'queues'))) do
    if not seen[l] then langs[#langs + 1], seen[l] = l, true end
  end
  local reply = {'ok'}
  for _, lang in ipairs(langs) do
    local queue = K.key(P, 'queue', lang)
    local oldest = nil
    for band = 0, 9 do
      local head = redis.call('ZRANGEBYSCORE', queue, U.fmt(band * 1e14),
        '(' .. U.fmt((band + 1) * 1e14), 'LIMIT', 0, 1)[1]
      if head then
        local created = tonumber(redis.call('HGET', K.key(P, 'ticket', head), 'created') or '')
        if created and (not oldest or created < oldest) then oldest = created end
      end
    end
    local position = 1 + Queue.ahead(P, lang, '@', U.fmt(5 * 1e14))
    for _, v in ipairs({lang, tostring(redis.call('ZCARD', queue)), oldest and U.fmt(oldest) or '',
      tostring(redis.call('ZCARD', K.key(P, 'free', lang))), tostring(position)}) do
      reply[#reply + 1] = v
    end
  end
  return reply
end
