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

// ---------------------------------------------------------------------------------------------
// Pay and rounding

#[test]
fn pay_rounds_half_up() {
    assert_eq!(pay_cents(1, 1800), 1, "half a cent rounds up");
    assert_eq!(pay_cents(1, 1799), 0);
    assert_eq!(pay_cents(3600, 1650), 1650);
    assert_eq!(pay_cents(0, 10_000), 0);
    assert_eq!(pay_cents(1, 5400), 2, "1.5 → 2");
    assert_eq!(pay_cents(1, 9000), 3, "2.5 → 3");
    assert_eq!(pay_cents(1800, 1), 1, "0.5 → 1");
    assert_eq!(pay_cents(1799, 1), 0);
    assert_eq!(pay_cents(7199, 1), 2, "1.9997 → 2");
    assert_eq!(pay_cents(28_800, 1650), 13_200);
    // 26 400 s × 1999 / 3600 = 14 659.33…
    assert_eq!(pay_cents(26_400, 1999), 14_659);
    // No overflow: the product is taken in i128.
    assert_eq!(pay_cents(i64::MAX / 2, 3600), i64::MAX / 2);
}

#[test]
fn round_half_up_div_edges() {
    assert_eq!(round_half_up_div(5, 2), 3);
    assert_eq!(round_half_up_div(4, 2), 2);
    assert_eq!(round_half_up_div(0, 7), 0);
    assert_eq!(round_half_up_div(10, 3), 3);
    assert_eq!(round_half_up_div(11, 3), 4);
    assert_eq!(round_half_up_div(-5, 2), -2, "−2.5 rounds up to −2");
    assert_eq!(round_half_up_div(-7, -2), 4, "signs flipped: 3.5 → 4");
    assert_eq!(round_half_up_div(7, -2), -3, "−3.5 → −3");
    assert_eq!(round_half_up_div(7, 0), 0, "no panic on zero");
    assert_eq!(round_half_up_div(i128::MAX, 1), i64::MAX, "saturates");
    assert_eq!(round_half_up_div(i128::MIN, 1), i64::MIN, "saturates");
}

// ---------------------------------------------------------------------------------------------
// One shift

#[test]
fn available_only() {
    let t0 = utc(2026, 5, 4, 8, 0);
    let s = shift(t0, Some(t0 + H), Vec::new(), 1650);
    let r = row(&s, ALL, t0 + 10 * H, false);
    assert_eq!(
        r,
        ShiftRow {
            shift_id: "s-1".into(),
            agent_id: "a-1".into(),
            started_at: t0,
            ended_at: t0 + H,
            open: false,
            online_secs: 3600,
            break_secs: 0,
            engaged_secs: 0,
            paid_secs: 3600,
            tickets_completed: 0,
            hourly_rate_cents: 1650,
            pay_cents: 1650,
            currency: "EUR".into(),
        }
    );
}

#[test]
fn engaged_time_is_paid() {
    let t0 = utc(2026, 5, 4, 8, 0);
    let s = shift(
        t0,
        Some(t0 + 2 * H),
        vec![
            seg(SegmentKind::Available, t0, t0 + 30 * M),
            seg(SegmentKind::Engaged, t0 + 30 * M, t0 + 90 * M),
            seg(SegmentKind::Available, t0 + 90 * M, t0 + 2 * H),
        ],
        1650,
    );
    let r = row(&s, ALL, t0 + 10 * H, false);
    assert_eq!(
        (r.online_secs, r.engaged_secs, r.break_secs, r.paid_secs),
        (7200, 3600, 0, 7200)
    );
    assert_eq!(r.pay_cents, 3300);
}

/// 08:00–16:00 with a ticket 09:00–11:00, a break 12:00–12:30 and away 15:00–15:10; the time
/// between segments is available.
fn working_day() -> Shift {
    let t0 = utc(2026, 5, 4, 8, 0);
    shift(
        t0,
        Some(t0 + 8 * H),
        vec![
            seg(SegmentKind::Engaged, t0 + H, t0 + 3 * H),
            seg(SegmentKind::Break, t0 + 4 * H, t0 + 4 * H + 30 * M),
            seg(SegmentKind::Break, t0 + 7 * H, t0 + 7 * H + 10 * M),
        ],
        1999,
    )
}

