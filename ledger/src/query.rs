//! Reading shifts back for payroll: one row per shift with its segments and completions, so an
//! export of any size streams in constant memory.

use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt, TryStreamExt};
use sqlx::Row;

use crate::arith::{
    shift_row, workdays, Segment, SegmentKind, Shift, ShiftRow, Window, WorkdayRow,
};
use crate::report::ShiftView;
use crate::{Ledger, LedgerError};

/// The columns of a shift with its segments and completions, for [`decode`].
macro_rules! shift_select {
    () => {
        r#"
SELECT s.shift_id, s.agent_id,
       extract(epoch FROM s.started_at)::bigint AS started,
       extract(epoch FROM s.ended_at)::bigint AS ended,
       s.hourly_rate_cents, s.currency, s.timezone,
       COALESCE((SELECT json_agg(json_build_array(g.kind, extract(epoch FROM g.started_at)::bigint,
                                                  extract(epoch FROM g.ended_at)::bigint)
                                 ORDER BY g.started_at)
                 FROM shift_segments g
                 WHERE g.namespace = s.namespace AND g.shift_id = s.shift_id), '[]'::json)::text AS segments,
       COALESCE((SELECT json_agg(extract(epoch FROM c.completed_at)::bigint ORDER BY c.completed_at)
                 FROM ticket_completions c
                 WHERE c.namespace = s.namespace AND c.shift_id = s.shift_id), '[]'::json)::text AS completions
FROM shifts s
"#
    };
}

const SHIFTS: &str = concat!(
    shift_select!(),
    r#"WHERE s.namespace = $1 AND s.started_at < $3 AND (s.ended_at IS NULL OR s.ended_at > $2)
  AND ($4::text IS NULL OR s.agent_id = $4)
ORDER BY s.started_at, s.shift_id
"#
);

const ENDED_SHIFTS: &str = concat!(
    shift_select!(),
    "WHERE s.namespace = $1 AND s.shift_id = ANY($2) AND s.ended_at IS NOT NULL"
);

/// The rows of the ended shifts among `ids`, whole (as `GET /v1/payroll/shifts` shows a shift
/// that lies inside its window), read on `conn` (the writer's transaction).
pub async fn ended_shift_views(
    conn: &mut sqlx::PgConnection,
    namespace: &str,
    ids: &[String],
    breaks_paid: bool,
) -> Result<Vec<ShiftView>, LedgerError> {
    let rows = sqlx::query(ENDED_SHIFTS)
        .bind(namespace)
        .bind(ids)
        .fetch_all(conn)
        .await?;
    let whole = Window {
        from: i64::MIN / 2,
        to: i64::MAX / 2,
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let shift = decode(row)?;
        let end = shift.ended_at.unwrap_or(shift.started_at);
        // A shift that ended within the second it began has no row in a report (its span is
        // empty); its end is still announced, with nothing paid.
        let row = shift_row(&shift, whole, end, breaks_paid).unwrap_or_else(|| ShiftRow {
            shift_id: shift.shift_id.clone(),
            agent_id: shift.agent_id.clone(),
            started_at: shift.started_at,
            ended_at: end,
            open: false,
            online_secs: 0,
            break_secs: 0,
            engaged_secs: 0,
            paid_secs: 0,
            tickets_completed: i64::try_from(shift.completions.len()).unwrap_or(0),
            hourly_rate_cents: shift.hourly_rate_cents,
            pay_cents: 0,
            currency: shift.currency.clone(),
        });
        out.push(ShiftView::from(row));
    }
    Ok(out)
}

fn kind(name: &str) -> SegmentKind {
    match name {
        "engaged" => SegmentKind::Engaged,
        "break" => SegmentKind::Break,
        _ => SegmentKind::Available,
    }
}

fn decode(row: sqlx::postgres::PgRow) -> Result<Shift, LedgerError> {
    let segments: Vec<(String, i64, Option<i64>)> =
        serde_json::from_str(&row.try_get::<String, _>("segments")?).unwrap_or_default();
    let completions: Vec<i64> =
        serde_json::from_str(&row.try_get::<String, _>("completions")?).unwrap_or_default();
    Ok(Shift {
        shift_id: row.try_get("shift_id")?,
        agent_id: row.try_get("agent_id")?,
        started_at: row.try_get("started")?,
        ended_at: row.try_get("ended")?,
        segments: segments
            .into_iter()
            .map(|(k, start, end)| Segment {
                kind: kind(&k),
                start,
                end,
            })
            .collect(),
        completions,
        hourly_rate_cents: row.try_get("hourly_rate_cents")?,
        currency: row.try_get("currency")?,
        timezone: row
            .try_get::<String, _>("timezone")?
            .parse()
            .unwrap_or(chrono_tz::UTC),
    })
}

impl Ledger {
    /// Every shift overlapping `[from, to)`, oldest first, optionally of one agent, streamed.
    pub fn shifts<'a>(
        &'a self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        agent_id: Option<&'a str>,
    ) -> impl Stream<Item = Result<Shift, LedgerError>> + Send + 'a {
        sqlx::query(SHIFTS)
            .bind(&self.namespace)
            .bind(from)
            .bind(to)
            .bind(agent_id)
            .fetch(&self.pool)
            .map_err(LedgerError::from)
            .map(|row| row.and_then(decode))
    }

    /// Whether the ledger has ever recorded a shift of `agent_id`.
    pub async fn knows_agent(&self, agent_id: &str) -> Result<bool, LedgerError> {
        let (known,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM shifts WHERE namespace = $1 AND agent_id = $2)",
        )
        .bind(&self.namespace)
        .bind(agent_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(known)
    }

    /// The shift rows of `[from, to)`, clipped to it; open shifts clipped at `now` (seconds).
    pub async fn shift_views(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        agent_id: Option<&str>,
        now: i64,
        breaks_paid: bool,
    ) -> Result<Vec<ShiftView>, LedgerError> {
        let window = Window {
            from: from.timestamp(),
            to: to.timestamp(),
        };
        self.shifts(from, to, agent_id)
            .try_filter_map(|shift| async move {
                Ok(shift_row(&shift, window, now, breaks_paid).map(ShiftView::from))
            })
            .try_collect()
            .await
    }

    /// One row per agent per local workday `from <= d < to`, in each agent's own zone.
    pub async fn workday_rows(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
        agent_id: Option<&str>,
        now: i64,
        breaks_paid: bool,
    ) -> Result<Vec<WorkdayRow>, LedgerError> {
        // Local days span UTC −12 h to +14 h: read a little more and let the split clip.
        let margin = chrono::Duration::hours(15);
        let start = from.and_time(chrono::NaiveTime::MIN).and_utc() - margin;
        let end = to.and_time(chrono::NaiveTime::MIN).and_utc() + margin;
        let shifts: Vec<Shift> = self.shifts(start, end, agent_id).try_collect().await?;
        Ok(workdays(&shifts, from, to, now, breaks_paid))
    }

    /// How many shifts overlap `[from, to)` (for progress reporting).
    pub async fn count_shifts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        agent_id: Option<&str>,
    ) -> Result<u64, LedgerError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM shifts s
             WHERE s.namespace = $1 AND s.started_at < $3 AND (s.ended_at IS NULL OR s.ended_at > $2)
               AND ($4::text IS NULL OR s.agent_id = $4)",
        )
        .bind(&self.namespace)
        .bind(from)
        .bind(to)
        .bind(agent_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
