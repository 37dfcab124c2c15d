-- timers.lua: what happens when time passes, called by every dispatcher's timers
-- (dispatcher/src/timers.rs); each call is atomic and idempotent, so instances may race.

-- How long an entry whose step failed waits before it is tried again.
Timer.RETRY_FAILED_MS = 5000

-- Runs `step(...)` for the due entry `id`; if it fails (a bug, or data no build should have
-- written), adds `id` and the error to `failed` instead of failing the call, so the other
-- entries still expire. Redis keeps what the step wrote before it failed.
function Timer.guarded(failed, id, step, ...)
  local ok, err = pcall(step, ...)
  if ok then return true end
  if type(err) == 'table' then err = err.err or cjson.encode(err) end
  failed[#failed + 1] = id
  failed[#failed + 1] = tostring(err)
  return false
end

-- The reply of a timer: 'ok', the counts, then each failed entry and its error; the failed
-- entries are due again in `Timer.RETRY_FAILED_MS` (in `zset`).
function Timer.reply(zset, now, counts, failed)
  for i = 1, #failed, 2 do
    redis.call('ZADD', zset, U.fmt(now + Timer.RETRY_FAILED_MS), failed[i])
  end
  local reply = {'ok'}
  for _, c in ipairs(counts) do reply[#reply + 1] = tostring(c) end
  for _, f in ipairs(failed) do reply[#reply + 1] = f end
  return reply
end

-- expire_offers: offers past their deadline lapse (API.md §5): the ticket goes to the next
-- eligible agent, the agent is told `offer_revoked` (expired) and offered the best waiting
-- ticket, and after `MISSED_OFFERS_BEFORE_AWAY` lapses in a row it is set `away`.
-- Deadlines of offers answered or ended otherwise are due too (`Offer.close` leaves them): they
-- are only dropped. ARGV: max count, missed offers before away, offer id for the freed agents,
-- timeout ms. Reply: 'ok', how many lapsed, how many deadlines were due (those and the others),
-- then each offer whose lapse failed and why (`Timer.guarded`).
function Timer.expire_offers(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local limit, threshold = tonumber(args[1]), tonumber(args[2])
  local offers = Match.offers(args[3], args[4])
  local deadlines = K.key(P, 'deadlines')
  local due = redis.call('ZRANGEBYSCORE', deadlines, '-inf', U.fmt(now), 'LIMIT', 0, limit)
  local lapsed, failed = 0, {}
  local function lapse(oid, o)
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
  for _, oid in ipairs(due) do
    local o = U.hgetall(K.key(P, 'offer', oid))
    if o and o.status == 'pending' and Timer.guarded(failed, oid, lapse, oid, o) then
      lapsed = lapsed + 1
    end
  end
  if #due > 0 then redis.call('ZREM', deadlines, unpack(due)) end
  return Timer.reply(deadlines, now, {lapsed, #due}, failed)
end

-- expire_grace: grace periods that ran out end their shifts at the drop (API.md §7), and the
-- agents' tickets go back to routing. ARGV: max count. Reply: 'ok', how many were due, then
-- each agent whose shift could not be ended and why (`Timer.guarded`).
function Timer.expire_grace(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local grace = K.key(P, 'grace')
  local due = redis.call('ZRANGEBYSCORE', grace, '-inf', U.fmt(now), 'LIMIT', 0, tonumber(args[1]))
  local failed = {}
  for _, aid in ipairs(due) do
    local a = Agent.read(P, aid)
    if a and a.connected ~= '1' then
      Timer.guarded(failed, aid, Shift.finish_after_drop, P, aid, a, now)
    else
      redis.call('ZREM', grace, aid)
    end
  end
  return Timer.reply(grace, now, {#due}, failed)
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
