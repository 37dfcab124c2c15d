//! Payroll reports as the contract shows them: the query window, shift rows as JSON or RFC 4180
//! CSV (API.md §7), workday rows. Shared by the HTTP endpoints and the export command.

use std::io::Write;

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde::Serialize;
use shared::error::{ClientError, ErrorCode};
use utoipa::ToSchema;

use crate::arith::{ShiftRow, WorkdayRow};

/// The longest window a report may cover.
pub const MAX_WINDOW_DAYS: i64 = 93;

/// The CSV header of `GET /v1/payroll/shifts?format=csv`, exactly as API.md §7 orders it.
pub const SHIFT_COLUMNS: [&str; 13] = [
    "shift_id",
    "agent_id",
    "started_at",
    "ended_at",
    "open",
    "online_secs",
    "break_secs",
    "engaged_secs",
    "paid_secs",
    "tickets_completed",
    "hourly_rate_cents",
    "pay_cents",
    "currency",
];

/// The CSV header of workday rows.
pub const WORKDAY_COLUMNS: [&str; 10] = [
    "agent_id",
    "workday",
    "timezone",
    "online_secs",
    "break_secs",
    "engaged_secs",
    "paid_secs",
    "tickets_completed",
    "pay_cents",
    "currency",
];

fn required<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str, ClientError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ClientError::new(ErrorCode::MalformedQuery, format!("{name}: required")))
}

fn check_span(days: i64, reversed: bool) -> Result<(), ClientError> {
    if reversed {
        return Err(ClientError::field("to", "must be after from"));
    }
    if days > MAX_WINDOW_DAYS {
        return Err(ClientError::field(
            "to",
            format!("the window is longer than {MAX_WINDOW_DAYS} days"),
        ));
    }
    Ok(())
}

/// The years a report may name: beyond them chrono's arithmetic (a day's margin around a
/// window, a local midnight) would leave its range.
const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

fn check_year(name: &str, year: i32) -> Result<(), ClientError> {
    if YEARS.contains(&year) {
        Ok(())
    } else {
        Err(ClientError::field(
            name,
            format!("year {year} is outside 0001 to 9999"),
        ))
    }
}

/// Parses `from`/`to` (RFC 3339): 400 if missing or malformed, 422 if reversed, too long or
/// outside the years 0001 to 9999.
pub fn time_window(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ClientError> {
    let parse = |name: &str, v: Option<&str>| -> Result<DateTime<Utc>, ClientError> {
        let raw = required(name, v)?;
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                ClientError::new(
                    ErrorCode::MalformedQuery,
                    format!("{name}: {raw:?} is not an RFC 3339 time: {e}"),
                )
            })
    };
    let (from, to) = (parse("from", from)?, parse("to", to)?);
    check_year("from", chrono::Datelike::year(&from))?;
    check_year("to", chrono::Datelike::year(&to))?;
    let span = to - from;
    let too_long = span > chrono::Duration::days(MAX_WINDOW_DAYS);
    check_span(if too_long { MAX_WINDOW_DAYS + 1 } else { 0 }, from >= to)?;
    Ok((from, to))
}

