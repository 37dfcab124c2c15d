//! Applying one event of the stream to the ledger, inside the caller's transaction.
//!
//! The ledger keeps, per open shift, the agent's status and how many tickets it holds, so each
//! event says which kind of segment the agent is in from then on:
//! engaged while holding a ticket, else available when `available`, else break.
//!
//! Each shift also remembers the last stream event applied to it, so a replayed event (after an
//! offset reset or a restore) is recognised and changes nothing.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::PgConnection;

/// One entry of the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Stream id, milliseconds part.
    pub ms: i64,
    /// Stream id, sequence part.
    pub seq: i64,
    /// The entry's fields (`type`, `ts`, ids…).
    pub fields: std::collections::HashMap<String, String>,
}

impl Event {
    fn get(&self, k: &str) -> &str {
        self.fields.get(k).map(String::as_str).unwrap_or_default()
    }

    /// A millisecond field as a whole-second time (the ledger's resolution), else the event's.
    fn time(&self, k: &str) -> DateTime<Utc> {
        let ms = self.get(k).parse::<i64>().unwrap_or(self.ms);
        second(ms)
    }

    fn id(&self) -> (i64, i64) {
        (self.ms, self.seq)
    }
}

/// Floors milliseconds to the second.
pub fn second(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(ms.div_euclid(1000), 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The segment kind for a status and a count of held tickets.
fn kind_of(status: &str, active: i32) -> &'static str {
    if active > 0 {
        "engaged"
    } else if status == "available" {
        "available"
    } else {
        "break"
    }
}

struct Open {
    shift_id: String,
    status: String,
    active: i32,
    /// The last stream event applied to the shift.
    last: (i64, i64),
}

async fn open_shift(
    db: &mut PgConnection,
    ns: &str,
    agent: &str,
) -> Result<Option<Open>, sqlx::Error> {
    let row: Option<(String, String, i32, i64, i64)> = sqlx::query_as(
        "SELECT shift_id, status, active_tickets, last_event_ms, last_event_seq FROM shifts
         WHERE namespace = $1 AND agent_id = $2 AND ended_at IS NULL FOR UPDATE",
    )
    .bind(ns)
    .bind(agent)
    .fetch_optional(&mut *db)
    .await?;
    Ok(row.map(|(shift_id, status, active, ms, seq)| Open {
        shift_id,
        status,
        active,
        last: (ms, seq),
    }))
}

/// The last event applied to `shift`, if the shift exists.
async fn last_applied(
    db: &mut PgConnection,
    ns: &str,
    shift: &str,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT last_event_ms, last_event_seq FROM shifts WHERE namespace = $1 AND shift_id = $2",
    )
    .bind(ns)
    .bind(shift)
    .fetch_optional(&mut *db)
    .await
}

/// Records that event `e` has been applied to `shift`.
async fn mark_applied(
    db: &mut PgConnection,
    ns: &str,
    shift: &str,
    e: &Event,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE shifts SET last_event_ms = $3, last_event_seq = $4
         WHERE namespace = $1 AND shift_id = $2",
    )
    .bind(ns)
    .bind(shift)
    .bind(e.ms)
    .bind(e.seq)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Moves the shift into segment `kind` at `at` (no-op if already in it).
