-- util.lua: what every transition uses: Redis's clock, hash reads, packed lists, the event
-- stream, pushes to the gateways, and the two shapes of a reply.
--
-- A reply is an array of words. Success: its first word says what happened (`ok`, `created`,
-- ...), the rest is data, as the function's header says; shared/src/store/reply.rs parses each
-- into a Rust type. Refusal: `{'error', code}` where `code` is one of shared/src/error.rs's
-- `ErrorCode`s, made only by `U.reject` with a literal code (a test checks every literal).

-- A last-resort cap on the stream: the ledger trims what it has stored; the cap only bounds
-- memory if no ledger runs for days.
U.STREAM_MAXLEN = '20000000'

-- Redis's clock in ms: the one authoritative clock.
function U.now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A number as an integer string (Lua would print large ones in exponent form).
function U.fmt(n)
  return string.format('%.0f', n)
end

-- HMGET of `fields` as a table; nil when the hash does not exist (its first field is nil: every
-- field list starts with one that every such hash has).
function U.hmget(key, fields)
  local values = redis.call('HMGET', key, unpack(fields))
  if not values[1] then return nil end
  local t = {}
  for i, f in ipairs(fields) do
    if values[i] then t[f] = values[i] end
  end
  return t
end

-- HGETALL as a table; nil when the hash does not exist.
function U.hgetall(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- "a,b,c" -> {'a', 'b', 'c'} (for separator ',').
function U.list(s, sep)
  local out = {}
  if not s or s == '' then return out end
  for item in string.gmatch(s, '[^' .. sep .. ']+') do out[#out + 1] = item end
  return out
end

-- "refunds:3,disputes:1" -> {refunds = 3, disputes = 1}
function U.levels(s)
  local out = {}
  if not s or s == '' then return out end
  for name, lvl in string.gmatch(s, '([^,:]+):(%d+)') do out[name] = tonumber(lvl) end
  return out
end

-- Whether string `a` sorts before `b` byte by byte, as Rust and sorted sets order them (Lua's
-- `<` follows the server's locale).
function U.bytes_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- Whether `s` is absent (nil, or false as Redis replies a missing field) or empty: hash fields
-- that are unset are stored as ''.
function U.blank(s)
  return not s or s == ''
end

-- Appends event `kind` with `fields` (a flat name, value list) to the stream; shared/src/events.rs
-- parses it (a test checks that every kind emitted here is one it knows). Returns its id.
function U.emit(P, now, kind, fields)
  local args = {K.key(P, 'events'), 'MAXLEN', '~', U.STREAM_MAXLEN, '*', 'type', kind, 'ts',
    U.fmt(now)}
  for i = 1, #fields do args[#args + 1] = fields[i] end
  return redis.call('XADD', unpack(args))
end

-- Whether stream id `a` ("ms-seq") is at or before `b`.
function U.id_at_or_before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am or not bm then return false end
  am, bm = tonumber(am), tonumber(bm)
  return am < bm or (am == bm and tonumber(as) <= tonumber(bs))
end

-- The frame (API.md §6, shared/src/protocol.rs `ServerMessage`) a push shows the agent, built by
-- concatenation: an offer's `skills` are the ticket's stored JSON, spliced as they are, and its
-- `expires_at` is left for the gateway to add (Lua has no calendar; `Push::frame` parses this).
local function E(v) return cjson.encode(v) end
U.FRAMES = {
  offer = function(m)
    return '{"type":"offer","offer_id":' .. E(m.offer_id) .. ',"ticket_id":' .. E(m.ticket_id)
      .. ',"summary":' .. E(m.summary) .. ',"language":' .. E(m.language) .. ',"skills":'
      .. m.skills .. ',"priority":' .. U.fmt(m.priority) .. ',"waited_secs":'
      .. U.fmt(math.max(0, math.floor((m.now_ms - m.created_ms) / 1000))) .. '}'
  end,
  offer_revoked = function(m)
    return '{"type":"offer_revoked","offer_id":' .. E(m.offer_id) .. ',"ticket_id":'
      .. E(m.ticket_id) .. ',"reason":' .. E(m.reason) .. '}'
  end,
  ticket_cancelled = function(m)
    return '{"type":"ticket_cancelled","ticket_id":' .. E(m.ticket_id) .. '}'
  end,
  status = function(m)
    return '{"type":"status","status":' .. E(m.status) .. ',"reason":' .. E(m.reason) .. '}'
  end,
}

-- Publishes `msg` (a shared/src/protocol.rs `Push` as a table; an offer's `skills` as the stored
-- JSON text) for agent `a`'s gateway. `pinst` says what that gateway reads: `<inst> sharded`,
-- the frame ready to send behind a line of routing (`Push::frame` reads it: "f1", agent, kind,
-- then the offer and its deadline or the connection and its close code), on the gateway's own
-- sharded channel (SPUBLISH: on a Redis Cluster it stays on the namespace's shard);
-- `<inst> frames` (the build before), the same on its plain channel; `<inst>` (older), the
-- `Push` as JSON on its own channel; empty (older still), the JSON on the channel every gateway
-- reads.
function U.push(P, a, msg)
  if a and not U.blank(a.inst) then
    local sharded = a.pinst == a.inst .. ' sharded'
    if sharded or a.pinst == a.inst .. ' frames' then
      local head, body = {'f1', msg.agent, msg.kind, '', ''}, ''
      if msg.kind == 'close' then
        head[4], head[5] = msg.conn, U.fmt(msg.code)
      else
        if msg.kind == 'offer' then head[4], head[5] = msg.offer_id, U.fmt(msg.expires_ms) end
        body = U.FRAMES[msg.kind](msg)
      end
      head[6] = body
      redis.call(sharded and 'SPUBLISH' or 'PUBLISH', K.key(P, 'push_gateway', a.inst),
        table.concat(head, '\n'))
      return
    end
  end
  if msg.kind == 'offer' then msg.skills = cjson.decode(msg.skills) end
  local channel = K.key(P, 'push_channel')
  if a and not U.blank(a.inst) and a.pinst == a.inst then
    channel = K.key(P, 'push_gateway', a.inst)
  end
  redis.call('PUBLISH', channel, cjson.encode(msg))
end

-- The reply refusing a call with an error code of shared/src/error.rs.
function U.reject(code)
  return {'error', code}
end
