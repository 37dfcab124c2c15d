-- webhooks.lua: webhook endpoints and their deliveries (API.md §9), and the ledger's
-- announcement of an ended shift (`shift.ended` carries the pay, which only the ledger knows).
--
-- The events reach the endpoints through the stream's consumer group `webhooks`: a dispatcher
-- reads a batch, builds each event's body, and hands the batch to `webhook_enqueue`, which
-- acknowledges each entry and queues its deliveries in one step, so that an entry another
-- dispatcher took over (and queued) is not queued twice. An endpoint's deliveries wait per
-- order key (a ticket, an agent) in a list, `wh:<id>:k:<key>`, oldest first; only the head of
-- a list is tried, so one ticket's events arrive in order while other tickets' go on. The
-- zset `wh:<id>:due` holds every key with deliveries by when its head is due (pushed later
-- while a dispatcher tries it: the claim is a lease); `wh:<id>:pending` every delivery by
-- arrival, which bounds the backlog (the oldest are given up first) and counts it.
-- A list item is `<event id> <type> <body>`.

Hook.LOG_KEPT = 100

local function due(P, wid, key, at)
  redis.call('ZADD', K.key(P, 'webhook_due', wid), U.fmt(at), key)
end

-- The head of `key`'s list (pending member `member`) is done, delivered or given up: the next
-- one is due at once.
function Hook.advance(P, wid, key, member, now)
  local list = K.key(P, 'webhook_key', wid, key)
  redis.call('LPOP', list)
  redis.call('ZREM', K.key(P, 'webhook_pending', wid), member)
  redis.call('HDEL', K.key(P, 'webhook_heads', wid), key)
  if redis.call('EXISTS', list) == 1 then
    due(P, wid, key, now)
  else
    redis.call('ZREM', K.key(P, 'webhook_due', wid), key)
  end
end

-- Appends `entry` (JSON) to endpoint `wid`'s delivery log, which keeps the latest.
function Hook.log(P, wid, entry)
  local log = K.key(P, 'webhook_log', wid)
  redis.call('LPUSH', log, entry)
  redis.call('LTRIM', log, 0, Hook.LOG_KEPT - 1)
end

-- webhook_create: a new endpoint, unless the namespace has `max` already. ARGV: id, endpoint
-- JSON, max. Reply: 'ok'.
function Hook.create(keys, args)
  local P = K.prefix_of(keys)
  local hooks = K.key(P, 'webhooks')
  if redis.call('HLEN', hooks) >= tonumber(args[3]) then return U.reject('webhook_limit_reached') end
  redis.call('HSET', hooks, args[1], args[2])
  return {'ok'}
end