#[test]
fn break_and_away_unpaid_by_default_paid_with_breaks_paid() {
    let s = working_day();
    let now = s.started_at + 24 * H;
    let r = row(&s, ALL, now, false);
    assert_eq!(
        (r.online_secs, r.engaged_secs, r.break_secs, r.paid_secs),
        (28_800, 7200, 2400, 26_400)
    );
    assert_eq!(r.pay_cents, 14_659, "26 400 s × 1999 / 3600 = 14 659.33");

    let r = row(&s, ALL, now, true);
    assert_eq!((r.break_secs, r.paid_secs), (2400, 28_800));
    assert_eq!(r.pay_cents, 15_992, "28 800 s × 1999 / 3600 = 15 992");
}

#[test]
fn clipped_at_both_ends() {
    let s = working_day();
    let t0 = s.started_at;
    // [10:00, 12:15): engaged 10–11, break 12:00–12:15.
    let r = row(&s, win(t0 + 2 * H, t0 + 4 * H + 15 * M), t0 + 24 * H, false);
    assert_eq!(
        (r.started_at, r.ended_at),
        (t0 + 2 * H, t0 + 4 * H + 15 * M)
    );
    assert!(!r.open);
    assert_eq!(
        (r.online_secs, r.engaged_secs, r.break_secs, r.paid_secs),
        (8100, 3600, 900, 7200)
    );
    // Only the start clipped: [12:15, ∞) keeps 12:15–16:00 with 15 + 10 min of break.
    let r = row(
        &s,
        win(t0 + 4 * H + 15 * M, t0 + 48 * H),
        t0 + 24 * H,
        false,
    );
    assert_eq!(
        (r.started_at, r.ended_at),
        (t0 + 4 * H + 15 * M, t0 + 8 * H)
    );
    assert_eq!(
        (r.online_secs, r.engaged_secs, r.break_secs),
        (13_500, 0, 1500)
    );
}

#[test]
fn open_shift_clipped_at_now_and_at_to() {
    let t0 = utc(2026, 5, 4, 8, 0);
    let mut s = shift(
        t0,
        None,
        vec![
            seg(SegmentKind::Available, t0, t0 + H),
            seg(SegmentKind::Engaged, t0 + H, None),
        ],
        3600,
    );
    s.completions = vec![t0 + 2 * H, t0 + 2 * H + 30 * M];
    let now = t0 + 2 * H + 30 * M;
    // Clipped at now: the running segment runs to now; the completion at now is not yet in.
    let r = row(&s, win(t0 - 8 * H, t0 + 16 * H), now, false);
    assert!(r.open);
    assert_eq!((r.started_at, r.ended_at), (t0, now));
    assert_eq!(
        (r.online_secs, r.engaged_secs, r.paid_secs, r.pay_cents),
        (9000, 5400, 9000, 9000)
    );
    assert_eq!(r.tickets_completed, 1);
    // Clipped at `to`, earlier than now.
    let r = row(&s, win(t0 - 8 * H, t0 + 2 * H), now, false);
    assert!(r.open);
    assert_eq!(r.ended_at, t0 + 2 * H);
    assert_eq!((r.online_secs, r.engaged_secs), (7200, 3600));
    assert_eq!(r.tickets_completed, 0);
    // A window after now has nothing yet.
    assert_eq!(shift_row(&s, win(now, now + H), now, false), None);
}

#[test]
fn no_overlap_is_none() {
    let s = working_day();
    let (t0, t1) = (s.started_at, s.started_at + 8 * H);
    let now = t1 + H;
    assert_eq!(shift_row(&s, win(t0 - 2 * H, t0 - H), now, false), None);
    assert_eq!(
        shift_row(&s, win(t0 - H, t0), now, false),
        None,
        "ends at start"
    );
    assert_eq!(
        shift_row(&s, win(t1, t1 + H), now, false),
        None,
        "starts at end"
    );
    assert_eq!(shift_row(&s, win(t1 + H, t1 + 2 * H), now, false), None);
    assert_eq!(
        shift_row(&s, win(t0 + H, t0 + H), now, false),
        None,
        "empty"
    );
    let open = shift(t0, None, Vec::new(), 1650);
    assert_eq!(
        shift_row(&open, ALL, t0 - H, false),
        None,
        "now before start"
    );
    assert_eq!(shift_row(&open, ALL, t0, false), None, "no time yet");
}

