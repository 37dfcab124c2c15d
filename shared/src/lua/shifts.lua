-- shifts.lua: connections and shifts (API.md §6-7): an agent's status, its live connection and
-- the grace period after a drop, and the shift they make up.

-- Sends every ticket the agent holds back to routing (API.md §5: after the grace period, or
-- when the shift ends).
function Shift.requeue_held(P, aid, a, now)
  local held_key = K.key(P, 'agent_tickets', aid)
  for _, tid in ipairs(redis.call('SMEMBERS', held_key)) do
    local t = Ticket.read(P, tid)
    if t and t.status == 'assigned' and t.agent == aid then
      Match.to_routing(P, tid, now, true, {'assigned_at', ''})
      U.emit(P, now, 'ticket_requeued', {'ticket', tid, 'agent', aid})
    end
  end
  redis.call('DEL', held_key)
  a.active = '0'
  redis.call('HSET', K.key(P, 'agent', aid), 'active', '0')
end

-- Withdraws the agent's pending offer, if any (API.md §5: the agent left; the ticket is
-- re-routed at once).
function Shift.withdraw_offer(P, aid, a, now, notify)
  if U.blank(a.offer) then return end
  local oid = a.offer
  local o = Offer.record(P, aid, a, oid)
  if o and o.status == 'pending' then
    Offer.finish(P, oid, o, 'withdrawn', now, notify, a)
    U.emit(P, now, 'offer_withdrawn', {'ticket', o.ticket, 'agent', aid, 'offer', oid})
  end
  if not U.blank(a.offer) then
    a.offer = ''
    redis.call('HSET', K.key(P, 'agent', aid), 'offer', '')
  end
end

-- Ends the agent's shift at `ended_at` (its last moment) for `reason` (API.md §7: offline,
-- removal, or a drop not back within the grace period): offer withdrawn, tickets requeued.
function Shift.finish(P, aid, a, now, ended_at, reason)
  Shift.withdraw_offer(P, aid, a, now, reason == 'requested')
  Shift.requeue_held(P, aid, a, now)
  if not U.blank(a.shift) then
    U.emit(P, now, 'shift_ended', {'agent', aid, 'shift', a.shift, 'ended_at', U.fmt(ended_at),
      'reason', reason})
  end
  a.status, a.shift = 'offline', ''
  redis.call('ZREM', K.key(P, 'grace'), aid)
  Agent.reindex(P, aid, a, {'status', 'offline', 'shift', '', 'missed', '0'})
end

-- Records the agent's new status and its event.
function Shift.set(P, aid, a, status, reason, now)
  a.status = status
  redis.call('HSET', K.key(P, 'agent', aid), 'status', status)
  U.emit(P, now, 'agent_status', {'agent', aid, 'status', status, 'reason', reason, 'shift',
    a.shift or ''})
end

-- Ends the shift of an agent whose grace period ran out, at the drop; `lost` marks a connection
-- whose gateway died, and such a shift ends marked recovered.
function Shift.finish_after_drop(P, aid, a, now)
  local reason = 'disconnected'
  if a.lost == '1' then reason = 'recovered' end
  Shift.finish(P, aid, a, now, tonumber(a.disc_at or now), reason)
end

-- Marks the agent's connection `conn` gone at `at`, withdrawing its offer (API.md §5), and
-- starts the grace period if on shift. `lost`: its gateway died. Returns whether it was live.
function Shift.drop_connection(P, aid, a, conn, at, grace_ms, now, lost)
  if a.conn ~= conn or a.connected ~= '1' then return false end
  a.connected = '0'
  redis.call('HSET', K.key(P, 'agent', aid), 'connected', '0', 'disc_at', U.fmt(at), 'last_seen',
    U.fmt(at), 'lost', lost and '1' or '0')
  if not U.blank(a.inst) then redis.call('SREM', K.key(P, 'gateway_conns', a.inst), aid) end
  Shift.withdraw_offer(P, aid, a, now, false)
  if a.status ~= 'offline' then redis.call('ZADD', K.key(P, 'grace'), U.fmt(at + grace_ms), aid) end
  Agent.reindex(P, aid, a)
  U.emit(P, now, 'agent_disconnected', {'agent', aid, 'conn', conn, 'at', U.fmt(at)})
  return true
end

