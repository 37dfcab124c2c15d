//! Applying a batch of events to the ledger in a constant number of statements.
//!
//! Most events change an open shift's status or ticket count, or its agent's last sign of life:
//! one or two per ticket handled, so thousands a second under load. Applied one at a time they
//! cost several statements each (read the shift, update it, read its open segment, close it,
//! open the next); here the open shifts of every agent in the batch and their open segments are
//! read in two statements, the events are applied to that state in memory, in stream order, and
//! the result is written back in three (shifts, segments, completions), whatever the batch's size.
//!
//! The events that begin or end a shift ([`crate::apply::apply_boundary`]) are rare and keep
//! their own statements: before one is applied, what the batch holds for its agent is written,
//! and after it the agent's state is read again.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::apply::{apply_boundary, kind_of, Event};

/// A segment row to write: its start, kind and end (`None` while open).
type SegmentRow = (DateTime<Utc>, String, Option<DateTime<Utc>>);

/// An open shift as the batch sees it.
#[derive(Debug, Clone)]
struct OpenShift {
    shift_id: String,
    status: String,
    active: i32,
    last_seen: DateTime<Utc>,
    /// The last stream event applied to the shift.
    last: (i64, i64),
    /// The open segment: its kind and start.
    segment: Option<(String, DateTime<Utc>)>,
    /// The shift row needs writing.
    dirty: bool,
    /// Segment rows to write; of two writes of one start, the later wins.
    segments: Vec<SegmentRow>,
}

impl OpenShift {
    /// Moves the shift into segment `kind` at `at` (nothing if already in it). A segment that has
    /// not lasted a second yet just changes kind.
    fn set_kind(&mut self, kind: &str, at: DateTime<Utc>) {
        match self.segment.clone() {
            Some((k, _)) if k == kind => return,
            Some((_, start)) if start >= at => {
                self.segments.push((start, kind.to_owned(), None));
                self.segment = Some((kind.to_owned(), start));
                return;
            }
            Some((k, start)) => self.segments.push((start, k, Some(at))),
            None => {}
        }
        self.segments.push((at, kind.to_owned(), None));
        self.segment = Some((kind.to_owned(), at));
    }
}

/// A completed ticket to record.
struct Completion {
    ticket: String,
    agent: String,
    shift: String,
    at: DateTime<Utc>,
    outcome: String,
}

/// The batch's view of the agents it touches: `None` for an agent known to have no open shift;
/// an agent missing from the map has not been read yet.
struct State<'a> {
    ns: &'a str,
    open: HashMap<String, Option<OpenShift>>,
    completions: Vec<Completion>,
}