-- webhook_delete: the endpoint and everything it had to deliver. ARGV: id. Reply: 'ok'.
function Hook.delete(keys, args)
  local P, wid = K.prefix_of(keys), args[1]
  if redis.call('HDEL', K.key(P, 'webhooks'), wid) == 0 then
    return U.reject('webhook_not_found')
  end
  local dk = K.key(P, 'webhook_due', wid)
  local waiting = redis.call('ZRANGE', dk, 0, -1)
  for i = 1, #waiting, 500 do
    local lists = {}
    for j = i, math.min(i + 499, #waiting) do
      lists[#lists + 1] = K.key(P, 'webhook_key', wid, waiting[j])
    end
    redis.call('DEL', unpack(lists))
  end
  redis.call('DEL', dk, K.key(P, 'webhook_heads', wid), K.key(P, 'webhook_pending', wid),
    K.key(P, 'webhook_log', wid))
  return {'ok'}
end

-- webhook_enqueue: acknowledges stream entries for consumer group `group` and queues their
-- deliveries, those of an entry only if this call acknowledged it. Past `max` deliveries
-- waiting for one endpoint, its oldest is given up (and logged). ARGV: group, max, then per
-- entry: its id, n, and n times (endpoint id, order key, event id, type, body).
-- Reply: 'ok', then (endpoint id, how many were given up) for each endpoint that gave up some.
function Hook.enqueue(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local group, max = args[1], tonumber(args[2])
  local hooks = K.key(P, 'webhooks')
  local dropped, order = {}, {}
  local i = 3
  while i <= #args do
    local fresh = redis.call('XACK', keys[1], group, args[i]) == 1
    local n = tonumber(args[i + 1])
    i = i + 2
    for _ = 1, n do
      local wid, key, eid, kind = args[i], args[i + 1], args[i + 2], args[i + 3]
      if fresh and redis.call('HEXISTS', hooks, wid) == 1 then
        local list = K.key(P, 'webhook_key', wid, key)
        if redis.call('RPUSH', list, eid .. ' ' .. kind .. ' ' .. args[i + 4]) == 1 then
          due(P, wid, key, now)
        end
        local pending = K.key(P, 'webhook_pending', wid)
        redis.call('ZADD', pending, redis.call('INCR', K.key(P, 'webhook_seq')), eid .. '|' .. key)
        if redis.call('ZCARD', pending) > max then
          local oldest = redis.call('ZRANGE', pending, 0, 0)[1]
          local oid, okey = string.match(oldest, '^([^|]*)|(.*)$')
          local head = redis.call('LINDEX', K.key(P, 'webhook_key', wid, okey), 0) or ''
          local _, otype = string.match(head, '^(%S+) (%S+) ')
          Hook.advance(P, wid, okey, oldest, now)
          Hook.log(P, wid, cjson.encode({event_id = oid, type = otype or '', attempt = 0,
            status = cjson.null, error = 'given up: over ' .. args[2] .. ' deliveries waiting',
            attempted_ms = now, next_attempt_ms = cjson.null}))
          if not dropped[wid] then order[#order + 1] = wid end
          dropped[wid] = (dropped[wid] or 0) + 1
        end
      end
      i = i + 5
    end
  end
  local reply = {'ok'}
  for _, wid in ipairs(order) do
    reply[#reply + 1] = wid
    reply[#reply + 1] = tostring(dropped[wid])
  end
  return reply
end

-- webhook_claim: the due heads of the endpoints' lists, each leased for `lease` ms (tried
-- again by anyone once the lease is over: the dispatcher trying it died). ARGV: lease ms, then
-- (endpoint id, most to claim) pairs. Reply: 'ok', then (endpoint id, order key, attempts made,
-- item) for each.
function Hook.claim(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local lease = tonumber(args[1])
  local reply = {'ok'}
  for i = 2, #args, 2 do
    local wid = args[i]
    local dk = K.key(P, 'webhook_due', wid)
    local ready = redis.call('ZRANGEBYSCORE', dk, '-inf', U.fmt(now), 'LIMIT', 0,
      tonumber(args[i + 1]))
    for _, key in ipairs(ready) do
      local item = redis.call('LINDEX', K.key(P, 'webhook_key', wid, key), 0)
      if item then
        due(P, wid, key, now + lease)
        local attempts = redis.call('HGET', K.key(P, 'webhook_heads', wid), key) or '0'
        for _, v in ipairs({wid, key, attempts, item}) do reply[#reply + 1] = v end
      else
        redis.call('ZREM', dk, key)
      end
    end
  end
  return reply
end

-- webhook_done: an attempt at the head of `key`'s list ended: 'delivered' or 'failed' (given
-- up) move on to the next; 'retry' makes it due again in `delay` ms. The attempt is logged.
-- ARGV: endpoint id, order key, event id, outcome, delay ms, log entry JSON.
-- Reply: 'ok'; 'stale' if the head is another delivery now (this one was given up meanwhile).
function Hook.done(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local wid, key, eid, outcome = args[1], args[2], args[3], args[4]
  if redis.call('HEXISTS', K.key(P, 'webhooks'), wid) == 0 then return {'stale'} end
  Hook.log(P, wid, args[6])
  local head = redis.call('LINDEX', K.key(P, 'webhook_key', wid, key), 0)
  if not head or string.sub(head, 1, #eid + 1) ~= eid .. ' ' then return {'stale'} end
  if outcome == 'retry' then
    redis.call('HINCRBY', K.key(P, 'webhook_heads', wid), key, 1)
    due(P, wid, key, now + tonumber(args[5]))
  else
    Hook.advance(P, wid, key, eid .. '|' .. key, now)
  end
  return {'ok'}
end

-- shift_recorded: the ledger stored the end of shift `shift`; announced once (the ledger may
-- store a batch again after a failed commit). ARGV: agent, shift, the shift's row JSON.
-- Reply: 'ok'.
function Hook.shift_recorded(keys, args)
  local P, now = K.prefix_of(keys), U.now_ms()
  local mark = K.key(P, 'shift_recorded', args[2])
  if redis.call('SET', mark, '1', 'NX', 'EX', 7 * 86400) then
    U.emit(P, now, 'shift_recorded', {'agent', args[1], 'shift', args[2], 'row', args[3]})
  end
  return {'ok'}
end
