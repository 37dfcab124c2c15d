//! The function library: its source (`src/lua/`, joined by `build.rs`), its version, the names
//! of its functions, and where a line of the joined library comes from.
//!
//! The tests here keep the Lua and the Rust in step: the Lua's key names are those of
//! [`crate::keys`], every error word it can reply is a code of [`crate::error::ErrorCode`],
//! every event kind it emits is one [`crate::events::Event`] parses, the functions it registers
//! are exactly [`Function::ALL`], and no file grows past 300 lines.

/// The joined library, with `__VERSION__` where its version goes.
const SOURCE: &str = include_str!(concat!(env!("OUT_DIR"), "/dispatch.lua"));

/// The library's version: a hash of its source. Function names carry it, so two builds sharing
/// one Redis never call each other's code.
pub fn library_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(SOURCE.as_bytes()))[..12].to_owned()
    })
}

/// The function library as loaded into Redis (at start, and again if Redis lost it).
pub fn library() -> String {
    SOURCE.replace("__VERSION__", library_version())
}

/// Every function of the library, as `library.lua` registers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    /// `PUT /v1/agents/{id}`.
    PutAgent,
    /// `DELETE /v1/agents/{id}`.
    RemoveAgent,
    /// `POST /v1/tickets`.
    CreateTicket,
    /// Routing a queued ticket: the policy's choice offered in the same call.
    RouteTicket,
    /// Routing tickets a dead dispatcher left.
    StaleRouting,
    /// The queue sweep: free agents offered what they may take.
    Sweep,
    /// The agent accepts an offer.
    Accept,
    /// The agent declines an offer.
    Decline,
    /// Offers past their deadline lapse.
    ExpireOffers,
    /// The agent completes a ticket.
    Complete,
    /// `DELETE /v1/tickets/{id}`.
    CancelTicket,
    /// The agent asks for a status.
    SetStatus,
    /// A WebSocket was authenticated.
    Connect,
    /// A WebSocket closed.
    Disconnect,
    /// Grace periods that ran out.
    ExpireGrace,
    /// A silent gateway's connections.
    ReapGateway,
    /// Ended tickets leave Redis once stored and past the retention.
    PurgeTickets,
    /// An offer's push found no connection of its agent on the gateway.
    OfferUnreached,
    /// The ledger's committed mark.
    LedgerStored,
    /// A lease held by one instance at a time.
    Lease,
    /// A queued ticket's place.
    QueuePosition,
    /// `GET /v1/queues`.
    QueueOverview,
    /// `POST /v1/webhooks`.
    WebhookCreate,
    /// `DELETE /v1/webhooks/{id}`.
    WebhookDelete,
    /// Stream entries acknowledged and their deliveries queued.
    WebhookEnqueue,
    /// Due deliveries leased to a dispatcher.
    WebhookClaim,
    /// An attempt's outcome.
    WebhookDone,
    /// The ledger stored an ended shift.
    ShiftRecorded,
}

impl Function {
    /// All of them.
    pub const ALL: [Function; 28] = [
        Self::PutAgent,
        Self::RemoveAgent,
        Self::CreateTicket,
        Self::RouteTicket,
        Self::StaleRouting,
        Self::Sweep,
        Self::Accept,
        Self::Decline,
        Self::ExpireOffers,
        Self::Complete,
        Self::CancelTicket,
        Self::SetStatus,
        Self::Connect,
        Self::Disconnect,
        Self::ExpireGrace,
        Self::ReapGateway,
        Self::PurgeTickets,
        Self::LedgerStored,
        Self::Lease,
        Self::OfferUnreached,
        Self::QueuePosition,
        Self::QueueOverview,
        Self::WebhookCreate,
        Self::WebhookDelete,
        Self::WebhookEnqueue,
        Self::WebhookClaim,
        Self::WebhookDone,
        Self::ShiftRecorded,
    ];

