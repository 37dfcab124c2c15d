-- tickets.lua: a ticket's life outside matching (API.md §4): creation with idempotency,
-- completion by its agent, cancellation by the escalation engine.
--
-- Ticket hash fields: conv, lang, req ("refunds:3"), skills (JSON), prio, region, pref, summary,
-- context (JSON, emptied when the ticket ends), status, agent, offer, offer_agent, offers,
-- offer_ids (every offer made, ","-separated), created, qscore, queued_at, assigned_at,
-- completed_at, cancelled_at, outcome, note, ended_event (the stream id of its end), wait
-- (where a queued ticket waits: "routing", "parked" or "").
--
-- `wait` lets an offer skip the removals from sets the ticket is not in. Builds from before it
-- may share the Redis during a rolling deploy and move a ticket without writing it, so it is
-- trusted only where this build put the ticket itself in this call or a stale value cannot
-- matter: a ticket without it, a ticket routed again (`route_ticket`), a cancelled one, and one
-- a freed agent finds in a queue it is not recorded in, are taken to be possibly anywhere
-- (`wait` nil); a queue entry whose ticket is no longer queued is dropped when found.
-- Whether anyone declined the ticket is told by its offer count, which every build keeps.

-- What the state machine reads of a ticket (not the context or the summary, which can be large).
Ticket.FIELDS = {'status', 'lang', 'req', 'region', 'pref', 'agent', 'offer', 'offer_agent',
  'qscore', 'offer_ids', 'offers', 'wait'}
-- What an offer shows of it besides (read when making an offer).
Ticket.SHOWN = {'summary', 'skills', 'prio', 'created'}

