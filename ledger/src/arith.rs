//! Pure shift arithmetic (API.md §7). No I/O: the ledger's records in, payroll rows out.
//!
//! All instants are whole seconds since the Unix epoch (the ledger floors event times to the
//! second before storing them), so every sum is exact in integers; money is integer cents.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone};
use serde::Serialize;

#[cfg(test)]
mod tests;

/// Seconds in an hour: rates are per hour, time is in seconds.
const SECS_PER_HOUR: i128 = 3600;

/// What an agent was doing during a segment of its shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    /// On shift, `available`, holding no ticket.
    Available,
    /// Holding at least one assigned ticket (whatever the status).
    Engaged,
    /// In `break` or `away`, holding no ticket.
    Break,
}

/// A stretch of a shift in one kind. `end` is `None` while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// The kind.
    pub kind: SegmentKind,
    /// Start, seconds since the epoch.
    pub start: i64,
    /// End (exclusive), if ended.
    pub end: Option<i64>,
}

/// A shift as the ledger records it: segments sorted by start, not overlapping, inside the shift.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    /// Id.
    pub shift_id: String,
    /// Whose.
    pub agent_id: String,
    /// Start, seconds since the epoch.
    pub started_at: i64,
    /// End (exclusive), `None` while open.
    pub ended_at: Option<i64>,
    /// What the agent did, in order.
    pub segments: Vec<Segment>,
    /// When tickets were completed during the shift (seconds since the epoch).
    pub completions: Vec<i64>,
    /// The rate the shift started with.
    pub hourly_rate_cents: i64,
    /// ISO 4217.
    pub currency: String,
    /// The agent's zone, for workdays.
    pub timezone: chrono_tz::Tz,
}

/// A half-open interval `[from, to)` of seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start (inclusive).
    pub from: i64,
    /// End (exclusive).
    pub to: i64,
}

/// One shift clipped to a window: a row of `GET /v1/payroll/shifts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShiftRow {
    /// Id.
    pub shift_id: String,
    /// Whose.
    pub agent_id: String,
    /// Clipped start.
    pub started_at: i64,
    /// Clipped end: the shift's end, the window's end or now, whichever is earliest.
    pub ended_at: i64,
    /// Whether the shift is still running.
    pub open: bool,
    /// `ended_at - started_at`.
    pub online_secs: i64,
    /// Time in break or away holding no ticket.
    pub break_secs: i64,
    /// Time holding at least one ticket.
    pub engaged_secs: i64,
    /// `online - break`, or `online` when breaks are paid.
    pub paid_secs: i64,
    /// Completions within the clipped span.
    pub tickets_completed: i64,
    /// The rate the shift started with.
    pub hourly_rate_cents: i64,
    /// `paid_secs × rate / 3600`, rounded half up.
    pub pay_cents: i64,
    /// ISO 4217.
    pub currency: String,
}

/// One agent's local workday: a row of `GET /v1/payroll/workdays`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WorkdayRow {
    /// Whose.
    pub agent_id: String,
    /// The local date.
    #[schema(value_type = String, format = Date)]
    pub workday: NaiveDate,
    /// IANA name of the agent's zone.
    pub timezone: String,
    /// Time on shift that local day.
    pub online_secs: i64,
    /// Break or away holding no ticket.
    pub break_secs: i64,
    /// Holding at least one ticket.
    pub engaged_secs: i64,
    /// Paid time.
    pub paid_secs: i64,
    /// Completions that local day.
    pub tickets_completed: i64,
    /// Σ paid × rate / 3600 over the day's shifts, rounded half up once.
    pub pay_cents: i64,
    /// ISO 4217.
    pub currency: String,
}

/// One shift's share of one local workday, before rows of several shifts are merged.
///
/// `row.pay_cents` is this part's own pay, rounded half up; [`merge_workdays`] rounds again from
/// the exact [`pay_numerator`](Self::pay_numerator) so that a merged row is rounded only once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkdayPart {
    /// The part as a row of its own.
    pub row: WorkdayRow,
    /// `paid_secs × hourly_rate_cents` of the part: its pay in cents times 3600, exactly.
    pub pay_numerator: i128,
}

/// `numerator / denominator` rounded half up (towards +∞ on a tie), exactly, in integers.
///
/// Meant for non-negative numerators (pay); a negative one is still rounded half up
/// (−0.5 → 0, −1.5 → −1). A negative denominator is handled by flipping both signs; a zero
/// denominator yields 0 rather than panicking. A result beyond `i64` saturates.
pub fn round_half_up_div(numerator: i128, denominator: i128) -> i64 {
    if denominator == 0 {
        return 0;
    }
    let (n, d) = if denominator < 0 {
        (numerator.saturating_neg(), denominator.saturating_neg())
    } else {
        (numerator, denominator)
    };
    // floor(n/d + 1/2) = floor((2n + d) / 2d). Halving first keeps it overflow-free:
    // n = q·d + r with 0 ≤ r < d, then floor((2r + d) / 2d) is 0 or 1.
    let q = n.div_euclid(d);
    let r = n.rem_euclid(d);
    let rounded = if r >= d - r { q + 1 } else { q };
    i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX })
}