/// Parses `from`/`to` as local dates (`YYYY-MM-DD`, `to` exclusive), or RFC 3339 times whose date
/// is taken: 400 if missing or malformed, 422 if reversed, over 93 days or outside the years
/// 0001 to 9999.
pub fn date_window(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(NaiveDate, NaiveDate), ClientError> {
    let parse = |name: &str, v: Option<&str>| -> Result<NaiveDate, ClientError> {
        let raw = required(name, v)?;
        NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .or_else(|_| DateTime::parse_from_rfc3339(raw).map(|t| t.date_naive()))
            .map_err(|_| {
                ClientError::new(
                    ErrorCode::MalformedQuery,
                    format!("{name}: {raw:?} is not a date (YYYY-MM-DD)"),
                )
            })
    };
    let (from, to) = (parse("from", from)?, parse("to", to)?);
    check_year("from", chrono::Datelike::year(&from))?;
    check_year("to", chrono::Datelike::year(&to))?;
    check_span((to - from).num_days(), from >= to)?;
    Ok((from, to))
}

fn rfc3339(secs: i64) -> String {
    Utc.timestamp_opt(secs, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A shift row as JSON shows it (times in RFC 3339 UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ShiftView {
    /// Id.
    pub shift_id: String,
    /// Whose.
    pub agent_id: String,
    /// Clipped start.
    #[schema(format = DateTime)]
    pub started_at: String,
    /// Clipped end (now, for a shift still open).
    #[schema(format = DateTime)]
    pub ended_at: String,
    /// Still running.
    pub open: bool,
    /// Seconds on shift.
    pub online_secs: i64,
    /// Seconds in break or away holding nothing.
    pub break_secs: i64,
    /// Seconds holding a ticket.
    pub engaged_secs: i64,
    /// Seconds paid.
    pub paid_secs: i64,
    /// Tickets completed.
    pub tickets_completed: i64,
    /// Rate at shift start.
    pub hourly_rate_cents: i64,
    /// Pay.
    pub pay_cents: i64,
    /// ISO 4217.
    pub currency: String,
}

impl From<ShiftRow> for ShiftView {
    fn from(r: ShiftRow) -> Self {
        Self {
            shift_id: r.shift_id,
            agent_id: r.agent_id,
            started_at: rfc3339(r.started_at),
            ended_at: rfc3339(r.ended_at),
            open: r.open,
            online_secs: r.online_secs,
            break_secs: r.break_secs,
            engaged_secs: r.engaged_secs,
            paid_secs: r.paid_secs,
            tickets_completed: r.tickets_completed,
            hourly_rate_cents: r.hourly_rate_cents,
            pay_cents: r.pay_cents,
            currency: r.currency,
        }
    }
}

impl ShiftView {
    /// The CSV record, in [`SHIFT_COLUMNS`] order.
    pub fn record(&self) -> [String; 13] {
        [
            self.shift_id.clone(),
            self.agent_id.clone(),
            self.started_at.clone(),
            self.ended_at.clone(),
            self.open.to_string(),
            self.online_secs.to_string(),
            self.break_secs.to_string(),
            self.engaged_secs.to_string(),
            self.paid_secs.to_string(),
            self.tickets_completed.to_string(),
            self.hourly_rate_cents.to_string(),
            self.pay_cents.to_string(),
            self.currency.clone(),
        ]
    }
}

/// The CSV record of a workday row, in [`WORKDAY_COLUMNS`] order.
pub fn workday_record(r: &WorkdayRow) -> [String; 10] {
    [
        r.agent_id.clone(),
        r.workday.to_string(),
        r.timezone.clone(),
        r.online_secs.to_string(),
        r.break_secs.to_string(),
        r.engaged_secs.to_string(),
        r.paid_secs.to_string(),
        r.tickets_completed.to_string(),
        r.pay_cents.to_string(),
        r.currency.clone(),
    ]
}

/// The CSV writer type of [`csv_writer`].
pub type CsvWriter<W> = csv::Writer<W>;

/// An RFC 4180 CSV writer (CRLF line ends, quoting only where needed) over `out`.
pub fn csv_writer<W: Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(out)
}

/// Renders records with a header as one CSV document.
pub fn csv_document<const N: usize>(
    header: [&str; N],
    records: impl IntoIterator<Item = [String; N]>,
) -> Vec<u8> {
    let mut w = csv_writer(Vec::new());
    // Writing to a Vec cannot fail; a failed record would only drop that record.
    let _ = w.write_record(header);
    for record in records {
        let _ = w.write_record(&record);
    }
    w.into_inner().unwrap_or_default()
}

/// A report's body as the client asked for it: its content type and bytes.
pub type Document = (&'static str, Vec<u8>);

/// The content type of CSV reports.
pub const CSV: &str = "text/csv; charset=utf-8";
/// The content type of JSON reports.
pub const JSON: &str = "application/json";

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `GET /v1/payroll/shifts` and `GET /v1/me/shifts` as JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShiftsReport<'a> {
    /// The window's start.
    #[schema(format = DateTime)]
    pub from: String,
    /// The window's end (exclusive).
    #[schema(format = DateTime)]
    pub to: String,
    /// Every shift overlapping the window, clipped to it.
    #[schema(value_type = Vec<ShiftView>)]
    pub shifts: &'a [ShiftView],
}

/// `GET /v1/payroll/workdays` as JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkdaysReport<'a> {
    /// The first local date.
    #[schema(format = Date)]
    pub from: String,
    /// The last local date (exclusive).
    #[schema(format = Date)]
    pub to: String,
    /// One row per agent and local workday.
    #[schema(value_type = Vec<WorkdayRow>)]
    pub workdays: &'a [WorkdayRow],
}

/// The shifts report (API.md §7): `{"from", "to", "shifts"}` as JSON, or the rows as CSV.
pub fn shifts_document(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    rows: &[ShiftView],
    csv: bool,
) -> Document {
    if csv {
        return (
            CSV,
            csv_document(SHIFT_COLUMNS, rows.iter().map(ShiftView::record)),
        );
    }
    let body = ShiftsReport {
        from: at(from),
        to: at(to),
        shifts: rows,
    };
    (JSON, serde_json::to_vec(&body).unwrap_or_default())
}

/// The workdays report: `{"from", "to", "workdays"}` as JSON, or the rows as CSV.
pub fn workdays_document(
    from: NaiveDate,
    to: NaiveDate,
    rows: &[WorkdayRow],
    csv: bool,
) -> Document {
    if csv {
        return (
            CSV,
            csv_document(WORKDAY_COLUMNS, rows.iter().map(workday_record)),
        );
    }
    let body = WorkdaysReport {
        from: from.to_string(),
        to: to.to_string(),
        workdays: rows,
    };
    (JSON, serde_json::to_vec(&body).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_beyond_the_years_0001_to_9999_are_422_not_a_panic() {
        for (from, to) in [
            ("+262142-12-01", "+262142-12-31"),
            ("-262143-01-01", "-262143-01-02"),
            ("0000-01-01", "0000-01-02"),
            ("9999-12-31", "+10000-01-01"),
        ] {
            let e = date_window(Some(from), Some(to)).expect_err("out of range");
            assert_eq!(e.code, ErrorCode::InvalidField, "{from}..{to}: {e}");
        }
        assert!(date_window(Some("9999-12-01"), Some("9999-12-31")).is_ok());
        let e = time_window(
            Some("9999-12-31T23:00:00-23:00"),
            Some("9999-12-31T23:30:00-23:00"),
        )
        .expect_err("year 10000 in UTC");
        assert_eq!(e.code, ErrorCode::InvalidField, "{e}");
        let e = time_window(Some("0000-01-01T00:00:00Z"), Some("0000-01-02T00:00:00Z"))
            .expect_err("year 0");
        assert!(e.detail.starts_with("from"), "{e}");
    }

    #[test]
    fn windows_are_checked() {
        let ok = time_window(Some("2026-11-01T00:00:00Z"), Some("2026-11-02T00:00:00Z"));
        assert!(ok.is_ok());
        let e = time_window(None, Some("2026-11-02T00:00:00Z")).expect_err("missing");
        assert_eq!(e.code, ErrorCode::MalformedQuery);
        let e = time_window(Some("yesterday"), Some("2026-11-02T00:00:00Z")).expect_err("bad");
        assert_eq!(e.code, ErrorCode::MalformedQuery);
        let e = time_window(Some("2026-11-02T00:00:00Z"), Some("2026-11-01T00:00:00Z"))
            .expect_err("reversed");
        assert_eq!(e.code, ErrorCode::InvalidField);
        let e = time_window(Some("2026-01-01T00:00:00Z"), Some("2026-04-05T00:00:00Z"))
            .expect_err("94 days");
        assert_eq!(e.code, ErrorCode::InvalidField);
        assert!(time_window(Some("2026-01-01T00:00:00Z"), Some("2026-04-04T00:00:00Z")).is_ok());
        assert!(date_window(Some("2026-11-01"), Some("2026-11-30")).is_ok());
        assert!(date_window(Some("2026-11-30"), Some("2026-11-01")).is_err());
        assert!(date_window(Some("2026-13-01"), Some("2026-11-01")).is_err());
    }

    #[test]
    fn csv_is_rfc_4180_with_the_contract_header() {
        let doc = csv_document(["a", "b"], [["x,y".to_owned(), "say \"hi\"".to_owned()]]);
        assert_eq!(
            String::from_utf8(doc).expect("utf-8"),
            "a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(SHIFT_COLUMNS.join(","), "shift_id,agent_id,started_at,ended_at,open,online_secs,break_secs,engaged_secs,paid_secs,tickets_completed,hourly_rate_cents,pay_cents,currency");
    }
}
