//! Applying a batch of events to the ledger in a constant number of statements.
//!
//! Most events change an open shift's status or ticket count, or its agent's last sign of life:
//! one or two per ticket handled, so thousands a second under load. Applied one at a time they
//! cost several statements each (read the shift, update it, read its open segment, close it,
//! open the next); here the open shifts of every agent in the batch and their open segments are
//! read in two statements, the events are applied to that state in memory, in stream order, and
//! the result is written back in three (shifts, segments, completions), whatever the batch's size.
//!
//! A shift's start is batched too (a fleet logging in starts thousands at once): the shift is
//! made in memory and inserted with the others. The rarer boundaries keep their own statements
//! ([`crate::apply::apply_boundary`]): a shift's end, and a start that must first close a shift
//! left open or follows another boundary of its agent in the batch. Before one of those is
//! applied, what the batch holds for its agent is written, and after it the agent is read again.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use shared::domain::{AgentStatus, TicketStatus};
use shared::events::{Event, StreamEvent, StreamId};
use sqlx::PgConnection;

use crate::apply::{apply_boundary, kind_of, second, Start};

/// A segment row to write: its start, kind and end (`None` while open).
type SegmentRow = (DateTime<Utc>, String, Option<DateTime<Utc>>);

/// A shift this batch starts, inserted when the batch is written.
#[derive(Debug, Clone)]
struct NewShift {
    agent: String,
    started_at: DateTime<Utc>,
    rate: i64,
    currency: String,
    timezone: String,
}

/// An open shift as the batch sees it.
#[derive(Debug, Clone)]
struct OpenShift {
    shift_id: String,
    /// Started by this batch, not yet in the database.
    new: Option<NewShift>,
    status: String,
    active: i32,
    last_seen: DateTime<Utc>,
    /// The last stream event applied to the shift.
    last: StreamId,
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
    /// Shift ids the database or this batch already has: a start of one is a replay.
    known_shifts: std::collections::HashSet<String>,
    /// Per agent, the end of its latest shift in the database when the batch began.
    latest_end: HashMap<String, DateTime<Utc>>,
    /// Agents a boundary of this batch went to the database for: their later starts do too.
    by_statement: std::collections::HashSet<String>,
}

