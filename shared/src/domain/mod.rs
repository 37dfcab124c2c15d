//! The domain: validated values, agent profiles and tickets as the contract shows them.
//!
//! Request types (`AgentProfile`, `NewTicket`) reject bad input while deserialising, so a handler
//! that holds one holds a valid value. View types (`AgentView`, `TicketView`) are what we return.

mod text;
mod values;

use chrono::{DateTime, SecondsFormat, TimeZone as _, Utc};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::{PartialSchema as _, ToSchema};

use crate::schema::{self, schema};

pub use text::{
    check_identifier, check_length, AgentId, ConversationId, DeclineReason, DisplayName, Note,
    OfferId, RegionName, Summary, TicketId,
};
pub use values::{
    Currency, Language, Level, Location, MaxConcurrent, Priority, RateCents, Skill, Skills,
    TimeZone,
};

/// An agent's availability, as the contract names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Not on shift.
    Offline,
    /// On shift, takes offers up to `max_concurrent`.
    Available,
    /// On shift, no offers.
    Break,
    /// On shift, no offers; set by the system after missed offers.
    Away,
}

impl AgentStatus {
    /// The snake_case name, as stored in Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Available => "available",
            Self::Break => "break",
            Self::Away => "away",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Offline, Self::Available, Self::Break, Self::Away]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// A status an agent may ask for with `set_status` (`away` is set only by the system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestedStatus {
    /// Take offers; starts a shift when coming from `offline`.
    Available,
    /// Pause offers; the shift goes on.
    Break,
    /// End the shift.
    Offline,
}

impl From<RequestedStatus> for AgentStatus {
    fn from(value: RequestedStatus) -> Self {
        match value {
            RequestedStatus::Available => Self::Available,
            RequestedStatus::Break => Self::Break,
            RequestedStatus::Offline => Self::Offline,
        }
    }
}

/// A ticket's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Waiting for an agent.
    Queued,
    /// Offered to one agent, waiting for the answer.
    Offered,
    /// Accepted by an agent.
    Assigned,
    /// Done.
    Completed,
    /// Withdrawn by the escalation engine.
    Cancelled,
}

/// How an agent closed a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The customer's problem was solved.
    Resolved,
    /// It was not.
    Unresolved,
}

impl Outcome {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resolved => "resolved",
            Self::Unresolved => "unresolved",
        }
    }
}

fn default_skills() -> Skills {
    Skills::new()
}
fn default_max_concurrent() -> MaxConcurrent {
    MaxConcurrent::try_from(1).unwrap_or_else(|_| unreachable!("1 is within 1..=10"))
}
fn default_timezone() -> TimeZone {
    TimeZone::try_from("UTC".to_owned()).unwrap_or_else(|_| unreachable!("UTC is an IANA zone"))
}
fn default_rate() -> RateCents {
    RateCents::try_from(0).unwrap_or_else(|_| unreachable!("0 is a valid rate"))
}
fn default_currency() -> Currency {
    Currency::try_from("EUR").unwrap_or_else(|_| unreachable!("EUR is ISO 4217"))
}

/// At least one language, without repeats, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Language>")]
pub struct Languages(Vec<Language>);

impl TryFrom<Vec<Language>> for Languages {
    type Error = String;
    fn try_from(mut value: Vec<Language>) -> Result<Self, Self::Error> {
        if value.is_empty() {
            return Err("at least one language is required".into());
        }
        let mut seen = std::collections::HashSet::new();
        value.retain(|l| seen.insert(l.clone()));
        Ok(Self(value))
    }
}

schema!(
    Languages,
    schema::array(
        "Languages spoken, at least one.",
        <Language as utoipa::PartialSchema>::schema(),
        1
    )
);

impl Languages {
    /// The languages.
    pub fn as_slice(&self) -> &[Language] {
        &self.0
    }
}