#[test]
fn completions_counted_inside_only() {
    let mut s = working_day();
    let (t0, t1) = (s.started_at, s.started_at + 8 * H);
    s.completions = vec![t0 - M, t0, t0 + 4 * H, t1, t1 + M];
    let now = t1 + 10 * H;
    let count = |w: Window| shift_row(&s, w, now, false).map(|r| r.tickets_completed);
    // At the start, in the middle, and at the very second the shift ended.
    assert_eq!(count(ALL), Some(3));
    assert_eq!(
        count(win(t0, t0 + 4 * H)),
        Some(1),
        "the end of a window is out"
    );
    assert_eq!(
        count(win(t0 + 4 * H, t1)),
        Some(2),
        "…but the shift's end is in"
    );
    assert_eq!(count(win(t0 + 4 * H, t1 + H)), Some(2));
    assert_eq!(count(win(t0 + H, t0 + 4 * H)), Some(0));
    assert_eq!(count(win(t1, t1 + H)), None);
}

#[test]
fn overlapping_segments_never_count_twice() {
    let t0 = utc(2026, 5, 4, 8, 0);
    let s = shift(
        t0,
        Some(t0 + H),
        vec![
            seg(SegmentKind::Engaged, t0, t0 + 40 * M),
            seg(SegmentKind::Break, t0 + 30 * M, t0 + 2 * H),
        ],
        1650,
    );
    let r = row(&s, ALL, t0 + H, false);
    assert_eq!((r.engaged_secs, r.break_secs), (40 * M, 20 * M));
}

// ---------------------------------------------------------------------------------------------
// Workdays

#[test]
fn shift_across_midnight_gives_two_rows_summing_to_the_shift() {
    let t0 = utc(2026, 5, 4, 20, 0);
    let mut s = shift(
        t0,
        Some(t0 + 8 * H),
        vec![
            seg(SegmentKind::Engaged, t0 + 3 * H, t0 + 5 * H),
            seg(SegmentKind::Break, t0 + 6 * H, t0 + 6 * H + 30 * M),
        ],
        1650,
    );
    s.completions = vec![t0 + 3 * H + 30 * M, t0 + 4 * H, t0 + 7 * H];
    let rows = workday_rows(&s, date(2026, 5, 1), date(2026, 5, 10), t0, false);
    assert_eq!(
        rows,
        vec![
            WorkdayRow {
                agent_id: "a-1".into(),
                workday: date(2026, 5, 4),
                timezone: "UTC".into(),
                online_secs: 14_400,
                break_secs: 0,
                engaged_secs: 3600,
                paid_secs: 14_400,
                tickets_completed: 1,
                pay_cents: 6600,
                currency: "EUR".into(),
            },
            WorkdayRow {
                agent_id: "a-1".into(),
                workday: date(2026, 5, 5),
                timezone: "UTC".into(),
                online_secs: 14_400,
                break_secs: 1800,
                engaged_secs: 3600,
                paid_secs: 12_600,
                tickets_completed: 2,
                pay_cents: 5775,
                currency: "EUR".into(),
            },
        ]
    );
    let whole = row(&s, ALL, t0, false);
    assert_eq!(totals_of_workdays(&rows), totals_of_shift_row(Some(&whole)));
    // Only the dates asked for.
    let rows = workday_rows(&s, date(2026, 5, 5), date(2026, 5, 6), t0, false);
    assert_eq!(day_secs(&rows), vec![(date(2026, 5, 5), 14_400)]);
    let rows = workday_rows(&s, date(2026, 5, 1), date(2026, 5, 5), t0, false);
    assert_eq!(day_secs(&rows), vec![(date(2026, 5, 4), 14_400)]);
    assert!(workday_rows(&s, date(2026, 5, 6), date(2026, 5, 9), t0, false).is_empty());
}

#[test]
fn ticket_completed_as_the_shift_ends_at_midnight_belongs_to_that_day() {
    let tz = chrono_tz::Europe::Stockholm;
    let (start, end) = (local(tz, 2026, 5, 4, 20, 0), local(tz, 2026, 5, 5, 0, 0));
    let mut s = shift(start, Some(end), Vec::new(), 1650);
    s.timezone = tz;
    s.completions = vec![end];
    let rows = workday_rows(&s, date(2026, 5, 1), date(2026, 5, 31), end, false);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].workday,
            rows[0].online_secs,
            rows[0].tickets_completed
        ),
        (date(2026, 5, 4), 4 * H, 1)
    );
}