/// Applies `events` in order. Events that do not touch shifts, and replays, change nothing.
pub async fn apply_events(
    db: &mut PgConnection,
    ns: &str,
    events: &[StreamEvent],
) -> Result<(), sqlx::Error> {
    let mut agents: Vec<String> = events
        .iter()
        .filter(|e| touches_shift(&e.event))
        .filter_map(|e| e.event.agent())
        .map(str::to_owned)
        .collect();
    agents.sort();
    agents.dedup();
    if agents.is_empty() {
        return Ok(());
    }
    let starts: Vec<Start<'_>> = events.iter().filter_map(Start::of).collect();
    let (known_shifts, latest_end) = shifts_before(db, ns, &starts).await?;
    let mut state = State {
        ns,
        open: load(db, ns, &agents).await?,
        completions: Vec::new(),
        known_shifts,
        latest_end,
        by_statement: std::collections::HashSet::new(),
    };
    for e in events {
        let agent = e.event.agent().unwrap_or_default();
        match &e.event {
            Event::ShiftStarted { .. } if state.start_in_memory(db, e).await? => {}
            Event::ShiftStarted { .. } | Event::ShiftEnded { .. } => {
                state.flush(db, Some(agent)).await?;
                apply_boundary(db, ns, e).await?;
                state.open.remove(agent);
                state.by_statement.insert(agent.to_owned());
            }
            Event::AgentStatus { status, .. } if *status != AgentStatus::Offline => {
                let status = status.as_str();
                state
                    .update_open(db, e, |o| o.status = status.to_owned())
                    .await?;
            }
            Event::TicketAssigned { .. } => {
                state.update_open(db, e, |o| o.active += 1).await?;
            }
            Event::TicketRequeued { .. } => {
                state.update_open(db, e, |o| o.active -= 1).await?;
            }
            Event::TicketCancelled {
                was: TicketStatus::Assigned,
                ..
            } if !agent.is_empty() => {
                state.update_open(db, e, |o| o.active -= 1).await?;
            }
            Event::TicketCompleted {
                ticket, outcome, ..
            } => {
                if let Some(shift) = state.update_open(db, e, |o| o.active -= 1).await? {
                    state.completions.push(Completion {
                        ticket: ticket.clone(),
                        agent: agent.to_owned(),
                        shift,
                        at: second(e.ts),
                        outcome: outcome.as_str().to_owned(),
                    });
                }
            }
            Event::AgentConnected { .. } | Event::AgentDisconnected { .. } => {
                let seen = match &e.event {
                    Event::AgentDisconnected { at, .. } => second(*at),
                    _ => second(e.ts),
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
        e,
        Event::ShiftStarted { .. }
            | Event::ShiftEnded { .. }
            | Event::AgentStatus { .. }
            | Event::TicketAssigned { .. }
            | Event::TicketRequeued { .. }
            | Event::TicketCancelled { .. }
            | Event::TicketCompleted { .. }
            | Event::AgentConnected { .. }
            | Event::AgentDisconnected { .. }
    )
}

type ShiftRow = (String, String, String, i32, DateTime<Utc>, i64, i64);

/// Of the shifts `starts` begin: those the database has already (a replay), and per agent the
/// end of its latest shift.
async fn shifts_before(
    db: &mut PgConnection,
    ns: &str,
    starts: &[Start<'_>],
) -> Result<
    (
        std::collections::HashSet<String>,
        HashMap<String, DateTime<Utc>>,
    ),
    sqlx::Error,
> {
    if starts.is_empty() {
        return Ok(Default::default());
    }
    let shifts: Vec<&str> = starts.iter().map(|s| s.shift).collect();
    let agents: Vec<&str> = starts.iter().map(|s| s.agent).collect();
    let known: Vec<String> = sqlx::query_scalar(
        "SELECT shift_id FROM shifts WHERE namespace = $1 AND shift_id = ANY($2)",
    )
    .bind(ns)
    .bind(&shifts)
    .fetch_all(&mut *db)
    .await?;
    let ends: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT agent_id, max(ended_at) FROM shifts
         WHERE namespace = $1 AND agent_id = ANY($2) AND ended_at IS NOT NULL
         GROUP BY agent_id",
    )
    .bind(ns)
    .bind(&agents)
    .fetch_all(&mut *db)
    .await?;
    Ok((known.into_iter().collect(), ends.into_iter().collect()))
}

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
                new: None,
                status,
                active,
                last_seen,
                last: StreamId { ms, seq },
                segment,
                dirty: false,
                segments: Vec::new(),
            }),
        );
    }
    Ok(out)
}