/// Applies `events` in order. Events that do not touch shifts, and replays, change nothing.
pub async fn apply_events(
    db: &mut PgConnection,
    ns: &str,
    events: &[Event],
) -> Result<(), sqlx::Error> {
    let mut agents: Vec<String> = events
        .iter()
        .filter(|e| touches_shift(e))
        .map(|e| e.get("agent").to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    agents.sort();
    agents.dedup();
    if agents.is_empty() {
        return Ok(());
    }
    let mut state = State {
        ns,
        open: load(db, ns, &agents).await?,
        completions: Vec::new(),
    };
    for e in events {
        let agent = e.get("agent");
        match e.get("type") {
            "shift_started" | "shift_ended" => {
                state.flush(db, Some(agent)).await?;
                apply_boundary(db, ns, e).await?;
                state.open.remove(agent);
            }
            "agent_status" => {
                let status = e.get("status");
                if status != "offline" {
                    state
                        .update_open(db, e, |o| o.status = status.to_owned())
                        .await?;
                }
            }
            "ticket_assigned" => {
                state.update_open(db, e, |o| o.active += 1).await?;
            }
            "ticket_requeued" => {
                state.update_open(db, e, |o| o.active -= 1).await?;
            }
            "ticket_cancelled" if e.get("was") == "assigned" && !agent.is_empty() => {
                state.update_open(db, e, |o| o.active -= 1).await?;
            }
            "ticket_completed" => {
                if let Some(shift) = state.update_open(db, e, |o| o.active -= 1).await? {
                    state.completions.push(Completion {
                        ticket: e.get("ticket").to_owned(),
                        agent: agent.to_owned(),
                        shift,
                        at: e.time("ts"),
                        outcome: e.get("outcome").to_owned(),
                    });
                }
            }
            "agent_connected" | "agent_disconnected" => {
                let seen = if e.get("type") == "agent_disconnected" {
                    e.time("at")
                } else {
                    e.time("ts")
                };
                if let Some(open) = state.open_of(db, agent).await? {
                    if seen > open.last_seen {
                        open.last_seen = seen;
                        open.dirty = true;
                    }
                }
            }
            _ => {}
        }
    }
    state.flush(db, None).await
}

/// Whether an event may change a shift.
fn touches_shift(e: &Event) -> bool {
    matches!(
        e.get("type"),
        "shift_started"
            | "shift_ended"
            | "agent_status"
            | "ticket_assigned"
            | "ticket_requeued"
            | "ticket_cancelled"
            | "ticket_completed"
            | "agent_connected"
            | "agent_disconnected"
    )
}

type ShiftRow = (String, String, String, i32, DateTime<Utc>, i64, i64);

/// The open shifts of `agents` (locked for this transaction) and their open segments.
async fn load(
    db: &mut PgConnection,
    ns: &str,
    agents: &[String],
) -> Result<HashMap<String, Option<OpenShift>>, sqlx::Error> {
    let rows: Vec<ShiftRow> = sqlx::query_as(
        "SELECT agent_id, shift_id, status, active_tickets, last_seen_at, last_event_ms,
                last_event_seq
         FROM shifts WHERE namespace = $1 AND agent_id = ANY($2) AND ended_at IS NULL
         FOR UPDATE",
    )
    .bind(ns)
    .bind(agents)
    .fetch_all(&mut *db)
    .await?;
    let shifts: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let segments: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT shift_id, kind, started_at FROM shift_segments
         WHERE namespace = $1 AND shift_id = ANY($2) AND ended_at IS NULL",
    )
    .bind(ns)
    .bind(&shifts)
    .fetch_all(&mut *db)
    .await?;
    let mut open_segment: HashMap<String, (String, DateTime<Utc>)> = segments
        .into_iter()
        .map(|(shift, kind, start)| (shift, (kind, start)))
        .collect();
    let mut out: HashMap<String, Option<OpenShift>> =
        agents.iter().map(|a| (a.clone(), None)).collect();
    for (agent, shift_id, status, active, last_seen, ms, seq) in rows {
        let segment = open_segment.remove(&shift_id);
        out.insert(
            agent,
            Some(OpenShift {
                shift_id,
                status,
                active,
                last_seen,
                last: (ms, seq),
                segment,
                dirty: false,
                segments: Vec::new(),
            }),
        );
    }
    Ok(out)
}

impl State<'_> {
    /// The agent's open shift, read if the batch has not seen the agent yet.
    async fn open_of(
        &mut self,
        db: &mut PgConnection,
        agent: &str,
    ) -> Result<Option<&mut OpenShift>, sqlx::Error> {
        if !self.open.contains_key(agent) {
            let loaded = load(db, self.ns, &[agent.to_owned()]).await?;
            self.open.extend(loaded);
        }
        Ok(self.open.get_mut(agent).and_then(Option::as_mut))
    }

    /// Records the agent's new status or ticket count on its open shift, and the segment it
    /// implies. An event the shift has already seen (a replay) changes nothing and gives `None`.
    async fn update_open(
        &mut self,
        db: &mut PgConnection,
        e: &Event,
        change: impl FnOnce(&mut OpenShift),
    ) -> Result<Option<String>, sqlx::Error> {
        let Some(open) = self.open_of(db, e.get("agent")).await? else {
            return Ok(None);
        };
        if e.id() <= open.last {
            return Ok(None);
        }
        let at = e.time("ts");
        change(open);
        open.active = open.active.max(0);
        open.last = e.id();
        open.last_seen = open.last_seen.max(at);
        open.dirty = true;
        let kind = kind_of(&open.status, open.active);
        open.set_kind(kind, at);
        Ok(Some(open.shift_id.clone()))
    }

    /// Writes what the batch changed: of `agent` only, or of everyone (and the completions).
    async fn flush(
        &mut self,
        db: &mut PgConnection,
        agent: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let mut shifts: Vec<&mut OpenShift> = match agent {
            Some(a) => self
                .open
                .get_mut(a)
                .and_then(Option::as_mut)
                .into_iter()
                .collect(),
            None => self.open.values_mut().flatten().collect(),
        };
        write_shifts(db, self.ns, &mut shifts).await?;
        if agent.is_none() {
            write_completions(db, self.ns, &self.completions).await?;
            self.completions.clear();
        }
        Ok(())
    }
}