/// An agent's profile as the roster keeps it (`PUT /v1/agents/{agent_id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "display_name": "Astrid L.",
    "skills": {"refunds": 4, "disputes": 2},
    "languages": ["sv", "en"],
    "max_concurrent": 2,
    "location": {"lat": 63.8258, "lon": 20.2630},
    "timezone": "Europe/Stockholm",
    "hourly_rate_cents": 1650,
    "currency": "EUR"
}))]
pub struct AgentProfile {
    /// The name operators see.
    pub display_name: DisplayName,
    /// Skills with levels.
    #[serde(default = "default_skills")]
    pub skills: Skills,
    /// Languages spoken, at least one.
    pub languages: Languages,
    /// Tickets held at once.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: MaxConcurrent,
    /// Where the agent works from, for geofenced tickets.
    #[serde(default)]
    pub location: Option<Location>,
    /// The agent's own zone, for workdays.
    #[serde(default = "default_timezone")]
    pub timezone: TimeZone,
    /// Pay per hour in minor units.
    #[serde(default = "default_rate")]
    pub hourly_rate_cents: RateCents,
    /// The currency of the rate.
    #[serde(default = "default_currency")]
    pub currency: Currency,
}

/// The live state of an agent, as `GET /v1/agents/{id}` and `GET /v1/me` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentState {
    /// Availability.
    pub status: AgentStatus,
    /// Whether a WebSocket is open (any instance).
    pub connected: bool,
    /// Tickets assigned and not yet completed.
    pub active_tickets: Vec<TicketId>,
    /// The running shift, if on shift.
    pub shift_id: Option<String>,
    /// The last time the agent was heard from.
    pub last_seen_at: Option<Timestamp>,
}

/// A profile with its id and live state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentView {
    /// The agent's id.
    pub agent_id: AgentId,
    /// The profile's fields, inline.
    #[serde(flatten)]
    pub profile: AgentProfile,
    /// Live state.
    pub state: AgentState,
}

/// The schema of a profile with its id and state: the profile's fields without its ban on
/// other fields, `agent_id` and `state` (an `allOf` with the profile would forbid the two).
impl utoipa::PartialSchema for AgentView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::Schema;
        use utoipa::openapi::RefOr;
        let RefOr::T(Schema::Object(mut object)) = AgentProfile::schema() else {
            unreachable!("a derived struct schema is an object")
        };
        object.additional_properties = None;
        object.description = Some("A profile with its id and live state.".into());
        object
            .properties
            .insert("agent_id".into(), AgentId::schema());
        object
            .properties
            .insert("state".into(), schema::reference::<AgentState>());
        object.required.splice(0..0, ["agent_id".to_owned()]);
        object.required.push("state".into());
        RefOr::T(Schema::Object(object))
    }
}

impl ToSchema for AgentView {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((AgentState::name().into(), AgentState::schema()));
        AgentProfile::schemas(schemas);
        AgentState::schemas(schemas);
    }
}

/// The most a ticket's `context` may hold, serialised.
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;

/// An escalated conversation posted by the escalation engine (`POST /v1/tickets`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "conversation_id": "conv-8812",
    "language": "sv",
    "skills": {"refunds": 3},
    "priority": 5,
    "summary": "Double charge on order 5521, customer asks for a refund",
    "context": {"transcript_url": "https://example.com/t/8812", "customer_tier": "gold"}
}))]
pub struct NewTicket {
    /// The escalation engine's conversation id.
    pub conversation_id: ConversationId,
    /// The language the customer speaks.
    pub language: Language,
    /// Minimum skill levels.
    #[serde(default = "default_skills")]
    pub skills: Skills,
    /// 0..9, higher first.
    #[serde(default)]
    pub priority: Priority,
    /// A geofence the agent must be inside.
    #[serde(default)]
    pub region: Option<RegionName>,
    /// The agent to prefer when eligible.
    #[serde(default)]
    pub preferred_agent_id: Option<AgentId>,
    /// What the agent sees in the offer.
    pub summary: Summary,
    /// Data only the accepting agent sees: any JSON object, at most 64 KiB.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A ticket as `GET /v1/tickets/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TicketView {
    /// Our id.
    pub ticket_id: TicketId,
    /// The escalation engine's id.
    pub conversation_id: String,
    /// Lifecycle state.
    pub status: TicketStatus,
    /// 0..9.
    pub priority: u8,
    /// The customer's language.
    pub language: String,
    /// Minimum levels.
    #[schema(value_type = Skills)]
    pub skills: serde_json::Value,
    /// Geofence, if any.
    pub region: Option<String>,
    /// The agent holding it (assigned or completed).
    pub agent_id: Option<String>,
    /// Preferred agent, if any.
    pub preferred_agent_id: Option<String>,
    /// The summary shown in offers.
    pub summary: String,
    /// When posted.
    pub created_at: Timestamp,
    /// When accepted.
    pub assigned_at: Option<Timestamp>,
    /// When completed.
    pub completed_at: Option<Timestamp>,
    /// When cancelled.
    pub cancelled_at: Option<Timestamp>,
    /// `resolved` or `unresolved` once completed.
    pub outcome: Option<Outcome>,
    /// How many offers were made for it.
    pub offers_made: u32,
    /// While queued: 1 + the queued tickets an agent able to take it is offered first
    /// (API.md §8).
    #[serde(default)]
    pub queue_position: Option<u64>,
    /// While queued or offered: the expected seconds until it is assigned (API.md §8).
    #[serde(default)]
    pub estimated_wait_secs: Option<u64>,
}

