-- offers.lua: an offer's answer (API.md §6: accept, decline) and its end (API.md §5: a declined
-- or lapsed offer sends the ticket to the next eligible agent; the agent is freed).
--
-- Offer hash fields: ticket, agent, status (pending, accepted, declined, expired, cancelled,
-- withdrawn), created, expires. Once it is no longer pending it is kept for `Offer.KEEP_SECS`:
-- what tells `offer_expired` from `offer_not_found`, and answers a repeated accept.

-- How long an ended offer's record is kept.
Offer.KEEP_SECS = 120

-- Offer `oid` is no longer pending: it ended `why`; only its record is kept, briefly. Its entry
-- in `deadlines` stays until the deadline passes: `expire_offers` then drops it with the others
-- due, in one ZREM, off the path of the answer (the record outlives the deadline, and one that
-- is gone or not pending is only dropped).
function Offer.close(P, oid, why)
  local ok = K.key(P, 'offer', oid)
  redis.call('HSET', ok, 'status', why)
  redis.call('EXPIRE', ok, Offer.KEEP_SECS)
end

-- Ends pending offer `oid` (fields `o`): the ticket goes back to routing, the agent is freed.
-- `why` is expired, declined, cancelled (ticket cancelled) or withdrawn (agent left); with
-- `notify` the agent is told. `a` is the caller's table of the agent, if it has one (read
-- otherwise). Returns the agent's fields (nil if it is gone).
function Offer.finish(P, oid, o, why, now, notify, a)
  Offer.close(P, oid, why)
  a = a or Agent.read(P, o.agent)
  if a and a.offer == oid then
    a.offer = ''
    Agent.reindex(P, o.agent, a, {'offer', ''})
  end
  local t = Ticket.read(P, o.ticket)
  if t and t.status == 'offered' and t.offer == oid then
    if why == 'expired' or why == 'declined' then
      -- Both ways: who declined the ticket (for its candidates), and what the agent declined
      -- (for the queues it is served from).
      redis.call('SADD', K.key(P, 'declined', o.ticket), o.agent)
      redis.call('SADD', K.key(P, 'agent_declined', o.agent), o.ticket)
    end
    if why ~= 'cancelled' then Match.to_routing(P, o.ticket, now, true) end
  end
  if notify and a then
    local reason = 'cancelled'
    if why == 'expired' then reason = 'expired' end
    U.push(P, a, {kind = 'offer_revoked', agent = o.agent, offer_id = oid, ticket_id = o.ticket,
      reason = reason})
  end
  return a
end

-- Offer `oid` as the fields of its record, read from agent `a`'s hash if it is the agent's
-- pending offer there (`pending`, as this build writes it), else from its record; nil if
-- there is none.
function Offer.record(P, aid, a, oid)
  if a and a.offer == oid and not U.blank(a.pending) then
    local id, ticket, expires = string.match(a.pending, '^(.-)|(.-)|(%d+)$')
    if id == oid then
      return {ticket = ticket, agent = aid, status = 'pending', expires = expires}
    end
  end
  return U.hgetall(K.key(P, 'offer', oid))
end

-- Offer `o` (fields, nil if unknown) if it is the agent's and pending; else nil and the refusal
-- to reply (API.md §6: another agent's or an unknown offer is `offer_not_found`, a lapsed one
-- `offer_expired`).
function Offer.check(o, aid, now)
  if not o or o.agent ~= aid then return nil, U.reject('offer_not_found') end
  if o.status == 'expired' then return nil, U.reject('offer_expired') end
  if o.status ~= 'pending' then return nil, U.reject('offer_not_found') end
  if now > tonumber(o.expires) then return nil, U.reject('offer_expired') end
  return o, nil
end