async fn set_kind(
    db: &mut PgConnection,
    ns: &str,
    shift: &str,
    kind: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let current: Option<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT kind, started_at FROM shift_segments
         WHERE namespace = $1 AND shift_id = $2 AND ended_at IS NULL",
    )
    .bind(ns)
    .bind(shift)
    .fetch_optional(&mut *db)
    .await?;
    match current {
        Some((k, _)) if k == kind => return Ok(()),
        Some((_, start)) if start >= at => {
            // A segment that has not lasted a second yet just changes kind.
            sqlx::query(
                "UPDATE shift_segments SET kind = $4
                 WHERE namespace = $1 AND shift_id = $2 AND started_at = $3",
            )
            .bind(ns)
            .bind(shift)
            .bind(start)
            .bind(kind)
            .execute(&mut *db)
            .await?;
            return Ok(());
        }
        Some((_, start)) => {
            sqlx::query(
                "UPDATE shift_segments SET ended_at = $4
                 WHERE namespace = $1 AND shift_id = $2 AND started_at = $3",
            )
            .bind(ns)
            .bind(shift)
            .bind(start)
            .bind(at)
            .execute(&mut *db)
            .await?;
        }
        None => {}
    }
    sqlx::query(
        "INSERT INTO shift_segments (namespace, shift_id, started_at, kind) VALUES ($1, $2, $3, $4)
         ON CONFLICT (namespace, shift_id, started_at)
         DO UPDATE SET kind = EXCLUDED.kind, ended_at = NULL",
    )
    .bind(ns)
    .bind(shift)
    .bind(at)
    .bind(kind)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Records the agent's new status or ticket count on its open shift, and the segment it implies.
/// An event the shift has already seen (a replay) changes nothing and gives `None`.
async fn update_open(
    db: &mut PgConnection,
    ns: &str,
    e: &Event,
    change: impl FnOnce(&mut Open),
) -> Result<Option<String>, sqlx::Error> {
    let Some(mut open) = open_shift(db, ns, e.get("agent")).await? else {
        return Ok(None);
    };
    if e.id() <= open.last {
        return Ok(None);
    }
    let at = e.time("ts");
    change(&mut open);
    open.active = open.active.max(0);
    sqlx::query(
        "UPDATE shifts SET status = $3, active_tickets = $4,
                last_seen_at = GREATEST(last_seen_at, $5), last_event_ms = $6, last_event_seq = $7
         WHERE namespace = $1 AND shift_id = $2",
    )
    .bind(ns)
    .bind(&open.shift_id)
    .bind(&open.status)
    .bind(open.active)
    .bind(at)
    .bind(e.ms)
    .bind(e.seq)
    .execute(&mut *db)
    .await?;
    set_kind(
        db,
        ns,
        &open.shift_id,
        kind_of(&open.status, open.active),
        at,
    )
    .await?;
    Ok(Some(open.shift_id))
}

/// Ends `shift` at `end`, clipping its segments there. With `only_if_open`, a shift already
/// ended is left as it is. Returns whether the shift was changed.
pub(crate) async fn close_shift(
    db: &mut PgConnection,
    ns: &str,
    shift: &str,
    end: DateTime<Utc>,
    reason: &str,
    only_if_open: bool,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(
        "UPDATE shifts SET ended_at = GREATEST(started_at, $3), end_reason = $4,
                recovered = ($4 = 'recovered'), active_tickets = 0
         WHERE namespace = $1 AND shift_id = $2 AND (NOT $5 OR ended_at IS NULL)",
    )
    .bind(ns)
    .bind(shift)
    .bind(end)
    .bind(reason)
    .bind(only_if_open)
    .execute(&mut *db)
    .await?
    .rows_affected();
    if changed == 0 {
        return Ok(false);
    }
    sqlx::query(
        "DELETE FROM shift_segments s USING shifts h
         WHERE s.namespace = $1 AND s.shift_id = $2 AND h.namespace = $1 AND h.shift_id = $2
           AND s.started_at >= h.ended_at AND s.started_at > h.started_at",
    )
    .bind(ns)
    .bind(shift)
    .execute(&mut *db)
    .await?;
    sqlx::query(
        "UPDATE shift_segments s SET ended_at = h.ended_at FROM shifts h
         WHERE s.namespace = $1 AND s.shift_id = $2 AND h.namespace = $1 AND h.shift_id = $2
           AND (s.ended_at IS NULL OR s.ended_at > h.ended_at)",
    )
    .bind(ns)
    .bind(shift)
    .execute(&mut *db)
    .await?;
    Ok(true)
}

