//! The events of the stream as the ledger reads them, and the ones that begin or end a shift.
//!
//! The ledger keeps, per open shift, the agent's status and how many tickets it holds, so each
//! event says which kind of segment the agent is in from then on:
//! engaged while holding a ticket, else available when `available`, else break. Those frequent
//! events are applied a batch at a time ([`crate::batch`]); a shift's start and end, here, one
//! at a time.
//!
//! Each shift also remembers the last stream event applied to it, so a replayed event (after an
//! offset reset or a restore) is recognised and changes nothing.

use chrono::{DateTime, TimeZone, Utc};
use shared::events::{Event, StreamEvent, StreamId};
use sqlx::PgConnection;

/// Floors milliseconds to the second.
pub fn second(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(ms.div_euclid(1000), 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The segment kind for a status and a count of held tickets.
pub(crate) fn kind_of(status: &str, active: i32) -> &'static str {
    if active > 0 {
        "engaged"
    } else if status == "available" {
        "available"
    } else {
        "break"
    }
}

/// The agent's open shift (locked for this transaction), if any.
async fn open_shift(
    db: &mut PgConnection,
    ns: &str,
    agent: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT shift_id FROM shifts
         WHERE namespace = $1 AND agent_id = $2 AND ended_at IS NULL FOR UPDATE",
    )
    .bind(ns)
    .bind(agent)
    .fetch_optional(&mut *db)
    .await
}

/// The last event applied to `shift`, if the shift exists.
async fn last_applied(
    db: &mut PgConnection,
    ns: &str,
    shift: &str,
) -> Result<Option<StreamId>, sqlx::Error> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT last_event_ms, last_event_seq FROM shifts WHERE namespace = $1 AND shift_id = $2",
    )
    .bind(ns)
    .bind(shift)
    .fetch_optional(&mut *db)
    .await?;
    Ok(row.map(|(ms, seq)| StreamId { ms, seq }))
}

/// Records that event `e` has been applied to `shift`.
async fn mark_applied(
    db: &mut PgConnection,
    ns: &str,
    shift: &str,
    e: &StreamEvent,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE shifts SET last_event_ms = $3, last_event_seq = $4
         WHERE namespace = $1 AND shift_id = $2",
    )
    .bind(ns)
    .bind(shift)
    .bind(e.id.ms)
    .bind(e.id.seq)
    .execute(&mut *db)
    .await?;
    Ok(())
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

/// What a `shift_started` event says.
pub(crate) struct Start<'a> {
    pub agent: &'a str,
    pub shift: &'a str,
    pub rate: i64,
    pub currency: &'a str,
    pub tz: &'a str,
}

impl<'a> Start<'a> {
    /// The start `e` makes, if it is a `shift_started`.
    pub(crate) fn of(e: &'a StreamEvent) -> Option<Self> {
        match &e.event {
            Event::ShiftStarted {
                agent,
                shift,
                rate,
                currency,
                tz,
            } => Some(Self {
                agent,
                shift,
                rate: *rate,
                currency,
                tz: if tz.is_empty() { "UTC" } else { tz },
            }),
            _ => None,
        }
    }
}

async fn start_shift(
    db: &mut PgConnection,
    ns: &str,
    e: &StreamEvent,
    start: &Start<'_>,
) -> Result<(), sqlx::Error> {
    let (shift, agent) = (start.shift, start.agent);
    if last_applied(db, ns, shift).await?.is_some() {
        return Ok(());
    }
    let mut at = second(e.ts);
    // A shift left open (its end lost with a Redis that kept nothing) ends where the new one
    // starts, marked recovered, rather than overlapping it.
    if let Some(open) = open_shift(db, ns, agent).await? {
        close_shift(db, ns, &open, at, "recovered", true).await?;
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
    .bind(start.rate)
    .bind(start.currency)
    .bind(start.tz)
    .bind(e.id.ms)
    .bind(e.id.seq)
    .execute(&mut *db)
    .await?;
    // A new shift has no segment yet: it opens available.
    sqlx::query(
        "INSERT INTO shift_segments (namespace, shift_id, started_at, kind)
         VALUES ($1, $2, $3, 'available')
         ON CONFLICT (namespace, shift_id, started_at)
         DO UPDATE SET kind = EXCLUDED.kind, ended_at = NULL",
    )
    .bind(ns)
    .bind(shift)
    .bind(at)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Applies an event that begins or ends a shift (`shift_started`, `shift_ended`); a replay
/// changes nothing.
pub(crate) async fn apply_boundary(
    db: &mut PgConnection,
    ns: &str,
    e: &StreamEvent,
) -> Result<(), sqlx::Error> {
    if let Some(start) = Start::of(e) {
        return start_shift(db, ns, e, &start).await;
    }
    if let Event::ShiftEnded {
        shift,
        ended_at,
        reason,
        ..
    } = &e.event
    {
        if last_applied(db, ns, shift)
            .await?
            .is_some_and(|last| e.id > last)
        {
            close_shift(db, ns, shift, second(*ended_at), reason.as_str(), false).await?;
            mark_applied(db, ns, shift, e).await?;
        }
    }
    Ok(())
}