/// Writes the changed shift rows and their segments, in one statement each.
async fn write_shifts(
    db: &mut PgConnection,
    ns: &str,
    shifts: &mut [&mut OpenShift],
) -> Result<(), sqlx::Error> {
    let (mut ids, mut statuses, mut actives, mut seen, mut ms, mut seq) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    // By (shift, start): the last write of a segment wins.
    let mut segments: HashMap<(String, DateTime<Utc>), SegmentRow> = HashMap::new();
    for s in shifts.iter_mut().filter(|s| s.dirty) {
        ids.push(s.shift_id.clone());
        statuses.push(s.status.clone());
        actives.push(s.active);
        seen.push(s.last_seen);
        ms.push(s.last.0);
        seq.push(s.last.1);
        for row in s.segments.drain(..) {
            segments.insert((s.shift_id.clone(), row.0), row);
        }
        s.dirty = false;
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE shifts s SET status = u.status, active_tickets = u.active,
                last_seen_at = GREATEST(s.last_seen_at, u.seen),
                last_event_ms = u.ms, last_event_seq = u.seq
         FROM UNNEST($2::text[], $3::text[], $4::int4[], $5::timestamptz[], $6::int8[],
                     $7::int8[]) AS u(shift_id, status, active, seen, ms, seq)
         WHERE s.namespace = $1 AND s.shift_id = u.shift_id",
    )
    .bind(ns)
    .bind(&ids)
    .bind(&statuses)
    .bind(&actives)
    .bind(&seen)
    .bind(&ms)
    .bind(&seq)
    .execute(&mut *db)
    .await?;
    if segments.is_empty() {
        return Ok(());
    }
    let (mut shift, mut start, mut kind, mut end) = (vec![], vec![], vec![], vec![]);
    for ((s, _), (st, k, e)) in segments {
        shift.push(s);
        start.push(st);
        kind.push(k);
        end.push(e);
    }
    sqlx::query(
        "INSERT INTO shift_segments (namespace, shift_id, started_at, kind, ended_at)
         SELECT $1, * FROM UNNEST($2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[])
         ON CONFLICT (namespace, shift_id, started_at)
         DO UPDATE SET kind = EXCLUDED.kind, ended_at = EXCLUDED.ended_at",
    )
    .bind(ns)
    .bind(&shift)
    .bind(&start)
    .bind(&kind)
    .bind(&end)
    .execute(&mut *db)
    .await?;
    Ok(())
}

async fn write_completions(
    db: &mut PgConnection,
    ns: &str,
    completions: &[Completion],
) -> Result<(), sqlx::Error> {
    if completions.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&Completion) -> &str| -> Vec<String> {
        completions.iter().map(|c| f(c).to_owned()).collect()
    };
    let at: Vec<DateTime<Utc>> = completions.iter().map(|c| c.at).collect();
    sqlx::query(
        "INSERT INTO ticket_completions
             (namespace, ticket_id, agent_id, shift_id, completed_at, outcome)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::timestamptz[],
                                  $6::text[])
         ON CONFLICT DO NOTHING",
    )
    .bind(ns)
    .bind(column(|c| &c.ticket))
    .bind(column(|c| &c.agent))
    .bind(column(|c| &c.shift))
    .bind(&at)
    .bind(column(|c| &c.outcome))
    .execute(&mut *db)
    .await?;
    Ok(())
}
