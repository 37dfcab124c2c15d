//! The ticket archive (API.md §4): every ended ticket, stored by the writer in the transaction
//! of the batch that holds its end, and read back once Redis no longer holds it.
//!
//! A row holds exactly the fields of `GET /v1/tickets/{id}` ([`TicketView`]), so a ticket reads
//! the same from either place (a test compares them field by field), and the agent's note.

use chrono::{DateTime, Utc};
use shared::domain::{Outcome, TicketId, TicketStatus, TicketView, Timestamp};
use sqlx::PgConnection;

use crate::{Ledger, LedgerError};

fn at(t: Timestamp) -> DateTime<Utc> {
    t.to_datetime()
}

fn status_name(s: TicketStatus) -> &'static str {
    match s {
        TicketStatus::Queued => "queued",
        TicketStatus::Offered => "offered",
        TicketStatus::Assigned => "assigned",
        TicketStatus::Completed => "completed",
        TicketStatus::Cancelled => "cancelled",
    }
}

/// Stores ended tickets (view and note); one already stored (a replay) is left as it is.
pub(crate) async fn archive(
    db: &mut PgConnection,
    ns: &str,
    tickets: &[(TicketView, String)],
) -> Result<(), sqlx::Error> {
    let ended: Vec<&(TicketView, String)> = tickets
        .iter()
        .filter(|(t, _)| matches!(t.status, TicketStatus::Completed | TicketStatus::Cancelled))
        .collect();
    if ended.is_empty() {
        return Ok(());
    }
    let text =
        |f: fn(&TicketView) -> String| -> Vec<String> { ended.iter().map(|(t, _)| f(t)).collect() };
    let opt = |f: fn(&TicketView) -> Option<String>| -> Vec<Option<String>> {
        ended.iter().map(|(t, _)| f(t)).collect()
    };
    let time = |f: fn(&TicketView) -> Option<Timestamp>| -> Vec<Option<DateTime<Utc>>> {
        ended.iter().map(|(t, _)| f(t).map(at)).collect()
    };
    let priority: Vec<i16> = ended.iter().map(|(t, _)| i16::from(t.priority)).collect();
    let offers: Vec<i32> = ended
        .iter()
        .map(|(t, _)| i32::try_from(t.offers_made).unwrap_or(i32::MAX))
        .collect();
    let notes: Vec<String> = ended.iter().map(|(_, n)| n.clone()).collect();
    sqlx::query(
        "INSERT INTO tickets (namespace, ticket_id, conversation_id, status, priority, language,
                              skills, region, agent_id, preferred_agent_id, summary, created_at,
                              assigned_at, completed_at, cancelled_at, outcome, offers_made, note)
         SELECT $1, u.id, u.conv, u.status, u.prio, u.lang, u.skills::jsonb, u.region, u.agent,
                u.pref, u.summary, u.created, u.assigned, u.completed, u.cancelled, u.outcome,
                u.offers, u.note
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int2[], $6::text[], $7::text[],
                     $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[],
                     $13::timestamptz[], $14::timestamptz[], $15::timestamptz[], $16::text[],
                     $17::int4[], $18::text[])
           AS u(id, conv, status, prio, lang, skills, region, agent, pref, summary, created,
                assigned, completed, cancelled, outcome, offers, note)
         ON CONFLICT (namespace, ticket_id) DO NOTHING",
    )
    .bind(ns)
    .bind(text(|t| t.ticket_id.to_string()))
    .bind(text(|t| t.conversation_id.clone()))
    .bind(text(|t| status_name(t.status).to_owned()))
    .bind(&priority)
    .bind(text(|t| t.language.clone()))
    .bind(text(|t| t.skills.to_string()))
    .bind(opt(|t| t.region.clone()))
    .bind(opt(|t| t.agent_id.clone()))
    .bind(opt(|t| t.preferred_agent_id.clone()))
    .bind(text(|t| t.summary.clone()))
    .bind(time(|t| Some(t.created_at)))
    .bind(time(|t| t.assigned_at))
    .bind(time(|t| t.completed_at))
    .bind(time(|t| t.cancelled_at))
    .bind(opt(|t| t.outcome.map(|o| o.as_str().to_owned())))
    .bind(&offers)
    .bind(&notes)
    .execute(&mut *db)
    .await?;
    Ok(())
}

type Row = (
    String,
    String,
    i16,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
    i32,
);

fn millis(t: DateTime<Utc>) -> Timestamp {
    Timestamp::from_millis(t.timestamp_millis())
}

impl Ledger {
    /// An archived ticket, as `GET /v1/tickets/{id}` shows it.
    pub async fn ticket(&self, id: &TicketId) -> Result<Option<TicketView>, LedgerError> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT conversation_id, status, priority, language, skills::text, region, agent_id,
                    preferred_agent_id, summary, created_at, assigned_at, completed_at,
                    cancelled_at, outcome, offers_made
             FROM tickets WHERE namespace = $1 AND ticket_id = $2",
        )
        .bind(&self.namespace)
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let status = match r.1.as_str() {
            "completed" => TicketStatus::Completed,
            _ => TicketStatus::Cancelled,
        };
        let outcome = match r.13.as_deref() {
            Some("resolved") => Some(Outcome::Resolved),
            Some("unresolved") => Some(Outcome::Unresolved),
            _ => None,
        };
        Ok(Some(TicketView {
            ticket_id: id.clone(),
            conversation_id: r.0,
            status,
            priority: u8::try_from(r.2).unwrap_or_default(),
            language: r.3,
            skills: serde_json::from_str(&r.4).unwrap_or_else(|_| serde_json::json!({})),
            region: r.5,
            agent_id: r.6,
            preferred_agent_id: r.7,
            summary: r.8,
            created_at: millis(r.9),
            assigned_at: r.10.map(millis),
            completed_at: r.11.map(millis),
            cancelled_at: r.12.map(millis),
            outcome,
            offers_made: u32::try_from(r.14).unwrap_or_default(),
            queue_position: None,
            estimated_wait_secs: None,
        }))
    }
}