/// Pay for `paid_secs` at `hourly_rate_cents`: `paid_secs × rate / 3600` rounded half up, exact.
///
/// 1 s at 1800 cents/h is half a cent and pays 1; 1 s at 1799 pays 0; 3600 s at 1650 pays 1650.
pub fn pay_cents(paid_secs: i64, hourly_rate_cents: i64) -> i64 {
    round_half_up_div(
        i128::from(paid_secs) * i128::from(hourly_rate_cents),
        SECS_PER_HOUR,
    )
}

/// Where the shift ends for the arithmetic: `ended_at`, or `now` while it is open.
fn effective_end(shift: &Shift, now: i64) -> i64 {
    shift.ended_at.unwrap_or(now)
}

/// Seconds of each kind within one clipped span of a shift.
#[derive(Debug, Default)]
struct Tally {
    online: i64,
    brk: i64,
    engaged: i64,
    completed: i64,
}

/// Tallies `shift` over `[start, end)`, a non-empty part of `[started_at, effective end)`.
///
/// Segments are clipped to the span; a running segment (`end: None`) runs to `eff_end`. A time
/// covered by no segment is available. Should segments ever overlap, the earlier one wins, so
/// `break + engaged ≤ online` holds whatever the input.
fn tally(shift: &Shift, start: i64, end: i64, eff_end: i64) -> Tally {
    let mut t = Tally {
        online: end - start,
        ..Tally::default()
    };
    let mut cursor = start;
    for seg in &shift.segments {
        let s = seg.start.max(cursor);
        let e = seg.end.unwrap_or(eff_end).min(end);
        if e > s {
            match seg.kind {
                SegmentKind::Available => {}
                SegmentKind::Engaged => t.engaged += e - s,
                SegmentKind::Break => t.brk += e - s,
            }
            cursor = e;
        }
    }
    // A ticket completed at the very second the shift ended still belongs to it: it counts in
    // the one span that ends at the shift's end, as if completed just before.
    let ends_with_shift = shift.ended_at == Some(end);
    t.completed = shift
        .completions
        .iter()
        .filter(|&&c| c >= start && (c < end || (c == end && ends_with_shift)))
        .count()
        .try_into()
        .unwrap_or(i64::MAX);
    t
}

/// `shift` clipped to `window`: a row of `GET /v1/payroll/shifts` (API.md §7).
///
/// The shift runs from `started_at` to `ended_at`, or to `now` while open (then `open` is true).
/// The row covers `[max(started_at, from), min(end, to))` and is `None` when that is empty.
/// `paid_secs` is online minus break, or online when `breaks_paid`; `pay_cents` is
/// [`pay_cents`] of it at the shift's rate. Completions count when inside the clipped span, or
/// exactly at its end when that end is the shift's own `ended_at`.
pub fn shift_row(shift: &Shift, window: Window, now: i64, breaks_paid: bool) -> Option<ShiftRow> {
    let eff_end = effective_end(shift, now);
    let start = shift.started_at.max(window.from);
    let end = eff_end.min(window.to);
    if end <= start {
        return None;
    }
    let t = tally(shift, start, end, eff_end);
    let paid = if breaks_paid {
        t.online
    } else {
        t.online - t.brk
    };
    Some(ShiftRow {
        shift_id: shift.shift_id.clone(),
        agent_id: shift.agent_id.clone(),
        started_at: start,
        ended_at: end,
        open: shift.ended_at.is_none(),
        online_secs: t.online,
        break_secs: t.brk,
        engaged_secs: t.engaged,
        paid_secs: paid,
        tickets_completed: t.completed,
        hourly_rate_cents: shift.hourly_rate_cents,
        pay_cents: pay_cents(paid, shift.hourly_rate_cents),
        currency: shift.currency.clone(),
    })
}

/// The local date in `tz` at instant `t` (seconds since the epoch); `None` out of chrono's range.
pub fn local_date(tz: chrono_tz::Tz, t: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp(t, 0).map(|utc| utc.with_timezone(&tz).date_naive())
}

