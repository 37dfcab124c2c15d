//! The Redis key schema: every key, stream and channel name comes from here.
//!
//! All names of a namespace share the prefix `{<namespace>}:`. The braces are a Redis Cluster
//! hash tag: every key of a namespace lives in one slot, so the functions of the Lua library may
//! touch several keys atomically on a cluster too. The library derives the same names from the
//! same prefix (it receives the events stream key and strips `events`) with the table of
//! `src/lua/keys.lua`, which a test compares with this module, name by name. The layout is:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `agents` | zset | every agent id on the roster (score 0, read in id order) |
//! | `agent:<id>` | hash | profile JSON and live state (status, connection, capacity, offer, shift) |
//! | `agent:<id>:tickets` | set | tickets assigned to the agent |
//! | `agent:<id>:declined` | set | live tickets the agent declined or let lapse |
//! | `free:<lang>` | zset | agents who could take an offer now and speak `<lang>`, by (active, idle since) |
//! | `ticket:<id>` | hash | the ticket and its state |
//! | `ticket:<id>:declined` | set | agents who declined it or let it expire |
//! | `queue:<lang>` | zset | tickets waiting for a freed agent, by (priority desc, arrival) |
//! | `queue:<lang>:<class>` | zset | the same, of one class (what they need: `refunds:3@north`) |
//! | `qclasses:<lang>` | hash | the classes of a language with waiting tickets |
//! | `routing` | zset | queued tickets the choice policy has yet to place, by when they began to wait for it (ms) |
//! | `routeq` | list | routing tickets the dispatchers are asked to route (popped by one of them) |
//! | `queues` | set | languages with waiting tickets |
//! | `offer:<id>` | hash | an offer; once ended only its ticket, agent and status, for 2 minutes |
//! | `ended` | zset | ended tickets by when they ended (ms), until they leave Redis |
//! | `ledger:stored` | string | the last stream id the ledger committed to PostgreSQL |
//! | `deadlines` | zset | pending offers by deadline (ms) |
//! | `grace` | zset | disconnected agents by end of grace (ms) |
//! | `gateways` | zset | agent-app-api instances by last heartbeat (ms) |
//! | `gw:<instance>:conns` | set | agents connected through an instance |
//! | `idem:<key>` | string | `<body hash>|<ticket id>` for `Idempotency-Key` |
//! | `seq` | string | the namespace's ticket counter (queue order among equal priorities) |
//! | `lease:<name>` | string | who holds a lease (the ledger writer) |
//! | `events` | stream | every state change (type, ids, `ts` from Redis's clock) |
//! | `push` | channel | messages for every gateway ([`crate::protocol::Push`]): those for agents whose gateway has no channel of its own (an older build) |
//! | `push:<instance>` | channel | messages for the agents connected through one gateway instance: frames ready to send (`U.push`), or [`crate::protocol::Push`] JSON for a gateway of the previous build |
//! | `probe` | string | written by each readiness check (`/readyz`), to learn that Redis takes writes; expires after 10 s |
//! | `webhooks` | hash | webhook endpoints by id (JSON, with the secret) |
//! | `wh:<id>:due` | zset | an endpoint's order keys (`t:<ticket>`, `a:<agent>`) with deliveries waiting, by when their head is due (ms) |
//! | `wh:<id>:k:<key>` | list | an endpoint's deliveries of one order key, oldest first: `<event id> <type> <body>` |
//! | `wh:<id>:heads` | hash | attempts made at the head of each order key's list |
//! | `wh:<id>:pending` | zset | an endpoint's deliveries, `<event id>|<key>` by arrival (the backlog bound) |
//! | `wh:<id>:log` | list | an endpoint's latest 100 attempts (JSON) |
//! | `wh:seq` | string | the deliveries' arrival counter |
//! | `shift_recorded:<shift>` | string | that the ledger announced the shift's end (`shift_recorded`), for 7 days |

/// A ticket's class, as `src/lua/queues.lua` names it: what it needs of an agent besides the
/// language, `refunds:3,disputes:2@north` (skills as stored, `@` then the region, if any).
pub fn queue_class(skills: &str, region: &str) -> String {
    format!("{skills}@{region}")
}

