//! Reads for the REST views and the `welcome` frame: plain hash reads, pipelined.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::{ConnectReply, Store, StoreError};
use crate::domain::{
    AgentId, AgentProfile, AgentState, AgentStatus, AgentView, Outcome, TicketId, TicketStatus,
    TicketView, Timestamp,
};
use crate::protocol::{AssignedFrame, OfferFrame};

type Fields = HashMap<String, String>;

/// An agent's connection as Redis records it ([`Store::session`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The agent's last connection.
    pub conn: String,
    /// Whether it is live.
    pub connected: bool,
    /// What `welcome` would show now.
    pub now: ConnectReply,
}

/// Turns a flat `[field, value, ...]` reply into a map.
pub fn pairs(flat: Vec<String>) -> Fields {
    let mut map = HashMap::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(k, v);
    }
    map
}

fn text(f: &Fields, k: &str) -> String {
    f.get(k).cloned().unwrap_or_default()
}

fn opt(f: &Fields, k: &str) -> Option<String> {
    f.get(k).filter(|v| !v.is_empty()).cloned()
}

fn time(f: &Fields, k: &str) -> Option<Timestamp> {
    f.get(k)
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|ms| *ms > 0)
        .map(Timestamp::from_millis)
}

fn json(f: &Fields, k: &str) -> serde_json::Value {
    f.get(k)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_else(|| serde_json::json!({}))
}

fn priority(f: &Fields) -> u8 {
    f.get("prio").and_then(|v| v.parse().ok()).unwrap_or(5)
}

/// The `assigned` frame of a ticket hash.
pub fn assigned_frame(ticket_id: &str, f: &Fields) -> AssignedFrame {
    AssignedFrame {
        ticket_id: ticket_id.to_owned(),
        conversation_id: text(f, "conv"),
        summary: text(f, "summary"),
        language: text(f, "lang"),
        skills: json(f, "skills"),
        priority: priority(f),
        context: json(f, "context"),
        assigned_at: time(f, "assigned_at").unwrap_or(Timestamp::from_millis(0)),
    }
}

/// A ticket's view (`GET /v1/tickets/{id}`) from its hash.
fn ticket_view(id: &TicketId, f: &Fields) -> Result<TicketView, StoreError> {
    let status = match text(f, "status").as_str() {
        "queued" => TicketStatus::Queued,
        "offered" => TicketStatus::Offered,
        "assigned" => TicketStatus::Assigned,
        "completed" => TicketStatus::Completed,
        "cancelled" => TicketStatus::Cancelled,
        other => return Err(StoreError::Corrupt(format!("ticket {id} status {other:?}"))),
    };
    let outcome = match text(f, "outcome").as_str() {
        "resolved" => Some(Outcome::Resolved),
        "unresolved" => Some(Outcome::Unresolved),
        _ => None,
    };
    Ok(TicketView {
        ticket_id: id.clone(),
        conversation_id: text(f, "conv"),
        status,
        priority: priority(f),
        language: text(f, "lang"),
        skills: json(f, "skills"),
        region: opt(f, "region"),
        agent_id: opt(f, "agent"),
        preferred_agent_id: opt(f, "pref"),
        summary: text(f, "summary"),
        created_at: time(f, "created").unwrap_or(Timestamp::from_millis(0)),
        assigned_at: time(f, "assigned_at"),
        completed_at: time(f, "completed_at"),
        cancelled_at: time(f, "cancelled_at"),
        outcome,
        offers_made: f.get("offers").and_then(|v| v.parse().ok()).unwrap_or(0),
        queue_position: None,
        estimated_wait_secs: None,
    })
}

fn agent_view(id: &str, f: &Fields, tickets: Vec<String>) -> Result<AgentView, StoreError> {
    let profile: AgentProfile = serde_json::from_str(&text(f, "profile"))
        .map_err(|e| StoreError::Corrupt(format!("agent {id} profile: {e}")))?;
    let agent_id = AgentId::try_from(id).map_err(StoreError::Corrupt)?;
    let mut active_tickets: Vec<TicketId> = tickets
        .into_iter()
        .filter_map(|t| TicketId::try_from(t).ok())
        .collect();
    active_tickets.sort();
    Ok(AgentView {
        agent_id,
        profile,
        state: AgentState {
            status: AgentStatus::parse(&text(f, "status")).unwrap_or(AgentStatus::Offline),
            connected: text(f, "connected") == "1",
            active_tickets,
            shift_id: opt(f, "shift"),
            last_seen_at: time(f, "last_seen"),
        },
    })
}