#[test]
fn stockholm_night_shifts_across_dst() {
    let tz = chrono_tz::Europe::Stockholm;
    // Autumn, 2026-10-25: 03:00 CEST → 02:00 CET; 22:00 CEST is 20:00Z, 06:00 CET is 05:00Z.
    let (start, end) = (
        local(tz, 2026, 10, 24, 22, 0),
        local(tz, 2026, 10, 25, 6, 0),
    );
    assert_eq!(
        (start, end),
        (utc(2026, 10, 24, 20, 0), utc(2026, 10, 25, 5, 0))
    );
    let (online, rows) = night(tz, start, end);
    assert_eq!(online, 9 * H);
    assert_eq!(
        day_secs(&rows),
        vec![(date(2026, 10, 24), 2 * H), (date(2026, 10, 25), 7 * H)]
    );
    assert!(rows.iter().all(|r| r.timezone == "Europe/Stockholm"));
    // Spring, 2026-03-29: 02:00 CET → 03:00 CEST.
    let (start, end) = (local(tz, 2026, 3, 28, 22, 0), local(tz, 2026, 3, 29, 6, 0));
    let (online, rows) = night(tz, start, end);
    assert_eq!(online, 7 * H);
    assert_eq!(
        day_secs(&rows),
        vec![(date(2026, 3, 28), 2 * H), (date(2026, 3, 29), 5 * H)]
    );
}

#[test]
fn new_york_night_shifts_across_dst() {
    let tz = chrono_tz::America::New_York;
    // Autumn, 2026-11-01: 02:00 EDT → 01:00 EST.
    let (start, end) = (local(tz, 2026, 10, 31, 22, 0), local(tz, 2026, 11, 1, 6, 0));
    assert_eq!(
        (start, end),
        (utc(2026, 11, 1, 2, 0), utc(2026, 11, 1, 11, 0))
    );
    let (online, rows) = night(tz, start, end);
    assert_eq!(online, 9 * H);
    assert_eq!(
        day_secs(&rows),
        vec![(date(2026, 10, 31), 2 * H), (date(2026, 11, 1), 7 * H)]
    );
    // Spring, 2026-03-08: 02:00 EST → 03:00 EDT.
    let (start, end) = (local(tz, 2026, 3, 7, 22, 0), local(tz, 2026, 3, 8, 6, 0));
    let (online, rows) = night(tz, start, end);
    assert_eq!(online, 7 * H);
    assert_eq!(
        day_secs(&rows),
        vec![(date(2026, 3, 7), 2 * H), (date(2026, 3, 8), 5 * H)]
    );
}

#[test]
fn kolkata_half_hour_offset_midnight() {
    let tz = chrono_tz::Asia::Kolkata;
    assert_eq!(
        local_midnight(tz, date(2026, 5, 2)),
        Some(utc(2026, 5, 1, 18, 30))
    );
    // 16:00Z–20:00Z is 21:30–01:30 IST.
    let (online, rows) = night(tz, utc(2026, 5, 1, 16, 0), utc(2026, 5, 1, 20, 0));
    assert_eq!(online, 4 * H);
    assert_eq!(
        day_secs(&rows),
        vec![
            (date(2026, 5, 1), 2 * H + 30 * M),
            (date(2026, 5, 2), H + 30 * M)
        ]
    );
}

#[test]
fn skipped_midnight_starts_the_day_at_the_end_of_the_gap() {
    // America/Santiago, 2026-09-06: 00:00 −04 → 01:00 −03, at 04:00Z.
    let tz = chrono_tz::America::Santiago;
    assert_eq!(
        local_midnight(tz, date(2026, 9, 6)),
        Some(utc(2026, 9, 6, 4, 0))
    );
    assert_eq!(
        local_midnight(tz, date(2026, 9, 7)),
        Some(utc(2026, 9, 7, 3, 0))
    );
    // 22:00 −04 to 06:00 −03: 7 h, 2 h on the 5th and 5 h (01:00–06:00) on the 6th.
    let (start, end) = (local(tz, 2026, 9, 5, 22, 0), local(tz, 2026, 9, 6, 6, 0));
    let (online, rows) = night(tz, start, end);
    assert_eq!(online, 7 * H);
    assert_eq!(
        day_secs(&rows),
        vec![(date(2026, 9, 5), 2 * H), (date(2026, 9, 6), 5 * H)]
    );
    // America/Havana, 2026-03-08 and Asia/Beirut, 2026-03-29: midnight skipped, too.
    assert_eq!(
        local_midnight(chrono_tz::America::Havana, date(2026, 3, 8)),
        Some(utc(2026, 3, 8, 5, 0))
    );
    assert_eq!(
        local_midnight(chrono_tz::Asia::Beirut, date(2026, 3, 29)),
        Some(utc(2026, 3, 28, 22, 0))
    );
}