/// Key names for one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The name of every key function below, as `src/lua/keys.lua` names the same key.
    pub const NAMES: &'static [&'static str] = &[
        "agents",
        "agent",
        "agent_tickets",
        "agent_declined",
        "free",
        "ticket",
        "declined",
        "queue",
        "class_queue",
        "queue_classes",
        "routing",
        "route_queue",
        "queues",
        "offer",
        "ended",
        "ledger_stored",
        "deadlines",
        "grace",
        "gateways",
        "gateway_conns",
        "idempotency",
        "seq",
        "lease",
        "events",
        "push_channel",
        "push_gateway",
        "probe",
        "webhooks",
        "webhook_due",
        "webhook_key",
        "webhook_heads",
        "webhook_pending",
        "webhook_log",
        "webhook_seq",
        "shift_recorded",
    ];

    /// Names for `namespace` (already validated as an identifier, so it holds no braces).
    pub fn new(namespace: &str) -> Self {
        Self {
            prefix: format!("{{{namespace}}}:"),
        }
    }

    /// The common prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// The roster.
    pub fn agents(&self) -> String {
        self.key("agents")
    }

    /// One agent's hash.
    pub fn agent(&self, id: &str) -> String {
        self.key(&format!("agent:{id}"))
    }

    /// One agent's assigned tickets.
    pub fn agent_tickets(&self, id: &str) -> String {
        self.key(&format!("agent:{id}:tickets"))
    }

    /// Free agents who speak `language`.
    pub fn free(&self, language: &str) -> String {
        self.key(&format!("free:{language}"))
    }

    /// The live tickets an agent declined or let lapse.
    pub fn agent_declined(&self, id: &str) -> String {
        self.key(&format!("agent:{id}:declined"))
    }

    /// One ticket's hash.
    pub fn ticket(&self, id: &str) -> String {
        self.key(&format!("ticket:{id}"))
    }

    /// The agents who declined a ticket or let its offer lapse.
    pub fn declined(&self, ticket: &str) -> String {
        self.key(&format!("ticket:{ticket}:declined"))
    }

    /// The waiting queue of a language.
    pub fn queue(&self, language: &str) -> String {
        self.key(&format!("queue:{language}"))
    }

    /// The waiting tickets of a language that need `class` (`<skills>@<region>`, see
    /// [`queue_class`]).
    pub fn class_queue(&self, language: &str, class: &str) -> String {
        self.key(&format!("queue:{language}:{class}"))
    }

    /// The classes of a language that have waiting tickets (hash fields).
    pub fn queue_classes(&self, language: &str) -> String {
        self.key(&format!("qclasses:{language}"))
    }

    /// Queued tickets the choice policy has yet to place.
    pub fn routing(&self) -> String {
        self.key("routing")
    }

    /// Routing tickets a dispatcher is asked to route.
    pub fn route_queue(&self) -> String {
        self.key("routeq")
    }

    /// Languages that have a queue.
    pub fn queues(&self) -> String {
        self.key("queues")
    }

    /// One offer's hash.
    pub fn offer(&self, id: &str) -> String {
        self.key(&format!("offer:{id}"))
    }

    /// Ended tickets by when they ended (ms), until they leave Redis.
    pub fn ended(&self) -> String {
        self.key("ended")
    }

    /// The last stream id the ledger has committed to PostgreSQL.
    pub fn ledger_stored(&self) -> String {
        self.key("ledger:stored")
    }

    /// Pending offers by deadline.
    pub fn deadlines(&self) -> String {
        self.key("deadlines")
    }

    /// Disconnected agents by end of grace.
    pub fn grace(&self) -> String {
        self.key("grace")
    }

    /// Gateway instances by heartbeat.
    pub fn gateways(&self) -> String {
        self.key("gateways")
    }

    /// The agents connected through a gateway instance.
    pub fn gateway_conns(&self, instance: &str) -> String {
        self.key(&format!("gw:{instance}:conns"))
    }

    /// An `Idempotency-Key` (already hashed).
    pub fn idempotency(&self, key: &str) -> String {
        self.key(&format!("idem:{key}"))
    }

    /// The namespace's ticket counter.
    pub fn seq(&self) -> String {
        self.key("seq")
    }

    /// A lease.
    pub fn lease(&self, name: &str) -> String {
        self.key(&format!("lease:{name}"))
    }

    /// The event stream; also the key every function call is routed by.
    pub fn events(&self) -> String {
        self.key("events")
    }

    /// What each readiness check writes, to learn that Redis takes writes.
    pub fn probe(&self) -> String {
        self.key("probe")
    }

    /// The channel every gateway listens on.
    pub fn push_channel(&self) -> String {
        self.key("push")
    }

    /// The channel of one gateway instance: pushes for the agents connected through it.
    pub fn push_gateway(&self, instance: &str) -> String {
        self.key(&format!("push:{instance}"))
    }

    /// The webhook endpoints.
    pub fn webhooks(&self) -> String {
        self.key("webhooks")
    }

    /// An endpoint's order keys with deliveries, by when their head is due.
    pub fn webhook_due(&self, id: &str) -> String {
        self.key(&format!("wh:{id}:due"))
    }

    /// An endpoint's deliveries of one order key, oldest first.
    pub fn webhook_key(&self, id: &str, key: &str) -> String {
        self.key(&format!("wh:{id}:k:{key}"))
    }

    /// An endpoint's attempts made at each head.
    pub fn webhook_heads(&self, id: &str) -> String {
        self.key(&format!("wh:{id}:heads"))
    }

    /// An endpoint's deliveries, by arrival.
    pub fn webhook_pending(&self, id: &str) -> String {
        self.key(&format!("wh:{id}:pending"))
    }

    /// An endpoint's latest attempts.
    pub fn webhook_log(&self, id: &str) -> String {
        self.key(&format!("wh:{id}:log"))
    }

    /// The deliveries' arrival counter.
    pub fn webhook_seq(&self) -> String {
        self.key("wh:seq")
    }

    /// That a shift's end was announced.
    pub fn shift_recorded(&self, shift: &str) -> String {
        self.key(&format!("shift_recorded:{shift}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_carries_the_namespace_as_a_hash_tag() {
        let k = Keys::new("blue");
        for key in [
            k.agents(),
            k.agent("a-1"),
            k.agent_tickets("a-1"),
            k.ticket("t-1"),
            k.queue("sv"),
            k.routing(),
            k.route_queue(),
            k.deadlines(),
            k.grace(),
            k.events(),
            k.push_channel(),
            k.push_gateway("gw-1"),
        ] {
            assert!(key.starts_with("{blue}:"), "{key}");
        }
        assert_ne!(Keys::new("a").events(), Keys::new("b").events());
    }
}
