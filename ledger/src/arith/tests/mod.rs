//! Tests of the shift arithmetic: hand-computed cases, then properties over random shifts.

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::*;

const H: i64 = 3600;
const M: i64 = 60;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Instant of a UTC wall time.
fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    chrono::Utc
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid UTC time")
        .timestamp()
}

/// Instant of an unambiguous local wall time in `tz`.
fn local(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("unambiguous local time")
        .timestamp()
}

fn date(y: i32, mo: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, mo, d).expect("valid date")
}

fn seg(kind: SegmentKind, start: i64, end: impl Into<Option<i64>>) -> Segment {
    Segment {
        kind,
        start,
        end: end.into(),
    }
}

fn shift(started_at: i64, ended_at: Option<i64>, segments: Vec<Segment>, rate: i64) -> Shift {
    Shift {
        shift_id: "s-1".to_owned(),
        agent_id: "a-1".to_owned(),
        started_at,
        ended_at,
        segments,
        completions: Vec::new(),
        hourly_rate_cents: rate,
        currency: "EUR".to_owned(),
        timezone: Tz::UTC,
    }
}

fn win(from: i64, to: i64) -> Window {
    Window { from, to }
}

/// A window wide enough for any test shift.
const ALL: Window = Window {
    from: i64::MIN / 4,
    to: i64::MAX / 4,
};

fn row(s: &Shift, w: Window, now: i64, breaks_paid: bool) -> ShiftRow {
    shift_row(s, w, now, breaks_paid).expect("the shift overlaps the window")
}

/// (online, break, engaged, paid, tickets) of rows.
type Totals = (i64, i64, i64, i64, i64);

fn totals_of_shift_row(r: Option<&ShiftRow>) -> Totals {
    r.map_or((0, 0, 0, 0, 0), |r| {
        (
            r.online_secs,
            r.break_secs,
            r.engaged_secs,
            r.paid_secs,
            r.tickets_completed,
        )
    })
}

fn totals_of_workdays<'a>(rows: impl IntoIterator<Item = &'a WorkdayRow>) -> Totals {
    rows.into_iter().fold((0, 0, 0, 0, 0), |t, r| {
        (
            t.0 + r.online_secs,
            t.1 + r.break_secs,
            t.2 + r.engaged_secs,
            t.3 + r.paid_secs,
            t.4 + r.tickets_completed,
        )
    })
}

fn add(a: Totals, b: Totals) -> Totals {
    (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3 + b.3, a.4 + b.4)
}

/// `pay` is `numerator / 3600` rounded half up: `pay − ½ ≤ numerator / 3600 < pay + ½`.
fn is_half_up(numerator: i128, pay: i64) -> bool {
    let pay = i128::from(pay);
    7200 * pay <= 2 * numerator + 3600 && 2 * numerator + 3600 < 7200 * pay + 7200
}

/// (online secs, rows) of a shift without segments from `start` to `end` in `tz`.
fn night(tz: Tz, start: i64, end: i64) -> (i64, Vec<WorkdayRow>) {
    let mut s = shift(start, Some(end), Vec::new(), 1650);
    s.timezone = tz;
    let online = row(&s, ALL, end, false).online_secs;
    let rows = workday_rows(&s, date(1900, 1, 1), date(2100, 1, 1), end, false);
    (online, rows)
}

fn day_secs(rows: &[WorkdayRow]) -> Vec<(NaiveDate, i64)> {
    rows.iter().map(|r| (r.workday, r.online_secs)).collect()
}

const ZONES: &[Tz] = &[
    Tz::UTC,
    chrono_tz::Europe::Stockholm,
    chrono_tz::America::New_York,
    chrono_tz::America::Santiago,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Kolkata,
    chrono_tz::Pacific::Chatham,
    chrono_tz::America::St_Johns,
    chrono_tz::Europe::London,
    chrono_tz::Asia::Tehran,
    chrono_tz::America::Havana,
    chrono_tz::Asia::Beirut,
    chrono_tz::Asia::Kathmandu,
    chrono_tz::Africa::Casablanca,
    chrono_tz::Pacific::Apia,
];

/// Local 22:00 of `d` to local 06:00 of the next day in `tz`, with the expected length
/// `8 h − (offset at the end − offset at the start)`; `None` if either wall time is skipped or
/// repeated.
fn night_span(tz: Tz, d: NaiveDate) -> Option<(i64, i64, i64)> {
    let next = d.succ_opt()?;
    let start = tz.from_local_datetime(&d.and_hms_opt(22, 0, 0)?).single()?;
    let end = tz
        .from_local_datetime(&next.and_hms_opt(6, 0, 0)?)
        .single()?;
    let offset = |t: &chrono::DateTime<Tz>| i64::from(t.offset().fix().local_minus_utc());
    let expected = 8 * H - (offset(&end) - offset(&start));
    Some((start.timestamp(), end.timestamp(), expected))
}

mod pay_and_shift;
mod properties;
mod workdays;