#[test]
fn repeated_midnight_takes_the_earlier() {
    // America/Havana, 2026-11-01: 01:00 CDT → 00:00 CST, so 00:00 happens at 04:00Z and 05:00Z.
    let tz = chrono_tz::America::Havana;
    assert_eq!(
        local_midnight(tz, date(2026, 11, 1)),
        Some(utc(2026, 11, 1, 4, 0))
    );
    // 23:00 CDT on the 31st (03:00Z) to 08:00Z: 1 h on the 31st, 4 h on the 1st.
    let (online, rows) = night(tz, utc(2026, 11, 1, 3, 0), utc(2026, 11, 1, 8, 0));
    assert_eq!(online, 5 * H);
    assert_eq!(
        day_secs(&rows),
        vec![(date(2026, 10, 31), H), (date(2026, 11, 1), 4 * H)]
    );
    // Asia/Beirut, 2026-10-25: 00:00 EEST → 23:00 EET on the 24th, which is 25 h long.
    let tz = chrono_tz::Asia::Beirut;
    let d24 = local_midnight(tz, date(2026, 10, 24)).expect("in range");
    let d25 = local_midnight(tz, date(2026, 10, 25)).expect("in range");
    assert_eq!(d25 - d24, 25 * H);
}

#[test]
fn a_skipped_date_has_no_row() {
    // Pacific/Apia skipped 2011-12-30: 23:59:59 −10 on the 29th was followed by 00:00 +14 on the
    // 31st (at 10:00Z on the 30th).
    let tz = chrono_tz::Pacific::Apia;
    assert_eq!(
        local_midnight(tz, date(2011, 12, 30)),
        local_midnight(tz, date(2011, 12, 31))
    );
    let (online, rows) = night(tz, utc(2011, 12, 30, 6, 0), utc(2011, 12, 30, 14, 0));
    assert_eq!(online, 8 * H);
    assert_eq!(
        day_secs(&rows),
        vec![(date(2011, 12, 29), 4 * H), (date(2011, 12, 31), 4 * H)]
    );
}

#[test]
fn open_shift_workdays_clipped_at_now() {
    let t0 = utc(2026, 5, 4, 22, 0);
    let s = shift(t0, None, vec![seg(SegmentKind::Break, t0 + H, None)], 1650);
    let rows = workday_rows(&s, date(2026, 5, 1), date(2026, 5, 31), t0 + 3 * H, false);
    assert_eq!(
        rows.iter()
            .map(|r| (r.workday, r.online_secs, r.break_secs, r.paid_secs))
            .collect::<Vec<_>>(),
        vec![(date(2026, 5, 4), 2 * H, H, H), (date(2026, 5, 5), H, H, 0)]
    );
}

#[test]
fn merged_workday_rounds_once() {
    let t0 = utc(2026, 5, 4, 8, 0);
    // Two 1-second shifts at 1800 cents/h: ½ + ½ = 1 cent, not 1 + 1.
    let a = shift(t0, Some(t0 + 1), Vec::new(), 1800);
    let mut b = shift(t0 + H, Some(t0 + H + 1), Vec::new(), 1800);
    b.shift_id = "s-2".into();
    let (from, to) = (date(2026, 5, 4), date(2026, 5, 5));
    assert_eq!(workday_rows(&a, from, to, t0, false)[0].pay_cents, 1);
    let rows = workdays(&[a.clone(), b.clone()], from, to, t0, false);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].online_secs, rows[0].paid_secs, rows[0].pay_cents),
        (2, 2, 1)
    );
    // Different rates (the profile changed between shifts): 1000 + 1000 cents·s = 0.56 → 1,
    // though each shift alone rounds to 0.
    let (mut a, mut b) = (a, b);
    a.hourly_rate_cents = 1000;
    b.hourly_rate_cents = 1000;
    assert_eq!(workday_rows(&a, from, to, t0, false)[0].pay_cents, 0);
    assert_eq!(
        workdays(&[a.clone(), b.clone()], from, to, t0, false)[0].pay_cents,
        1
    );
    // 1 s at 700 + 1 s at 1100 = 1800 cents·s / 3600 = ½ → 1.
    a.hourly_rate_cents = 700;
    b.hourly_rate_cents = 1100;
    assert_eq!(workdays(&[a, b], from, to, t0, false)[0].pay_cents, 1);
}