    /// The name `library.lua` registers it under (without prefix and version).
    pub fn name(self) -> &'static str {
        match self {
            Self::PutAgent => "put_agent",
            Self::RemoveAgent => "remove_agent",
            Self::CreateTicket => "create_ticket",
            Self::RouteTicket => "route_ticket",
            Self::StaleRouting => "stale_routing",
            Self::Sweep => "sweep",
            Self::Accept => "accept",
            Self::Decline => "decline",
            Self::ExpireOffers => "expire_offers",
            Self::Complete => "complete",
            Self::CancelTicket => "cancel_ticket",
            Self::SetStatus => "set_status",
            Self::Connect => "connect",
            Self::Disconnect => "disconnect",
            Self::ExpireGrace => "expire_grace",
            Self::ReapGateway => "reap_gateway",
            Self::PurgeTickets => "purge_tickets",
            Self::OfferUnreached => "offer_unreached",
            Self::LedgerStored => "ledger_stored",
            Self::Lease => "lease",
            Self::QueuePosition => "queue_position",
            Self::QueueOverview => "queue_overview",
            Self::WebhookCreate => "webhook_create",
            Self::WebhookDelete => "webhook_delete",
            Self::WebhookEnqueue => "webhook_enqueue",
            Self::WebhookClaim => "webhook_claim",
            Self::WebhookDone => "webhook_done",
            Self::ShiftRecorded => "shift_recorded",
        }
    }

    /// The name Redis knows it by: `dispatch_<name>_<version>`.
    pub fn versioned(self) -> String {
        format!("dispatch_{}_{}", self.name(), library_version())
    }
}

