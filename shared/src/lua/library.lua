#!lua name=dispatch___VERSION__
--[[
library.lua: the dispatch state machine, every transition that must be atomic, as one Redis
function library. shared/build.rs joins the files included below into one library (each
`-- @include` line is replaced by that file), in this order; shared/src/store/ loads it and
calls its functions through typed Rust calls.

Each function is called with one key, the namespace's event stream (`{ns}:events`), which
routes the call on a cluster (all keys of a namespace share the `{ns}` hash tag) and from which
the key prefix is derived (keys.lua). Every state change appends an event to that stream in the
same atomic step (shared/src/events.rs reads them); `ts` is always Redis's own clock. Replies
are arrays of words: a success word then data, or `{'error', code}` (util.lua).

Matching happens where the change happens, so that no change waits for another process: a
function that frees an agent offers it, in the same atomic step, the best ticket waiting for an
agent (`Queue.serve`); a ticket that needs an agent is routed by the choice policy in the call
that reserves the agent (`Match.route`: a new ticket in its creation, one that comes back in
`route_ticket`; matching.lua says how).

Files: keys.lua (key names), util.lua (clock, reads, events, replies), agents.lua (roster,
free indexes, eligibility), queues.lua (the waiting queues), matching.lua (routing by the
policy and offers), offers.lua (an offer's answer
and end), tickets.lua (creation, completion, cancellation), shifts.lua (status, connections,
shifts), timers.lua (deadlines, grace periods, dead gateways, leases), webhooks.lua (webhook
endpoints and their deliveries).

The rules of API.md and where they are enforced:

  §3  a profile is created or replaced, effective for the next offer .... put_agent (Agent.put)
  §3  a removed agent's connection closes, its shift ends, work requeued remove_agent
  §4  idempotency: same key and body finds the first ticket, another
      body is refused ............................................... create_ticket
  §4  an ended ticket leaves Redis after the retention, once stored .. purge_tickets, Ticket.ended
  §4  cancel: the offer is revoked or the agent told, capacity back;
      a completed ticket cannot be cancelled ........................ cancel_ticket
  §5  eligibility (status, connection, capacity, one offer, language,
      skills, region, not declined before) ..................... Agent.is_free, Agent.eligible
  §5  the best eligible agent: preferred, fewest active, longest idle,
      summed level, id ....................... Match.route, Match.better (+ dispatcher/src/policy.rs)
  §5  a freed agent gets the best waiting ticket (priority, oldest),
      however many it cannot take wait ahead ..................... Queue.serve (+ sweep)
  §5  one agent at a time, never two: chosen and reserved in one call .. Match.route, Match.reserve
  §5  a lapsed offer goes to the next agent; missed offers set away .... expire_offers
  §5  a declined offer goes to the next agent at once ................. decline
  §5  a dropped connection's offer is re-routed at once ............... disconnect
  §5  tickets wait through the grace period, then go back to routing .. expire_grace, connect
  §5  no ticket is lost: queued tickets are routing or parked ......... Match.to_routing, Queue.park
  §6  one live connection per agent; a newer one closes the older ..... connect
  §6  accept: another agent's, unknown or lapsed offers are refused;
      accepting again an offer accepted answers the same ............ accept (Offer.check)
  §6  complete: only the agent's own assigned ticket .................. complete
  §6  a reconnect within grace restores status, tickets, offer ........ connect
  §7  a shift runs from available out of offline until offline, removal
      or a drop not back in time (then it ends at the drop) ........ set_status, Shift.finish
  §7  a shift keeps the rate it started with .......................... set_status (shift_started)
  §8  a queued ticket's place: the tickets any agent able to take it
      is offered first ................................ queue_position, queue_overview
  §9  each event to each endpoint once, one ticket's in order, a dead
      endpoint's backlog bounded ........... webhook_enqueue, webhook_claim, webhook_done
]]

-- One table per file, declared here so that every file may call into any other.
local K, U, Agent, Queue, Match, Offer, Ticket, Shift, Timer, Hook =
  {}, {}, {}, {}, {}, {}, {}, {}, {}, {}

-- @include keys.lua
-- @include util.lua
-- @include agents.lua
-- @include queues.lua
-- @include matching.lua
-- @include offers.lua
-- @include tickets.lua
-- @include shifts.lua
-- @include timers.lua
-- @include webhooks.lua

-- Function names carry the library's content hash (filled in by shared/src/store/mod.rs), so
-- instances of different builds sharing a Redis (a rolling deploy) each call their own code.
-- shared/src/store/library.rs names the same functions (a test compares the two lists).
-- (Redis loads a library without Lua's standard globals, `pairs` among them: hence one call
-- per function.)
local function register(name, fn)
  redis.register_function('dispatch_' .. name .. '___VERSION__', fn)
end
register('put_agent', Agent.put)
register('remove_agent', Agent.remove)
register('create_ticket', Ticket.create)
register('route_ticket', Match.route_ticket)
register('stale_routing', Match.stale_routing)
register('sweep', Queue.sweep)
register('accept', Offer.accept)
register('decline', Offer.decline)
register('offer_unreached', Offer.unreached)
register('expire_offers', Timer.expire_offers)
register('complete', Ticket.complete)
register('cancel_ticket', Ticket.cancel)
register('set_status', Shift.set_status)
register('connect', Shift.connect)
register('disconnect', Shift.disconnect)
register('expire_grace', Timer.expire_grace)
register('reap_gateway', Timer.reap_gateway)
register('purge_tickets', Timer.purge_tickets)
register('ledger_stored', Timer.ledger_stored)
register('lease', Timer.lease)
register('queue_position', Queue.position)
register('queue_overview', Queue.overview)
register('webhook_create', Hook.create)
register('webhook_delete', Hook.delete)
register('webhook_enqueue', Hook.enqueue)
register('webhook_claim', Hook.claim)
register('webhook_done', Hook.done)
register('shift_recorded', Hook.shift_recorded)
