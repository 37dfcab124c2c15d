-- timers.lua: what happens when time passes, called by every dispatcher's timers
-- (dispatcher/src/timers.rs); each call is atomic and idempotent, so instances may race.

-- expire_offers: offers past their deadline lapse (API.md §5): the ticket goes to the next
-- eligible agent, the agent is told `offer_revoked` (expired) and offered the best waiting
-- ticket, and after `MISSED_OFFERS_BEFORE_AWAY` lapses in a row it is set `away`.
-- Deadlines of offers answered or ended otherwise are due too (`Offer.close` leaves them): they
-- are only dropped. ARGV: max count, missed offers before away, offer id for the freed agents,
-- timeout ms. Reply: 'ok', how many lapsed, how many deadlines were due (those and the others).
function Timer.expire_offers(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local limit, threshold = tonumber(args[1]), tonumber(args[2])
  local offers = Match.offers(args[3], args[4])
  local deadlines = K.key(P, 'deadlines')
  local due = redis.call('ZRANGEBYSCORE', deadlines, '-inf', U.fmt(now), 'LIMIT', 0, limit)
  local lapsed = 0
  for _, oid in ipairs(due) do
    local o = U.hgetall(K.key(P, 'offer', oid))
    if o and o.status == 'pending' then
      lapsed = lapsed + 1
      local a = Offer.finish(P, oid, o, 'expired', now, true)
      U.emit(P, now, 'offer_expired', {'ticket', o.ticket, 'agent', o.agent, 'offer', oid})
      if a then
        local missed = redis.call('HINCRBY', K.key(P, 'agent', o.agent), 'missed', 1)
        if missed >= threshold and a.status == 'available' then
          Shift.set(P, o.agent, a, 'away', 'missed_offers', now)
          Agent.reindex(P, o.agent, a)
          U.push(P, a, {kind = 'status', agent = o.agent, status = 'away', reason = 'missed_offers'})
        end
        Queue.serve(P, o.agent, a, now, offers)
      end
    end
  end
  if #due > 0 then redis.call('ZREM', deadlines, unpack(due)) end
  return {'ok', tostring(lapsed), tostring(#due)}
end

-- expire_grace: grace periods that ran out end their shifts at the drop (API.md §7), and the
-- agents' tickets go back to routing. ARGV: max count. Reply: 'ok', how many.
function Timer.expire_grace(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local grace = K.key(P, 'grace')
  local due = redis.call('ZRANGEBYSCORE', grace, '-inf', U.fmt(now), 'LIMIT', 0, tonumber(args[1]))
  for _, aid in ipairs(due) do
    local a = Agent.read(P, aid)
    if a and a.connected ~= '1' then
      Shift.finish_after_drop(P, aid, a, now)
    else
      redis.call('ZREM', grace, aid)
    end
  end
  return {'ok', tostring(#due)}
end

-- reap_gateway: a gateway instance stopped heartbeating: its connections count as dropped at
-- its last heartbeat. ARGV: instance id, grace ms. Reply: 'ok', how many connections.
function Timer.reap_gateway(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local inst, grace = args[1], tonumber(args[2])
  local gateways = K.key(P, 'gateways')
  local conns = K.key(P, 'gateway_conns', inst)
  local seen = tonumber(redis.call('ZSCORE', gateways, inst) or now)
  local n = 0
  for _, aid in ipairs(redis.call('SMEMBERS', conns)) do
    local a = Agent.read(P, aid)
    if a and a.inst == inst and Shift.drop_connection(P, aid, a, a.conn, seen, grace, now, true) then
      n = n + 1
    end
  end
  redis.call('DEL', conns)
  redis.call('ZREM', gateways, inst)
  return {'ok', tostring(n)}
end

-- purge_tickets: an ended ticket leaves Redis (API.md §4) `retention` ms after it ended, with
-- its declined set and its offers' records, but never before the ledger has stored its end:
-- the stream id of its end event must be at or before the ledger's stored mark (set by
-- `ledger_stored` after each committed batch). ARGV: retention ms, max count.
-- Reply: 'ok', how many left.
function Timer.purge_tickets(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local ended = K.key(P, 'ended')
  local due = redis.call('ZRANGEBYSCORE', ended, '-inf', U.fmt(now - tonumber(args[1])), 'LIMIT',
    0, tonumber(args[2]))
  local stored = redis.call('GET', K.key(P, 'ledger_stored'))
  local n = 0
  for _, tid in ipairs(due) do
    local tk = K.key(P, 'ticket', tid)
    local rec = redis.call('HMGET', tk, 'ended_event', 'offer_ids')
    if rec[1] then
      -- In end order: once one is not stored yet, the later ones are not either.
      if not stored or not U.id_at_or_before(rec[1], stored) then break end
      local gone = {tk, K.key(P, 'declined', tid)}
      for _, oid in ipairs(U.list(rec[2], ',')) do gone[#gone + 1] = K.key(P, 'offer', oid) end
      redis.call('DEL', unpack(gone))
      n = n + 1
    end
    redis.call('ZREM', ended, tid)
  end
  return {'ok', tostring(n)}
end

-- ledger_stored: the ledger committed every event up to stream id `id`; the mark only moves
-- forward. ARGV: id. Reply: 'ok'.
function Timer.ledger_stored(keys, args)
  local P = K.prefix_of(keys)
  local key = K.key(P, 'ledger_stored')
  local current = redis.call('GET', key)
  if not current or not U.id_at_or_before(args[1], current) then
    redis.call('SET', key, args[1])
  end
  return {'ok'}
end

-- lease: a lease held by one instance at a time (the ledger writer). ARGV: name, holder, ttl ms.
-- Reply: 'ok' if `holder` holds it now (taken or renewed), 'held' otherwise.
function Timer.lease(keys, args)
  local P = K.prefix_of(keys)
  local key = K.key(P, 'lease', args[1])
  local current = redis.call('GET', key)
  if current and current ~= args[2] then return {'held'} end
  redis.call('SET', key, args[2], 'PX', tonumber(args[3]))
  return {'ok'}
end