/// The file and line (both from 1) that line `line` of the joined library comes from.
pub fn locate(line: usize) -> Option<(&'static str, usize)> {
    let mut counts: Vec<(&'static str, usize)> = vec![("library.lua", 0)];
    let mut current = 0;
    for (i, text) in SOURCE.lines().enumerate() {
        if let Some(file) = text.strip_prefix("-- @file ") {
            if file != "library.lua" {
                // The include line this file replaced.
                counts[0].1 += 1;
            }
            current = match counts.iter().position(|(f, _)| *f == file) {
                Some(p) => p,
                None => {
                    counts.push((file, 0));
                    counts.len() - 1
                }
            };
            if i + 1 == line {
                return None;
            }
            continue;
        }
        counts[current].1 += 1;
        if i + 1 == line {
            return Some(counts[current]);
        }
    }
    None
}

/// Adds the file and line to a Redis script error that names a line of the library
/// (`user_function:123: ...`).
pub(crate) fn annotate(message: &str) -> String {
    let line = message
        .split("user_function:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    match line.and_then(locate) {
        Some((file, n)) => format!("{message} (shared/src/lua/{file}:{n})"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::error::ErrorCode;
    use crate::keys::Keys;

    /// The Lua files, by name.
    fn files() -> Vec<(String, String)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/lua");
        let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
            .expect("src/lua exists")
            .map(|e| {
                let path = e.expect("a directory entry").path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_owned();
                (name, std::fs::read_to_string(&path).expect("readable"))
            })
            .filter(|(name, _)| name.ends_with(".lua"))
            .collect();
        out.sort();
        out
    }

    /// The code of a Lua file, line by line (numbered from 1), without comments.
    fn code_lines(text: &str) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let mut in_block = false;
        for (n, line) in text.lines().enumerate() {
            if in_block {
                in_block = !line.contains("]]");
                continue;
            }
            if line.trim_start().starts_with("--[[") {
                in_block = !line.contains("]]");
                continue;
            }
            let code = line.split("--").next().unwrap_or_default();
            out.push((n + 1, code.to_owned()));
        }
        out
    }

    /// Every `'literal'` that follows `call(` in the Lua sources (not where `call` is defined),
    /// and the lines where it takes something other than a literal.
    fn literals_after(call: &str) -> (BTreeSet<String>, Vec<String>) {
        let mut found = BTreeSet::new();
        let mut not_literal = Vec::new();
        for (name, text) in files() {
            for (n, code) in code_lines(&text) {
                if code.trim_start().starts_with("function ") {
                    continue;
                }
                for rest in code.split(call).skip(1) {
                    match rest.strip_prefix('\'').and_then(|r| r.split_once('\'')) {
                        Some((word, _)) => {
                            found.insert(word.to_owned());
                        }
                        None => not_literal.push(format!("{name}:{n}: {code}")),
                    }
                }
            }
        }
        (found, not_literal)
    }

    #[test]
    fn every_file_is_under_300_lines() {
        for (name, text) in files() {
            assert!(
                text.lines().count() < 300,
                "{name} has {} lines",
                text.lines().count()
            );
        }
    }

    #[test]
    fn every_included_file_is_in_the_library_and_every_file_is_included() {
        let joined: BTreeSet<&str> = SOURCE
            .lines()
            .filter_map(|l| l.strip_prefix("-- @file "))
            .collect();
        let on_disk: BTreeSet<String> = files().into_iter().map(|(n, _)| n).collect();
        let joined: BTreeSet<String> = joined.into_iter().map(str::to_owned).collect();
        assert_eq!(joined, on_disk);
    }

    #[test]
    fn every_error_word_of_the_lua_is_a_code_of_the_error_table() {
        let (codes, not_literal) = literals_after("U.reject(");
        assert!(
            not_literal.is_empty(),
            "U.reject takes a literal code: {not_literal:#?}"
        );
        assert!(!codes.is_empty());
        for code in codes {
            assert!(
                ErrorCode::from_name(&code).is_some(),
                "the Lua rejects with {code:?}, which shared/src/error.rs does not know"
            );
        }
    }

    #[test]
    fn errors_are_only_made_by_reject() {
        for (name, text) in files() {
            for (n, code) in code_lines(&text) {
                if name != "util.lua" {
                    assert!(
                        !code.contains("'error'"),
                        "{name}:{n}: an error reply not made by U.reject: {code}"
                    );
                }
                assert!(
                    !code.contains("error_reply"),
                    "{name}:{n}: error replies are {{'error', code}} arrays: {code}"
                );
            }
        }
    }

    #[test]
    fn every_event_the_lua_emits_is_one_the_event_type_knows() {
        let (kinds, not_literal) = literals_after("U.emit(P, now, ");
        assert!(
            not_literal.is_empty(),
            "U.emit takes a literal kind: {not_literal:#?}"
        );
        let known: BTreeSet<String> = crate::events::EventKind::ALL
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect();
        assert_eq!(
            kinds, known,
            "kinds emitted by the Lua vs shared/src/events.rs"
        );
    }

    #[test]
    fn the_lua_registers_exactly_the_functions_rust_calls() {
        let (_, library) = files()
            .into_iter()
            .find(|(n, _)| n == "library.lua")
            .expect("library.lua");
        let registered: BTreeSet<&str> = library
            .lines()
            .filter_map(|l| l.strip_prefix("register('"))
            .filter_map(|rest| rest.split_once('\'').map(|(name, _)| name))
            .collect();
        let called: BTreeSet<&str> = Function::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(registered, called);
    }

    /// What `Keys` names for each name of keys.lua, with `X1`, `X2`... for its arguments.
    fn rust_key(k: &Keys, name: &str) -> Option<String> {
        Some(match name {
            "agents" => k.agents(),
            "agent" => k.agent("X1"),
            "agent_tickets" => k.agent_tickets("X1"),
            "agent_declined" => k.agent_declined("X1"),
            "free" => k.free("X1"),
            "ticket" => k.ticket("X1"),
            "declined" => k.declined("X1"),
            "queue" => k.queue("X1"),
            "class_queue" => k.class_queue("X1", "X2"),
            "queue_classes" => k.queue_classes("X1"),
            "routing" => k.routing(),
            "route_queue" => k.route_queue(),
            "queues" => k.queues(),
            "offer" => k.offer("X1"),
            "ended" => k.ended(),
            "ledger_stored" => k.ledger_stored(),
            "deadlines" => k.deadlines(),
            "grace" => k.grace(),
            "gateways" => k.gateways(),
            "gateway_conns" => k.gateway_conns("X1"),
            "idempotency" => k.idempotency("X1"),
            "seq" => k.seq(),
            "lease" => k.lease("X1"),
            "events" => k.events(),
            "push_channel" => k.push_channel(),
            "push_gateway" => k.push_gateway("X1"),
            "probe" => k.probe(),
            "webhooks" => k.webhooks(),
            "webhook_due" => k.webhook_due("X1"),
            "webhook_key" => k.webhook_key("X1", "X2"),
            "webhook_heads" => k.webhook_heads("X1"),
            "webhook_pending" => k.webhook_pending("X1"),
            "webhook_log" => k.webhook_log("X1"),
            "webhook_seq" => k.webhook_seq(),
            "shift_recorded" => k.shift_recorded("X1"),
            _ => return None,
        })
    }

    #[test]
    fn the_lua_key_table_mirrors_keys_rs() {
        let (_, lua) = files()
            .into_iter()
            .find(|(n, _)| n == "keys.lua")
            .expect("keys.lua");
        let table = lua
            .split("K.NAMES = {")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .expect("the K.NAMES table");
        let k = Keys::new("ns");
        let mut names = BTreeSet::new();
        for line in table.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (name, template) = line
                .trim_end_matches(',')
                .split_once(" = ")
                .expect("name = 'template'");
            let template = template.trim_matches('\'');
            let mut lua_key = format!("{}{template}", k.prefix());
            for i in 1..=template.matches("%s").count() {
                lua_key = lua_key.replacen("%s", &format!("X{i}"), 1);
            }
            let rust = rust_key(&k, name)
                .unwrap_or_else(|| panic!("keys.lua names {name:?}, keys.rs does not"));
            assert_eq!(lua_key, rust, "key {name}");
            names.insert(name.to_owned());
        }
        assert_eq!(names.len(), Keys::NAMES.len(), "{names:?}");
        for name in Keys::NAMES {
            assert!(
                names.contains(*name),
                "keys.rs names {name:?}, keys.lua does not"
            );
        }
    }

    #[test]
    fn a_line_of_the_joined_library_is_traced_to_its_file() {
        let joined: Vec<&str> = SOURCE.lines().collect();
        let n = joined
            .iter()
            .position(|l| l.starts_with("function Queue.serve("))
            .expect("Queue.serve is in the library")
            + 1;
        let (file, line) = locate(n).expect("a line of a file");
        assert_eq!(file, "queues.lua");
        let (_, text) = files()
            .into_iter()
            .find(|(f, _)| f == file)
            .expect("the file");
        assert!(text
            .lines()
            .nth(line - 1)
            .is_some_and(|l| l.starts_with("function Queue.serve(")));
        let registration = joined
            .iter()
            .position(|l| l.starts_with("local function register"))
            .expect("the registration")
            + 1;
        let (file, line) = locate(registration).expect("a line");
        assert_eq!(file, "library.lua");
        let (_, text) = files()
            .into_iter()
            .find(|(f, _)| f == "library.lua")
            .expect("library.lua");
        assert!(text
            .lines()
            .nth(line - 1)
            .is_some_and(|l| l.starts_with("local function register")));
        assert_eq!(
            annotate(&format!("ERR user_function:{n}: boom")),
            format!(
                "ERR user_function:{n}: boom (shared/src/lua/queues.lua:{line_of_serve})",
                line_of_serve = locate(n).map(|(_, l)| l).unwrap_or_default()
            )
        );
    }
}
