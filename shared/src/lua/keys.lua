-- keys.lua: the names of a namespace's keys, a mirror of shared/src/keys.rs (a test in
-- shared/src/store/library.rs compares the two, name by name).
--
-- Every function is called with one key, the namespace's event stream `{ns}:events`, which routes
-- the call on a cluster; the prefix `{ns}:` of every other key is derived from it. A name below
-- with `%s` takes arguments in that order: `K.key(P, 'agent', id)`.

K.NAMES = {
  agents = 'agents',
  agent = 'agent:%s',
  agent_tickets = 'agent:%s:tickets',
  agent_declined = 'agent:%s:declined',
  free = 'free:%s',
  ticket = 'ticket:%s',
  declined = 'ticket:%s:declined',
  queue = 'queue:%s',
  class_queue = 'queue:%s:%s',
  queue_classes = 'qclasses:%s',
  routing = 'routing',
  route_queue = 'routeq',
  queues = 'queues',
  offer = 'offer:%s',
  ended = 'ended',
  ledger_stored = 'ledger:stored',
  deadlines = 'deadlines',
  grace = 'grace',
  gateways = 'gateways',
  gateway_conns = 'gw:%s:conns',
  idempotency = 'idem:%s',
  seq = 'seq',
  lease = 'lease:%s',
  events = 'events',
  push_channel = 'push',
  push_gateway = 'push:%s',
  probe = 'probe',
  webhooks = 'webhooks',
  webhook_due = 'wh:%s:due',
  webhook_key = 'wh:%s:k:%s',
  webhook_heads = 'wh:%s:heads',
  webhook_pending = 'wh:%s:pending',
  webhook_log = 'wh:%s:log',
  webhook_seq = 'wh:seq',
  shift_recorded = 'shift_recorded:%s',
}

-- The prefix `{ns}:` of the namespace whose stream is KEYS[1].
function K.prefix_of(keys)
  return string.sub(keys[1], 1, -7)
end

-- The key `name` of the namespace with prefix `P`, filled with the arguments.
function K.key(P, name, ...)
  return P .. string.format(K.NAMES[name], ...)
end