-- The reply of an accept: 'ok', the ticket id, then the ticket's fields.
function Offer.assigned_reply(P, tid)
  local reply = {'ok', tid}
  for _, v in ipairs(redis.call('HGETALL', K.key(P, 'ticket', tid))) do reply[#reply + 1] = v end
  return reply
end

-- accept: the agent accepts its offer (API.md §6): the ticket becomes assigned to it, and an
-- agent with capacity left is offered the next waiting ticket. Accepting again an offer it
-- accepted (a retry whose reply was lost) answers the same and changes nothing. ARGV: agent id,
-- offer id, next offer id, timeout ms. Reply: 'ok', ticket id, then the ticket's fields.
function Offer.accept(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local aid, oid = args[1], args[2]
  local a = Agent.read(P, aid)
  local record = Offer.record(P, aid, a, oid)
  if record and record.status == 'accepted' and record.agent == aid then
    local t = Ticket.read(P, record.ticket)
    if t and t.status == 'assigned' and t.agent == aid then
      return Offer.assigned_reply(P, record.ticket)
    end
  end
  local o, err = Offer.check(record, aid, now)
  if not o then return err end
  if not a then return U.reject('offer_not_found') end
  Offer.close(P, oid, 'accepted')
  local tk = K.key(P, 'ticket', o.ticket)
  redis.call('HSET', tk, 'status', 'assigned', 'agent', aid, 'offer', '', 'offer_agent', '',
    'assigned_at', U.fmt(now))
  redis.call('SADD', K.key(P, 'agent_tickets', aid), o.ticket)
  a.offer, a.active, a.idle_since, a.missed = '', tostring(tonumber(a.active) + 1), U.fmt(now), '0'
  Agent.reindex(P, aid, a, {'offer', '', 'active', a.active, 'idle_since', a.idle_since,
    'missed', '0', 'last_seen', U.fmt(now)})
  U.emit(P, now, 'ticket_assigned', {'ticket', o.ticket, 'agent', aid, 'offer', oid, 'shift',
    a.shift or ''})
  local reply = Offer.assigned_reply(P, o.ticket)
  Queue.serve(P, aid, a, now, Match.offers(args[3], args[4]))
  return reply
end

-- decline: the agent declines its offer (API.md §5-6): the ticket goes to the next eligible
-- agent at once, and the agent is offered the best waiting ticket. ARGV: agent id, offer id,
-- reason, next offer id, timeout ms. Reply: 'ok'.
function Offer.decline(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local aid, oid = args[1], args[2]
  local a = Agent.read(P, aid)
  local o, err = Offer.check(Offer.record(P, aid, a, oid), aid, now)
  if not o then return err end
  redis.call('HSET', K.key(P, 'agent', aid), 'missed', '0', 'last_seen', U.fmt(now))
  a = Offer.finish(P, oid, o, 'declined', now, false, a)
  U.emit(P, now, 'offer_declined', {'ticket', o.ticket, 'agent', aid, 'offer', oid, 'reason',
    args[3] or ''})
  if a then Queue.serve(P, aid, a, now, Match.offers(args[4], args[5])) end
  return {'ok'}
end

-- offer_unreached: a gateway got the push of offer `oid` for an agent it holds no connection
-- of, so no client saw it: the connection Redis records there is gone (it closed, and its
-- disconnect is not recorded yet). If Redis still records the agent as connected through that
-- gateway with this offer pending, the connection is dropped now, as its disconnect would drop
-- it: the offer is withdrawn (the ticket goes to the next agent without waiting for the
-- deadline, and the agent is neither barred from it nor counted as having missed it) and the
-- grace period starts. ARGV: agent id, offer id, gateway instance, grace ms.
-- Reply: 'ok', '1' if dropped, else '0'.
function Offer.unreached(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local aid, oid, inst = args[1], args[2], args[3]
  local a = Agent.read(P, aid)
  if not a or a.offer ~= oid or a.inst ~= inst or a.connected ~= '1' then return {'ok', '0'} end
  Shift.drop_connection(P, aid, a, a.conn, now, tonumber(args[4]), now, false)
  return {'ok', '1'}
end