#[test]
fn merge_keeps_currencies_and_agents_apart_and_sorts() {
    let t0 = utc(2026, 5, 4, 8, 0);
    let mk = |id: &str, agent: &str, start: i64, currency: &str, rate: i64| {
        let mut s = shift(start, Some(start + H), Vec::new(), rate);
        s.shift_id = id.into();
        s.agent_id = agent.into();
        s.currency = currency.into();
        s
    };
    let shifts = [
        mk("s-1", "b", t0, "EUR", 1650),
        mk("s-2", "a", t0 + 24 * H, "EUR", 1650),
        mk("s-3", "a", t0, "EUR", 1650),
        mk("s-4", "a", t0 + 2 * H, "SEK", 18_000),
        mk("s-5", "a", t0 + 4 * H, "EUR", 2000),
    ];
    let rows = workdays(&shifts, date(2026, 5, 1), date(2026, 5, 31), t0, false);
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.agent_id.as_str(),
                r.workday,
                r.currency.as_str(),
                r.online_secs,
                r.pay_cents,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", date(2026, 5, 4), "EUR", 2 * H, 3650),
            ("a", date(2026, 5, 4), "SEK", H, 18_000),
            ("a", date(2026, 5, 5), "EUR", H, 1650),
            ("b", date(2026, 5, 4), "EUR", H, 1650),
        ]
    );
}

/// Every local 22:00 → 06:00 night of 2020–2030 in every test zone is 8 h, minus the change of
/// UTC offset in between, and its two workday rows add up to it.
#[test]
fn every_night_of_the_decade() {
    let mut changed = (0, 0);
    for &tz in ZONES {
        let mut d = date(2020, 1, 1);
        while d < date(2031, 1, 1) {
            let next = d.succ_opt().expect("in range");
            if let Some((start, end, expected)) = night_span(tz, d) {
                let (online, rows) = night(tz, start, end);
                assert_eq!(online, expected, "{tz} {d}");
                assert_eq!(totals_of_workdays(&rows).0, expected, "{tz} {d}");
                match expected {
                    e if e == 7 * H => changed.0 += 1,
                    e if e == 9 * H => changed.1 += 1,
                    _ => {}
                }
            }
            d = next;
        }
    }
    // Each DST zone changes twice a year; most changes fall inside the night.
    assert!(changed.0 > 50 && changed.1 > 50, "{changed:?}");
}

// ---------------------------------------------------------------------------------------------
// Properties

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

/// 2020-01-01T00:00Z and 2030-01-01T00:00Z.
const START_MIN: i64 = 1_577_836_800;
const START_MAX: i64 = 1_893_456_000;

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

/// A random shift and the `now` it is seen at.
fn arb_shift() -> impl Strategy<Value = (Shift, i64)> {
    let segments = prop::collection::vec(
        (
            prop_oneof![
                Just(SegmentKind::Available),
                Just(SegmentKind::Engaged),
                Just(SegmentKind::Break)
            ],
            prop_oneof![Just(0i64), 0i64..=1800],
            0i64..=6 * H,
        ),
        0..8,
    );
    (
        0..ZONES.len(),
        START_MIN..START_MAX,
        segments,
        prop_oneof![Just(0i64), 0i64..=2 * H],
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(prop_oneof![Just(1000i64), 0i64..=1000], 0..6),
        0i64..=10_000,
        0i64..=2 * 86_400,
    )
        .prop_map(
            |(zone, start, segs, tail, open, running, completions, rate, later)| {
                let mut segments = Vec::with_capacity(segs.len());
                let mut t = start;
                for (kind, gap, len) in segs {
                    t += gap;
                    segments.push(Segment {
                        kind,
                        start: t,
                        end: Some(t + len),
                    });
                    t += len;
                }
                let end = t + tail;
                if open && running && tail == 0 {
                    if let Some(last) = segments.last_mut() {
                        last.end = None;
                    }
                }
                let shift = Shift {
                    shift_id: "s-p".into(),
                    agent_id: "a-p".into(),
                    started_at: start,
                    ended_at: (!open).then_some(end),
                    segments,
                    completions: completions
                        .into_iter()
                        .map(|p| start + (end - start) * p / 1000)
                        .collect(),
                    hourly_rate_cents: rate,
                    currency: "EUR".into(),
                    timezone: ZONES[zone],
                };
                let now = if open { end } else { end + later };
                (shift, now)
            },
        )
}

