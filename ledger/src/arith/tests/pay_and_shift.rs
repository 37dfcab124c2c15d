//! Pay rounding and single-shift rows.

use super::*;

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