-- set_status: the agent asks for a status (API.md §6-7): `available` from `offline` starts a
-- shift, `offline` ends it; an agent that goes available is offered the best waiting ticket.
-- ARGV: agent id, status, a fresh shift id (used if a shift starts), offer id, timeout ms.
-- Reply: 'ok', status, shift id.
function Shift.set_status(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local aid, want, new_shift = args[1], args[2], args[3]
  local a = Agent.read(P, aid)
  if not a then return U.reject('agent_not_found') end
  local k = K.key(P, 'agent', aid)
  redis.call('HSET', k, 'last_seen', U.fmt(now))
  if want == a.status then return {'ok', a.status, a.shift or ''} end
  if want == 'offline' then
    Shift.finish(P, aid, a, now, now, 'requested')
    U.emit(P, now, 'agent_status', {'agent', aid, 'status', 'offline', 'reason', 'requested',
      'shift', ''})
    return {'ok', 'offline', ''}
  end
  if a.status == 'offline' then
    if want ~= 'available' then return U.reject('invalid_status_transition') end
    a.shift, a.idle_since = new_shift, U.fmt(now)
    redis.call('HSET', k, 'shift', new_shift, 'shift_started', U.fmt(now), 'idle_since',
      a.idle_since)
    U.emit(P, now, 'shift_started', {'agent', aid, 'shift', new_shift, 'rate', a.rate or '0',
      'currency', a.currency or '', 'tz', a.tz or 'UTC'})
  end
  if want == 'available' then redis.call('HSET', k, 'missed', '0') end
  Shift.set(P, aid, a, want, 'requested', now)
  Agent.reindex(P, aid, a)
  Queue.serve(P, aid, a, now, Match.offers(args[4], args[5]))
  return {'ok', a.status, a.shift or ''}
end

-- connect: a WebSocket was authenticated (API.md §6): one live connection per agent (an older
-- one is told to close with 4009); a reconnect within the grace period continues the shift, a
-- later one finds it ended at the drop. An agent free again is offered the best waiting ticket.
-- ARGV: agent id, connection id, gateway instance id, offer id, timeout ms, '1' if that gateway
-- listens on its own push channel. Reply: 'ok', status, shift id, pending offer id, then
-- assigned ticket ids.
function Shift.connect(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local aid, conn, inst = args[1], args[2], args[3]
  local a = Agent.read(P, aid)
  if not a then return U.reject('agent_not_found') end
  local grace_end = redis.call('ZSCORE', K.key(P, 'grace'), aid)
  if grace_end and a.connected ~= '1' and tonumber(grace_end) <= now then
    Shift.finish_after_drop(P, aid, a, now)
  end
  if a.connected == '1' and a.conn ~= '' and a.conn ~= conn then
    U.push(P, a, {kind = 'close', agent = aid, conn = a.conn, code = 4009})
    if not U.blank(a.inst) then redis.call('SREM', K.key(P, 'gateway_conns', a.inst), aid) end
  end
  redis.call('ZREM', K.key(P, 'grace'), aid)
  a.connected, a.conn, a.inst = '1', conn, inst
  -- What the gateway reads (`U.push`): `args[6]` is '3' for frames on its own sharded channel,
  -- '2' for frames on its own plain channel, '1' for pushes as JSON there (older gateways),
  -- nothing for the channel every gateway reads (older still).
  a.pinst = ''
  local reads = {['3'] = ' sharded', ['2'] = ' frames', ['1'] = ''}
  if reads[args[6]] then a.pinst = inst .. reads[args[6]] end
  redis.call('SADD', K.key(P, 'gateway_conns', inst), aid)
  Agent.reindex(P, aid, a, {'connected', '1', 'conn', conn, 'inst', inst, 'pinst', a.pinst,
    'last_seen', U.fmt(now)})
  U.emit(P, now, 'agent_connected', {'agent', aid, 'conn', conn, 'shift', a.shift or ''})
  Queue.serve(P, aid, a, now, Match.offers(args[4], args[5]))
  local reply = {'ok', a.status, a.shift or '', a.offer or ''}
  for _, tid in ipairs(redis.call('SMEMBERS', K.key(P, 'agent_tickets', aid))) do
    reply[#reply + 1] = tid
  end
  return reply
end

-- disconnect: a WebSocket closed (API.md §5: its offer is re-routed at once; its tickets wait
-- through the grace period). ARGV: agent id, connection id, grace ms. Reply: 'ok'.
function Shift.disconnect(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local aid = args[1]
  local a = Agent.read(P, aid)
  if not a then return {'ok'} end
  Shift.drop_connection(P, aid, a, args[2], now, tonumber(args[3]), now, false)
  return {'ok'}
end