/// The shift's effective end.
fn end_of(s: &Shift, now: i64) -> i64 {
    s.ended_at.unwrap_or(now)
}

fn check_row_invariants(r: &ShiftRow, breaks_paid: bool) -> Result<(), TestCaseError> {
    prop_assert!(r.started_at < r.ended_at);
    prop_assert_eq!(r.online_secs, r.ended_at - r.started_at);
    prop_assert!(r.break_secs >= 0 && r.engaged_secs >= 0 && r.tickets_completed >= 0);
    prop_assert!(r.break_secs + r.engaged_secs <= r.online_secs);
    prop_assert!(r.paid_secs >= 0 && r.paid_secs <= r.online_secs);
    let expected_paid = if breaks_paid {
        r.online_secs
    } else {
        r.online_secs - r.break_secs
    };
    prop_assert_eq!(r.paid_secs, expected_paid);
    prop_assert!(r.pay_cents >= 0);
    let numerator = i128::from(r.paid_secs) * i128::from(r.hourly_rate_cents);
    prop_assert!(is_half_up(numerator, r.pay_cents), "{:?}", r);
    Ok(())
}

fn check_workday_invariants(
    r: &WorkdayRow,
    numerator: i128,
    breaks_paid: bool,
) -> Result<(), TestCaseError> {
    prop_assert!(r.online_secs > 0);
    prop_assert!(r.break_secs >= 0 && r.engaged_secs >= 0 && r.tickets_completed >= 0);
    prop_assert!(r.break_secs + r.engaged_secs <= r.online_secs);
    prop_assert!(r.paid_secs >= 0 && r.paid_secs <= r.online_secs);
    if breaks_paid {
        prop_assert_eq!(r.paid_secs, r.online_secs);
    } else {
        prop_assert_eq!(r.paid_secs, r.online_secs - r.break_secs);
    }
    prop_assert!(r.pay_cents >= 0);
    prop_assert!(is_half_up(numerator, r.pay_cents), "{:?} {}", r, numerator);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) A shift's workday rows add up to its row over the same span of whole local days,
    /// (b) each row is sound and (d) its pay is rounded half up.
    #[test]
    fn workdays_sum_to_the_shift(
        (s, now) in arb_shift(),
        days_before in -2i64..=1,
        days_after in -1i64..=2,
        breaks_paid in any::<bool>(),
    ) {
        let tz = s.timezone;
        let first = local_date(tz, s.started_at).expect("in range");
        let last = local_date(tz, end_of(&s, now)).expect("in range");
        let from = first + chrono::TimeDelta::days(days_before);
        let to = last + chrono::TimeDelta::days(days_after);
        let parts = workday_parts(&s, from, to, now, breaks_paid);
        let rows: Vec<WorkdayRow> = parts.iter().map(|p| p.row.clone()).collect();
        prop_assert_eq!(&rows, &workday_rows(&s, from, to, now, breaks_paid));

        let window = win(
            local_midnight(tz, from).expect("in range"),
            local_midnight(tz, to).expect("in range"),
        );
        let whole = shift_row(&s, window, now, breaks_paid);
        if window.from < window.to {
            prop_assert_eq!(totals_of_workdays(&rows), totals_of_shift_row(whole.as_ref()));
        } else {
            prop_assert!(rows.is_empty());
        }
        if let Some(r) = &whole {
            check_row_invariants(r, breaks_paid)?;
        }
        let mut previous = None;
        for p in &parts {
            prop_assert!(p.row.workday >= from && p.row.workday < to);
            prop_assert!(previous < Some(p.row.workday), "one row per date, in order");
            previous = Some(p.row.workday);
            prop_assert_eq!(
                p.pay_numerator,
                i128::from(p.row.paid_secs) * i128::from(s.hourly_rate_cents)
            );
            check_workday_invariants(&p.row, p.pay_numerator, breaks_paid)?;
            prop_assert_eq!(p.row.timezone.as_str(), tz.name());
        }
        // One shift merged alone is its own rows.
        prop_assert_eq!(merge_workdays(parts), rows);
    }

    /// (b) Clipped rows are sound, (c) two adjacent windows add up to their union and
    /// (d) pay is rounded half up.
    #[test]
    fn adjacent_windows_add_up(
        (s, now) in arb_shift(),
        offset in -36 * H..=60 * H,
        len in 0i64..=72 * H,
        cut in 0i64..=1000,
        breaks_paid in any::<bool>(),
    ) {
        let from = s.started_at + offset;
        let to = from + len;
        let mid = from + len * cut / 1000;
        let whole = shift_row(&s, win(from, to), now, breaks_paid);
        let left = shift_row(&s, win(from, mid), now, breaks_paid);
        let right = shift_row(&s, win(mid, to), now, breaks_paid);
        for r in [&whole, &left, &right].into_iter().flatten() {
            check_row_invariants(r, breaks_paid)?;
            prop_assert_eq!(r.open, s.ended_at.is_none());
            prop_assert!(r.started_at >= s.started_at && r.ended_at <= end_of(&s, now));
        }
        prop_assert_eq!(
            totals_of_shift_row(whole.as_ref()),
            add(totals_of_shift_row(left.as_ref()), totals_of_shift_row(right.as_ref()))
        );
        // Over a window covering the whole shift, every completion counts.
        if s.ended_at.is_some_and(|end| end > s.started_at) {
            let all = row(&s, ALL, now, breaks_paid);
            prop_assert_eq!(all.tickets_completed, s.completions.len() as i64);
            prop_assert_eq!(all.online_secs, end_of(&s, now) - s.started_at);
        }
    }

    /// (d) Several shifts of one agent merge into one row per workday, whose pay is
    /// `Σ paid × rate / 3600` rounded half up once.
    #[test]
    fn merged_workdays_round_once(
        shifts in prop::collection::vec(arb_shift(), 1..4),
        zone in 0..ZONES.len(),
        breaks_paid in any::<bool>(),
    ) {
        let now = shifts.iter().map(|(_, now)| *now).max().unwrap_or(0);
        let shifts: Vec<Shift> = shifts
            .into_iter()
            .enumerate()
            .map(|(i, (mut s, _))| {
                s.shift_id = format!("s-{i}");
                s.timezone = ZONES[zone];
                s
            })
            .collect();
        let (from, to) = (date(2019, 12, 30), date(2030, 1, 10));
        let rows = workdays(&shifts, from, to, now, breaks_paid);
        let mut expected: BTreeMap<NaiveDate, (Totals, i128)> = BTreeMap::new();
        for s in &shifts {
            for r in workday_rows(s, from, to, now, breaks_paid) {
                let e = expected.entry(r.workday).or_insert(((0, 0, 0, 0, 0), 0));
                e.0 = add(e.0, totals_of_workdays([&r]));
                e.1 += i128::from(r.paid_secs) * i128::from(s.hourly_rate_cents);
            }
        }
        prop_assert_eq!(rows.len(), expected.len());
        for (r, (day, (totals, numerator))) in rows.iter().zip(&expected) {
            prop_assert_eq!(r.workday, *day);
            prop_assert_eq!(totals_of_workdays([r]), *totals);
            prop_assert!(is_half_up(*numerator, r.pay_cents), "{:?} {}", r, numerator);
            check_workday_invariants(r, *numerator, breaks_paid)?;
        }
    }

    /// (e) Local 22:00 to local 06:00 is 8 h, minus the change of UTC offset in between.
    #[test]
    fn local_night_is_eight_hours_give_or_take_dst(
        zone in 0..ZONES.len(),
        day in 0u64..4018,
    ) {
        let tz = ZONES[zone];
        let d = date(2020, 1, 1) + chrono::Days::new(day);
        let span = night_span(tz, d);
        prop_assume!(span.is_some());
        let (start, end, expected) = span.expect("assumed");
        let (online, rows) = night(tz, start, end);
        prop_assert_eq!(online, expected);
        prop_assert_eq!(totals_of_workdays(&rows).0, expected);
        let midnight = local_midnight(tz, d + chrono::Days::new(1)).expect("in range");
        prop_assert_eq!(
            day_secs(&rows)[0],
            (d, midnight - start),
            "the first row runs to the next local midnight"
        );
    }
}
