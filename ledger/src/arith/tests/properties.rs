//! Property tests over random shifts, windows and zones.

use super::*;

/// 2020-01-01T00:00Z and 2030-01-01T00:00Z.
const START_MIN: i64 = 1_577_836_800;
const START_MAX: i64 = 1_893_456_000;

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
