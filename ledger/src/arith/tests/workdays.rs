//! Workday rows: local midnights, DST nights, merging.

use super::*;

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