impl TicketView {
    /// A ticket just posted and not yet offered: `queued`, no offers made.
    pub fn posted(ticket_id: TicketId, t: &NewTicket, created_at: Timestamp) -> Self {
        Self {
            ticket_id,
            conversation_id: t.conversation_id.to_string(),
            status: TicketStatus::Queued,
            priority: t.priority.get(),
            language: t.language.to_string(),
            skills: serde_json::to_value(&t.skills).unwrap_or_else(|_| serde_json::json!({})),
            region: t.region.as_ref().map(|r| r.to_string()),
            agent_id: None,
            preferred_agent_id: t.preferred_agent_id.as_ref().map(|a| a.to_string()),
            summary: t.summary.to_string(),
            created_at,
            assigned_at: None,
            completed_at: None,
            cancelled_at: None,
            outcome: None,
            offers_made: 0,
            queue_position: None,
            estimated_wait_secs: None,
        }
    }
}

/// A point in time, kept as milliseconds since the epoch (as Redis stores it) and written as
/// RFC 3339 in UTC with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From milliseconds since the Unix epoch.
    pub fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// As a chrono time.
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }

    /// RFC 3339, UTC, milliseconds.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

schema!(Timestamp, schema::date_time("RFC 3339, UTC."));

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Self(t.timestamp_millis()))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_example_profile_parses() {
        let body = r#"{
          "display_name": "Astrid L.",
          "skills": {"refunds": 4, "disputes": 2},
          "languages": ["sv", "en"],
          "max_concurrent": 2,
          "location": {"lat": 63.8258, "lon": 20.2630},
          "timezone": "Europe/Stockholm",
          "hourly_rate_cents": 1650,
          "currency": "EUR"
        }"#;
        let p: AgentProfile = serde_json::from_str(body).expect("the contract's example is valid");
        assert_eq!(p.max_concurrent.get(), 2);
        assert_eq!(p.languages.as_slice().len(), 2);
    }

    #[test]
    fn profiles_need_a_language_and_reject_unknown_fields() {
        assert!(
            serde_json::from_str::<AgentProfile>(r#"{"display_name":"a","languages":[]}"#).is_err()
        );
        assert!(serde_json::from_str::<AgentProfile>(
            r#"{"display_name":"a","languages":["en"],"colour":"red"}"#
        )
        .is_err());
        let p: AgentProfile =
            serde_json::from_str(r#"{"display_name":"a","languages":["en","en"]}"#)
                .expect("minimal profile");
        assert_eq!(p.languages.as_slice().len(), 1);
        assert_eq!(p.max_concurrent.get(), 1);
    }

    #[test]
    fn the_contract_example_ticket_parses_with_defaults() {
        let t: NewTicket =
            serde_json::from_str(r#"{"conversation_id":"c-1","language":"sv","summary":"help"}"#)
                .expect("minimal ticket");
        assert_eq!(t.priority.get(), 5);
        assert!(t.skills.is_empty());
        assert!(serde_json::from_str::<NewTicket>(
            r#"{"conversation_id":"c-1","language":"sv","summary":"x","context":[1]}"#
        )
        .is_err());
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = Timestamp::from_millis(1_700_000_000_123);
        assert_eq!(t.to_rfc3339(), "2023-11-14T22:13:20.123Z");
        let back: Timestamp = serde_json::from_str(&serde_json::to_string(&t).expect("serializes"))
            .expect("parses back");
        assert_eq!(back, t);
    }
}