impl State<'_> {
    /// Starts the shift of `shift_started` event `e` in memory, if that is all it takes: the
    /// shift is not known yet (else the event is a replay, and nothing is done either), and its
    /// agent has no open shift to close first and no boundary earlier in the batch (then the
    /// caller applies it with its own statements). Returns whether the event is dealt with.
    async fn start_in_memory(
        &mut self,
        db: &mut PgConnection,
        e: &StreamEvent,
    ) -> Result<bool, sqlx::Error> {
        let Some(start) = Start::of(e) else {
            return Ok(false);
        };
        let (shift, agent) = (start.shift, start.agent);
        if self.known_shifts.contains(shift) {
            return Ok(true);
        }
        if self.by_statement.contains(agent) || self.open_of(db, agent).await?.is_some() {
            return Ok(false);
        }
        // Never before the agent's previous shift ended, even if a clock stepped back.
        let mut at = second(e.ts);
        if let Some(end) = self.latest_end.get(agent) {
            at = at.max(*end);
        }
        self.known_shifts.insert(shift.to_owned());
        self.open.insert(
            agent.to_owned(),
            Some(OpenShift {
                shift_id: shift.to_owned(),
                new: Some(NewShift {
                    agent: agent.to_owned(),
                    started_at: at,
                    rate: start.rate,
                    currency: start.currency.to_owned(),
                    timezone: start.tz.to_owned(),
                }),
                status: "available".to_owned(),
                active: 0,
                last_seen: at,
                last: e.id,
                segment: Some(("available".to_owned(), at)),
                dirty: true,
                segments: vec![(at, "available".to_owned(), None)],
            }),
        );
        Ok(true)
    }

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
        e: &StreamEvent,
        change: impl FnOnce(&mut OpenShift),
    ) -> Result<Option<String>, sqlx::Error> {
        let Some(open) = self
            .open_of(db, e.event.agent().unwrap_or_default())
            .await?
        else {
            return Ok(None);
        };
        if e.id <= open.last {
            return Ok(None);
        }
        let at = second(e.ts);
        change(open);
        open.active = open.active.max(0);
        open.last = e.id;
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

/// Writes the changed shift rows (the new ones inserted first) and their segments, in one
/// statement each.
async fn write_shifts(
    db: &mut PgConnection,
    ns: &str,
    shifts: &mut [&mut OpenShift],
) -> Result<(), sqlx::Error> {
    insert_new(db, ns, shifts).await?;
    let (mut ids, mut statuses, mut actives, mut seen, mut ms, mut seq) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    // By (shift, start): the last write of a segment wins.
    let mut segments: HashMap<(String, DateTime<Utc>), SegmentRow> = HashMap::new();
    for s in shifts.iter_mut().filter(|s| s.dirty) {
        ids.push(s.shift_id.clone());
        statuses.push(s.status.clone());
        actives.push(s.active);
        seen.push(s.last_seen);
        ms.push(s.last.ms);
        seq.push(s.last.seq);
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

/// Inserts the shifts this batch started, as they stand now.
async fn insert_new(
    db: &mut PgConnection,
    ns: &str,
    shifts: &mut [&mut OpenShift],
) -> Result<(), sqlx::Error> {
    let new: Vec<(&OpenShift, NewShift)> = shifts
        .iter_mut()
        .filter_map(|s| {
            let n = s.new.take()?;
            Some((&**s, n))
        })
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let text = |f: for<'a> fn(&'a OpenShift, &'a NewShift) -> &'a str| -> Vec<String> {
        new.iter().map(|(s, n)| f(s, n).to_owned()).collect()
    };
    let started: Vec<DateTime<Utc>> = new.iter().map(|(_, n)| n.started_at).collect();
    let rate: Vec<i64> = new.iter().map(|(_, n)| n.rate).collect();
    let seen: Vec<DateTime<Utc>> = new.iter().map(|(s, _)| s.last_seen).collect();
    let active: Vec<i32> = new.iter().map(|(s, _)| s.active).collect();
    let ms: Vec<i64> = new.iter().map(|(s, _)| s.last.ms).collect();
    let seq: Vec<i64> = new.iter().map(|(s, _)| s.last.seq).collect();
    sqlx::query(
        "INSERT INTO shifts (namespace, shift_id, agent_id, started_at, hourly_rate_cents,
                             currency, timezone, last_seen_at, status, active_tickets,
                             last_event_ms, last_event_seq)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::timestamptz[], $5::int8[],
                                  $6::text[], $7::text[], $8::timestamptz[], $9::text[],
                                  $10::int4[], $11::int8[], $12::int8[])",
    )
    .bind(ns)
    .bind(text(|s, _| &s.shift_id))
    .bind(text(|_, n| &n.agent))
    .bind(&started)
    .bind(&rate)
    .bind(text(|_, n| &n.currency))
    .bind(text(|_, n| &n.timezone))
    .bind(&seen)
    .bind(text(|s, _| &s.status))
    .bind(&active)
    .bind(&ms)
    .bind(&seq)
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