-- Writes `pairs` (field, value, ...) to the ticket's hash in one HSET, after the fields of a
-- ticket created in this call and not yet written (`t.unsaved`).
function Ticket.write(P, tid, t, pairs)
  local all = t.unsaved or {}
  t.unsaved = nil
  for _, v in ipairs(pairs) do all[#all + 1] = v end
  redis.call('HSET', K.key(P, 'ticket', tid), unpack(all))
end

-- How long an idempotency key is remembered, seconds (API.md §4: at least 24 h).
Ticket.IDEMPOTENCY_SECS = 86400

-- Whether an agent may have declined ticket `t` (or let it lapse), from its offer count: not
-- if it was never offered, nor if its only offer is pending or was accepted.
function Ticket.may_be_declined(t)
  local offers = tonumber(t.offers or '')
  if not offers then return true end
  return offers > 1 or (offers == 1 and t.status == 'queued')
end

-- The ticket ended: the agents who declined it forget it (their sets hold only live tickets).
function Ticket.forget_declines(P, tid)
  for _, aid in ipairs(redis.call('SMEMBERS', K.key(P, 'declined', tid))) do
    redis.call('SREM', K.key(P, 'agent_declined', aid), tid)
  end
end

-- Ticket `tid` (fields `t`) ended with stream event `event_id` (API.md §4), its final fields
-- `pairs` written with it: the customer's context goes at once (only its agent ever saw it),
-- the agents who declined it forget it, and it waits in `ended` until the ledger has stored it
-- and the retention has passed (`purge_tickets`).
function Ticket.ended(P, tid, t, now, event_id, pairs)
  pairs[#pairs + 1] = 'ended_event'
  pairs[#pairs + 1] = event_id
  pairs[#pairs + 1] = 'context'
  pairs[#pairs + 1] = ''
  Ticket.write(P, tid, t, pairs)
  if Ticket.may_be_declined(t) then Ticket.forget_declines(P, tid) end
  redis.call('ZADD', K.key(P, 'ended'), U.fmt(now), tid)
end

-- The ticket's fields, or nil if there is no such ticket.
function Ticket.read(P, tid)
  return U.hmget(K.key(P, 'ticket', tid), Ticket.FIELDS)
end

-- The ticket's fields and what an offer of it shows, or nil: for a ticket about to be offered.
-- (The joined list is made on first use: a library's top level has no `ipairs`.)
function Ticket.read_for_offer(P, tid)
  if not Ticket.OFFER_FIELDS then
    local all = {}
    for _, f in ipairs(Ticket.FIELDS) do all[#all + 1] = f end
    for _, f in ipairs(Ticket.SHOWN) do all[#all + 1] = f end
    Ticket.OFFER_FIELDS = all
  end
  return U.hmget(K.key(P, 'ticket', tid), Ticket.OFFER_FIELDS)
end

-- create_ticket: POST /v1/tickets (API.md §4). A retry with the same idempotency key and body
-- finds the first ticket; the same key with another body is refused. A new ticket is routed in
-- the same call (`Match.route`): offered to the best eligible agent, or parked when nobody can
-- take it. ARGV: id, idempotency key ('' if none), body hash, how many free-index entries to
-- look at, offer id, timeout ms, then field/value pairs. Reply: 'created', id, created ms, then
-- what `route_ticket` replies; or 'existing', id.
function Ticket.create(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local tid, ikey, hash, limit = args[1], args[2], args[3], tonumber(args[4])
  if ikey ~= '' then
    local seen = redis.call('GET', K.key(P, 'idempotency', ikey))
    if seen then
      local h, existing = string.match(seen, '^(.-)|(.*)$')
      if h ~= hash then return U.reject('idempotency_key_reused') end
      return {'existing', existing}
    end
  end
  local t = {}
  local fields = {}
  for i = 7, #args, 2 do
    t[args[i]] = args[i + 1]
    fields[#fields + 1] = args[i]
    fields[#fields + 1] = args[i + 1]
  end
  local seq = redis.call('INCR', K.key(P, 'seq'))
  t.qscore = U.fmt((9 - tonumber(t.prio)) * 1e14 + seq)
  t.status, t.offers, t.wait, t.created = 'queued', '0', '', U.fmt(now)
  -- Written by the routing below, with what it changes, in one HSET.
  t.unsaved = {'created', t.created, 'qscore', t.qscore, 'offers', '0', 'status', 'queued',
    'agent', '', 'offer', '', 'offer_agent', '', 'queued_at', t.created, 'wait', '',
    unpack(fields)}
  if ikey ~= '' then
    redis.call('SET', K.key(P, 'idempotency', ikey), hash .. '|' .. tid, 'EX',
      Ticket.IDEMPOTENCY_SECS)
  end
  t.creating = true
  local routed = Match.route(P, tid, t, now, Match.offers(args[5], args[6]), 0, limit)
  t.creating = nil
  -- Offered at once ({'offered', agent, deadline, offer id}), its event says so (and there is
  -- no `offer_created` of its own); parked at once, it says `queued` (and there is no
  -- `ticket_queued`).
  local created = {'ticket', tid, 'language', t.lang, 'priority', t.prio}
  if routed[1] == 'offered' then
    for _, v in ipairs({'agent', routed[2], 'offer', routed[4], 'expires', routed[3]}) do
      created[#created + 1] = v
    end
  elseif routed[1] == 'parked' then
    created[#created + 1] = 'queued'
    created[#created + 1] = '1'
  end
  U.emit(P, now, 'ticket_created', created)
  -- Not routed yet (nobody eligible in the first `limit` index entries): a dispatcher goes on,
  -- and the others take over if it dies.
  if routed[1] == 'more' then
    Ticket.write(P, tid, t, {'wait', 'routing'})
    redis.call('ZADD', K.key(P, 'routing'), U.fmt(now), tid)
  end
  local reply = {'created', tid, U.fmt(now)}
  for _, v in ipairs(routed) do reply[#reply + 1] = v end
  return reply
end

-- complete: the agent completes a ticket assigned to it (API.md §6); its capacity is freed and
-- it is offered the best waiting ticket. ARGV: agent id, ticket id, outcome, note, next offer
-- id, timeout ms. Reply: 'ok'.
function Ticket.complete(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local aid, tid = args[1], args[2]
  local t = Ticket.read(P, tid)
  if not t or t.status ~= 'assigned' or t.agent ~= aid then
    return U.reject('ticket_not_found')
  end
  local a = Agent.read(P, aid)
  if not a then return U.reject('ticket_not_found') end
  redis.call('SREM', K.key(P, 'agent_tickets', aid), tid)
  a.active = tostring(math.max(0, tonumber(a.active) - 1))
  Agent.reindex(P, aid, a, {'active', a.active, 'last_seen', U.fmt(now)})
  local event = U.emit(P, now, 'ticket_completed', {'ticket', tid, 'agent', aid, 'outcome',
    args[3], 'shift', a.shift or ''})
  Ticket.ended(P, tid, t, now, event, {'status', 'completed', 'completed_at', U.fmt(now),
    'outcome', args[3], 'note', args[4] or ''})
  Queue.serve(P, aid, a, now, Match.offers(args[5], args[6]))
  return {'ok'}
end

-- cancel_ticket: DELETE /v1/tickets/{id} (API.md §4): an agent holding its offer is told
-- `offer_revoked` (cancelled), an agent it was assigned to `ticket_cancelled` and gets the
-- capacity back (and the best waiting ticket). ARGV: ticket id, offer id for the freed agent,
-- timeout ms. Reply: 'ok'.
function Ticket.cancel(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local tid = args[1]
  local t = Ticket.read(P, tid)
  if not t then return U.reject('ticket_not_found') end
  if t.status == 'completed' then return U.reject('ticket_completed') end
  if t.status == 'cancelled' then return {'ok'} end
  local freed, a = '', nil
  t.wait = nil
  if t.status == 'queued' then
    Queue.unpark(P, tid, t)
    Match.leave_routing(P, tid, t)
  elseif t.status == 'offered' then
    local o = U.hgetall(K.key(P, 'offer', t.offer))
    if o then a = Offer.finish(P, t.offer, o, 'cancelled', now, true) end
    freed = t.offer_agent
  elseif t.status == 'assigned' then
    a = Agent.read(P, t.agent)
    if a then
      redis.call('SREM', K.key(P, 'agent_tickets', t.agent), tid)
      a.active = tostring(math.max(0, tonumber(a.active) - 1))
      Agent.reindex(P, t.agent, a, {'active', a.active})
      U.push(P, a, {kind = 'ticket_cancelled', agent = t.agent, ticket_id = tid})
    end
    freed = t.agent
  end
  local event = U.emit(P, now, 'ticket_cancelled', {'ticket', tid, 'agent', freed, 'was',
    t.status})
  Ticket.ended(P, tid, t, now, event, {'status', 'cancelled', 'cancelled_at', U.fmt(now), 'offer',
    '', 'offer_agent', '', 'wait', ''})
  if a then Queue.serve(P, freed, a, now, Match.offers(args[2], args[3])) end
  return {'ok'}
end