impl Store {
    /// The agent's connection as Redis records it, and what `welcome` shows (as `connect`
    /// replies), read without changing anything; `None` if the agent is not on the roster.
    pub async fn session(&self, agent: &AgentId) -> Result<Option<Session>, StoreError> {
        let mut c = self.conn();
        let (fields, tickets): (Vec<Option<String>>, Vec<String>) = redis::pipe()
            .cmd("HMGET")
            .arg(self.keys.agent(agent.as_str()))
            .arg(&["status", "connected", "conn", "shift", "offer"])
            .cmd("SMEMBERS")
            .arg(self.keys.agent_tickets(agent.as_str()))
            .query_async(&mut c)
            .await?;
        let [status, connected, conn, shift, offer] = <[Option<String>; 5]>::try_from(fields)
            .map_err(|f| StoreError::Corrupt(format!("HMGET of 5 fields gave {}", f.len())))?;
        let Some(status) = status else {
            return Ok(None);
        };
        let status = AgentStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("agent {agent}: status {status:?}")))?;
        let set = |v: Option<String>| v.filter(|v| !v.is_empty());
        Ok(Some(Session {
            conn: conn.unwrap_or_default(),
            connected: connected.as_deref() == Some("1"),
            now: ConnectReply {
                status,
                shift_id: set(shift),
                offer_id: set(offer),
                tickets,
            },
        }))
    }

    /// One agent with its live state.
    pub async fn agent(&self, id: &AgentId) -> Result<Option<AgentView>, StoreError> {
        let mut views = self.agents_by_id(&[id.to_string()]).await?;
        Ok(views.pop())
    }

    /// A page of the roster in id order: up to `limit` agents after `cursor` (an agent id;
    /// `None` from the start), only those with `status` if given, and the cursor of the next
    /// page (`None` at the end). The roster is read in chunks of `limit` ids, so a page costs
    /// the same however long the roster is.
    pub async fn agents_page(
        &self,
        status: Option<AgentStatus>,
        limit: usize,
        cursor: Option<&AgentId>,
    ) -> Result<(Vec<AgentView>, Option<String>), StoreError> {
        let limit = limit.max(1);
        let mut conn = self.conn();
        let mut out = Vec::with_capacity(limit);
        let mut after = cursor.map(|c| c.to_string());
        loop {
            let min = after.as_ref().map_or("-".to_owned(), |a| format!("({a}"));
            // One more than needed: whether another page follows.
            let ids: Vec<String> = redis::cmd("ZRANGE")
                .arg(self.keys.agents())
                .arg(&min)
                .arg("+")
                .arg("BYLEX")
                .arg("LIMIT")
                .arg(0)
                .arg(limit - out.len() + 1)
                .query_async(&mut conn)
                .await?;
            let more = ids.len() > limit - out.len();
            let take = &ids[..ids.len().min(limit - out.len())];
            out.extend(
                self.agents_by_id(take)
                    .await?
                    .into_iter()
                    .filter(|v| status.is_none_or(|s| v.state.status == s)),
            );
            after = take.last().cloned().or(after);
            if !more {
                return Ok((out, None));
            }
            if out.len() >= limit {
                return Ok((out, after));
            }
        }
    }

    async fn agents_by_id(&self, ids: &[String]) -> Result<Vec<AgentView>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.agent(id))
                .smembers(self.keys.agent_tickets(id));
        }
        let mut conn = self.conn();
        let replies: Vec<(HashMap<String, String>, Vec<String>)> =
            pipe.query_async(&mut conn).await?;
        ids.iter()
            .zip(replies)
            .filter(|(_, (f, _))| f.contains_key("profile"))
            .map(|(id, (f, tickets))| agent_view(id, &f, tickets))
            .collect()
    }

    /// One ticket, while Redis holds it (an ended one leaves after `TICKET_RETENTION_SECS`,
    /// and the ledger serves it then).
    pub async fn ticket(&self, id: &TicketId) -> Result<Option<TicketView>, StoreError> {
        let mut conn = self.conn();
        let f: Fields = conn.hgetall(self.keys.ticket(id.as_str())).await?;
        if f.is_empty() {
            return Ok(None);
        }
        ticket_view(id, &f).map(Some)
    }

    /// Ended tickets as the ledger archives them: each one's view and its agent's note, in the
    /// order given; a ticket Redis no longer holds is left out.
    pub async fn ended_tickets(
        &self,
        ids: &[String],
    ) -> Result<Vec<(TicketView, String)>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for (id, f) in self.ticket_hashes(ids).await? {
            let id = TicketId::try_from(id).map_err(StoreError::Corrupt)?;
            out.push((ticket_view(&id, &f)?, text(&f, "note")));
        }
        Ok(out)
    }

    /// The hashes of tickets, pipelined, in the order given; unknown ids are left out.
    async fn ticket_hashes<'a>(
        &self,
        ids: &'a [String],
    ) -> Result<Vec<(&'a str, Fields)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.ticket(id));
        }
        let mut conn = self.conn();
        let replies: Vec<Fields> = pipe.query_async(&mut conn).await?;
        Ok(ids
            .iter()
            .zip(replies)
            .filter(|(_, f)| !f.is_empty())
            .map(|(id, f)| (id.as_str(), f))
            .collect())
    }

    /// The `assigned` frames of tickets, in the order given (unknown ids are skipped).
    pub async fn assigned_frames(&self, ids: &[String]) -> Result<Vec<AssignedFrame>, StoreError> {
        Ok(self
            .ticket_hashes(ids)
            .await?
            .into_iter()
            .map(|(id, f)| assigned_frame(id, &f))
            .collect())
    }

    /// The `offer` frame of a pending offer, if it is still pending.
    pub async fn offer_frame(
        &self,
        offer_id: &str,
        now_ms: i64,
    ) -> Result<Option<OfferFrame>, StoreError> {
        let mut conn = self.conn();
        let o: Fields = conn.hgetall(self.keys.offer(offer_id)).await?;
        if text(&o, "status") != "pending" {
            return Ok(None);
        }
        let ticket_id = text(&o, "ticket");
        let t: Fields = conn.hgetall(self.keys.ticket(&ticket_id)).await?;
        let created = time(&t, "created").map_or(now_ms, Timestamp::millis);
        Ok(Some(OfferFrame {
            offer_id: offer_id.to_owned(),
            ticket_id,
            summary: text(&t, "summary"),
            language: text(&t, "lang"),
            skills: json(&t, "skills"),
            priority: priority(&t),
            waited_secs: u64::try_from((now_ms - created) / 1000).unwrap_or(0),
            expires_at: time(&o, "expires").unwrap_or(Timestamp::from_millis(now_ms)),
        }))
    }

    /// Redis's clock, the one authoritative clock, in ms.
    pub async fn now_ms(&self) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
        Ok(secs * 1000 + micros / 1000)
    }
}
