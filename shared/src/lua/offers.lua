-- offers.lua: an offer's answer (API.md §6: accept, decline) and its end (API.md §5: a declined
-- or lapsed offer sends the ticket to the next eligible agent; the agent is freed).
--
-- Offer hash fields: ticket, agent, status (pending, accepted, declined, expired, cancelled,
-- withdrawn), created, expires, ended.

-- How long an ended offer is kept, to tell `offer_expired` from `offer_not_found`.
Offer.KEEP_SECS = 3600

-- Ends pending offer `oid` (fields `o`): the ticket goes back to routing, the agent is freed.
-- `why` is expired, declined, cancelled (ticket cancelled) or withdrawn (agent left); with
-- `notify` the agent is told. Returns the agent's fields (nil if it is gone).
function Offer.finish(P, oid, o, why, now, notify)
  redis.call('ZREM', K.key(P, 'deadlines'), oid)
  local ok = K.key(P, 'offer', oid)
  redis.call('HSET', ok, 'status', why, 'ended', U.fmt(now))
  redis.call('EXPIRE', ok, Offer.KEEP_SECS)
  local a = Agent.read(P, o.agent)
  if a and a.offer == oid then
    a.offer = ''
    redis.call('HSET', K.key(P, 'agent', o.agent), 'offer', '')
    Agent.reindex(P, o.agent, a)
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
    U.push(P, {kind = 'offer_revoked', agent = o.agent, offer_id = oid, ticket_id = o.ticket,
      reason = reason})
  end
  return a
end

-- The agent's pending offer `oid`, or nil and the refusal to reply (API.md §6: another agent's
-- or an unknown offer is `offer_not_found`, a lapsed one `offer_expired`).
function Offer.pending(P, aid, oid, now)
  local o = U.hgetall(K.key(P, 'offer', oid))
  if not o or o.agent ~= aid then return nil, U.reject('offer_not_found') end
  if o.status == 'expired' then return nil, U.reject('offer_expired') end
  if o.status ~= 'pending' then return nil, U.reject('offer_not_found') end
  if now > tonumber(o.expires) then return nil, U.reject('offer_expired') end
  return o, nil
end

-- accept: the agent accepts its offer (API.md §6): the ticket becomes assigned to it, and an
-- agent with capacity left is offered the next waiting ticket. ARGV: agent id, offer id, next
-- offer id, timeout ms. Reply: 'ok', ticket id, then the ticket's fields.
function Offer.accept(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local aid, oid = args[1], args[2]
  local o, err = Offer.pending(P, aid, oid, now)
  if not o then return err end
  local a = Agent.read(P, aid)
  if not a then return U.reject('offer_not_found') end
  redis.call('ZREM', K.key(P, 'deadlines'), oid)
  local ok = K.key(P, 'offer', oid)
  redis.call('HSET', ok, 'status', 'accepted', 'ended', U.fmt(now))
  redis.call('EXPIRE', ok, Offer.KEEP_SECS)
  local tk = K.key(P, 'ticket', o.ticket)
  redis.call('HSET', tk, 'status', 'assigned', 'agent', aid, 'offer', '', 'offer_agent', '',
    'assigned_at', U.fmt(now))
  redis.call('SADD', K.key(P, 'agent_tickets', aid), o.ticket)
  a.offer, a.active, a.idle_since, a.missed = '', tostring(tonumber(a.active) + 1), U.fmt(now), '0'
  redis.call('HSET', K.key(P, 'agent', aid), 'offer', '', 'active', a.active, 'idle_since',
    a.idle_since, 'missed', '0', 'last_seen', U.fmt(now))
  Agent.reindex(P, aid, a)
  U.emit(P, now, 'ticket_assigned', {'ticket', o.ticket, 'agent', aid, 'offer', oid, 'shift',
    a.shift or ''})
  local reply = {'ok', o.ticket}
  for _, v in ipairs(redis.call('HGETALL', tk)) do reply[#reply + 1] = v end
  Queue.serve(P, aid, a, now, Match.offers(args[3], args[4]))
  return reply
end

-- decline: the agent declines its offer (API.md §5-6): the ticket goes to the next eligible
-- agent at once, and the agent is offered the best waiting ticket. ARGV: agent id, offer id,
-- reason, next offer id, timeout ms. Reply: 'ok'.
function Offer.decline(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local aid, oid = args[1], args[2]
  local o, err = Offer.pending(P, aid, oid, now)
  if not o then return err end
  redis.call('HSET', K.key(P, 'agent', aid), 'missed', '0', 'last_seen', U.fmt(now))
  local a = Offer.finish(P, oid, o, 'declined', now, false)
  U.emit(P, now, 'offer_declined', {'ticket', o.ticket, 'agent', aid, 'offer', oid, 'reason',
    args[3] or ''})
  if a then Queue.serve(P, aid, a, now, Match.offers(args[4], args[5])) end
  return {'ok'}
end