/// The first instant of local date `date` in `tz`, in seconds since the epoch.
///
/// Normally local 00:00 (the earlier one if 00:00 happens twice). When a clock change skips
/// midnight (America/Santiago, America/Havana, Asia/Beirut…) it is the first instant whose local
/// date is `date` or later: the end of the gap. A date skipped entirely (Pacific/Apia on
/// 2011-12-30) starts where the next one does, so it has no time. `None` out of chrono's range.
pub fn local_midnight(tz: chrono_tz::Tz, date: NaiveDate) -> Option<i64> {
    let naive = date.and_time(NaiveTime::MIN);
    if let Some(t) = tz.from_local_datetime(&naive).earliest() {
        return Some(t.timestamp());
    }
    // Midnight does not exist: bisect for the smallest instant whose local date is ≥ `date`.
    // UTC offsets stay within ±16 h, so local time 30 h either side of the naive guess is on
    // the right side of midnight: date(lo) < date ≤ date(hi).
    let guess = naive.and_utc().timestamp();
    let (mut lo, mut hi) = (guess - 30 * 3600, guess + 30 * 3600);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local_date(tz, mid)? >= date {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// `shift` split at local midnights in its zone: one part per local date `d`, `from ≤ d < to`,
/// on which the shift has online time, in date order.
///
/// Each part is [`shift_row`] over `[local_midnight(d), local_midnight(d + 1))`, with the exact
/// pay numerator kept for [`merge_workdays`].
pub fn workday_parts(
    shift: &Shift,
    from: NaiveDate,
    to: NaiveDate,
    now: i64,
    breaks_paid: bool,
) -> Vec<WorkdayPart> {
    let mut parts = Vec::new();
    let tz = shift.timezone;
    let eff_end = effective_end(shift, now);
    if eff_end <= shift.started_at {
        return parts;
    }
    let Some(first) = local_date(tz, shift.started_at) else {
        return parts;
    };
    // One day early: after a clock change back across midnight, an instant can lie in the
    // next date's span while its local date still reads the day before.
    let mut day = from.max(first.pred_opt().unwrap_or(first));
    let Some(mut day_start) = local_midnight(tz, day) else {
        return parts;
    };
    while day < to && day_start < eff_end {
        let Some(next) = day.succ_opt() else { break };
        let Some(next_start) = local_midnight(tz, next) else {
            break;
        };
        let window = Window {
            from: day_start,
            to: next_start,
        };
        if let Some(row) = shift_row(shift, window, now, breaks_paid) {
            parts.push(WorkdayPart {
                pay_numerator: i128::from(row.paid_secs) * i128::from(row.hourly_rate_cents),
                row: WorkdayRow {
                    agent_id: row.agent_id,
                    workday: day,
                    timezone: tz.name().to_owned(),
                    online_secs: row.online_secs,
                    break_secs: row.break_secs,
                    engaged_secs: row.engaged_secs,
                    paid_secs: row.paid_secs,
                    tickets_completed: row.tickets_completed,
                    pay_cents: row.pay_cents,
                    currency: row.currency,
                },
            });
        }
        day = next;
        day_start = next_start;
    }
    parts
}

/// `shift` split at local midnights in its zone: one row per local date `d`, `from ≤ d < to`,
/// on which it has online time, in date order. Each row's pay is rounded half up on its own;
/// to combine several shifts' rows use [`workday_parts`] and [`merge_workdays`] (or
/// [`workdays`]), which round once per merged row.
pub fn workday_rows(
    shift: &Shift,
    from: NaiveDate,
    to: NaiveDate,
    now: i64,
    breaks_paid: bool,
) -> Vec<WorkdayRow> {
    workday_parts(shift, from, to, now, breaks_paid)
        .into_iter()
        .map(|p| p.row)
        .collect()
}

/// Merges parts of the same agent, workday, currency and zone into one row, sorted by
/// `(agent_id, workday, currency, timezone)`.
///
/// Times and completions add up; pay is `Σ paid_i × rate_i / 3600` rounded half up once, so
/// two 1-second shifts at 1800 cents/h pay 1 cent, not 2. Parts in different currencies (the
/// profile changed between shifts) stay separate rows, and so do parts in different zones (a
/// workday is a span of a particular zone).
pub fn merge_workdays(parts: impl IntoIterator<Item = WorkdayPart>) -> Vec<WorkdayRow> {
    type Key = (String, NaiveDate, String, String);
    let mut merged: BTreeMap<Key, (WorkdayRow, i128)> = BTreeMap::new();
    for part in parts {
        let r = part.row;
        let key = (
            r.agent_id.clone(),
            r.workday,
            r.currency.clone(),
            r.timezone.clone(),
        );
        match merged.get_mut(&key) {
            Some((acc, numerator)) => {
                acc.online_secs += r.online_secs;
                acc.break_secs += r.break_secs;
                acc.engaged_secs += r.engaged_secs;
                acc.paid_secs += r.paid_secs;
                acc.tickets_completed += r.tickets_completed;
                *numerator += part.pay_numerator;
            }
            None => {
                merged.insert(key, (r, part.pay_numerator));
            }
        }
    }
    merged
        .into_values()
        .map(|(mut row, numerator)| {
            row.pay_cents = round_half_up_div(numerator, SECS_PER_HOUR);
            row
        })
        .collect()
}

/// The workday rows of `shifts` (any agents) for local dates `from ≤ d < to`: each shift split
/// with [`workday_parts`], then merged with [`merge_workdays`]; sorted by
/// `(agent_id, workday, currency, timezone)`.
pub fn workdays(
    shifts: &[Shift],
    from: NaiveDate,
    to: NaiveDate,
    now: i64,
    breaks_paid: bool,
) -> Vec<WorkdayRow> {
    merge_workdays(
        shifts
            .iter()
            .flat_map(|s| workday_parts(s, from, to, now, breaks_paid)),
    )
}