async fn start_shift(db: &mut PgConnection, ns: &str, e: &Event) -> Result<(), sqlx::Error> {
    let (shift, agent) = (e.get("shift"), e.get("agent"));
    if last_applied(db, ns, shift).await?.is_some() {
        return Ok(());
    }
    let mut at = e.time("ts");
    // A shift left open (its end lost with a Redis that kept nothing) ends where the new one
    // starts, marked recovered, rather than overlapping it.
    if let Some(open) = open_shift(db, ns, agent).await? {
        close_shift(db, ns, &open.shift_id, at, "recovered", true).await?;
    }
    // Never before the agent's previous shift ended, even if a clock stepped back.
    let (latest_end,): (Option<DateTime<Utc>>,) =
        sqlx::query_as("SELECT max(ended_at) FROM shifts WHERE namespace = $1 AND agent_id = $2")
            .bind(ns)
            .bind(agent)
            .fetch_one(&mut *db)
            .await?;
    if let Some(end) = latest_end {
        at = at.max(end);
    }
    sqlx::query(
        "INSERT INTO shifts (namespace, shift_id, agent_id, started_at, hourly_rate_cents,
                             currency, timezone, last_seen_at, status, last_event_ms, last_event_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $4, 'available', $8, $9)",
    )
    .bind(ns)
    .bind(shift)
    .bind(agent)
    .bind(at)
    .bind(e.get("rate").parse::<i64>().unwrap_or(0))
    .bind(e.get("currency"))
    .bind(match e.get("tz") {
        "" => "UTC",
        tz => tz,
    })
    .bind(e.ms)
    .bind(e.seq)
    .execute(&mut *db)
    .await?;
    set_kind(db, ns, shift, "available", at).await
}

/// Applies one event. Events that do not touch shifts, and replays, change nothing.
pub async fn apply(db: &mut PgConnection, ns: &str, e: &Event) -> Result<(), sqlx::Error> {
    let agent = e.get("agent");
    match e.get("type") {
        "shift_started" => start_shift(db, ns, e).await?,
        "agent_status" => {
            let status = e.get("status");
            if status != "offline" {
                update_open(db, ns, e, |o| o.status = status.to_owned()).await?;
            }
        }
        "ticket_assigned" => {
            update_open(db, ns, e, |o| o.active += 1).await?;
        }
        "ticket_requeued" => {
            update_open(db, ns, e, |o| o.active -= 1).await?;
        }
        "ticket_cancelled" if e.get("was") == "assigned" && !agent.is_empty() => {
            update_open(db, ns, e, |o| o.active -= 1).await?;
        }
        "ticket_completed" => {
            if let Some(shift) = update_open(db, ns, e, |o| o.active -= 1).await? {
                sqlx::query(
                    "INSERT INTO ticket_completions
                         (namespace, ticket_id, agent_id, shift_id, completed_at, outcome)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(ns)
                .bind(e.get("ticket"))
                .bind(agent)
                .bind(shift)
                .bind(e.time("ts"))
                .bind(e.get("outcome"))
                .execute(&mut *db)
                .await?;
            }
        }
        "shift_ended" => {
            let shift = e.get("shift");
            if last_applied(db, ns, shift)
                .await?
                .is_some_and(|last| e.id() > last)
            {
                close_shift(db, ns, shift, e.time("ended_at"), e.get("reason"), false).await?;
                mark_applied(db, ns, shift, e).await?;
            }
        }
        "agent_connected" | "agent_disconnected" => {
            let seen = if e.get("type") == "agent_disconnected" {
                e.time("at")
            } else {
                e.time("ts")
            };
            sqlx::query(
                "UPDATE shifts SET last_seen_at = GREATEST(last_seen_at, $3)
                 WHERE namespace = $1 AND agent_id = $2 AND ended_at IS NULL",
            )
            .bind(ns)
            .bind(agent)
            .bind(seen)
            .execute(&mut *db)
            .await?;
        }
        _ => {}
    }
    Ok(())
}
