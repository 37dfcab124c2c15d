//! `dispatcher export-shifts`: the payroll run's export, read straight from PostgreSQL.
//!
//! Rows stream from the database to the output one at a time, so memory stays flat however many
//! there are; on a terminal a progress bar on stderr shows how far it is.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use ledger::arith::{shift_row, Window};
use ledger::report::{self, ShiftView};
use ledger::Ledger;
use shared::config::LedgerSettings;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180 CSV with the contract's header.
    Csv,
    /// The JSON shape of `GET /v1/payroll/shifts`.
    Json,
}

/// What to export.
#[derive(Debug, Clone)]
pub struct Export {
    /// Window start.
    pub from: DateTime<Utc>,
    /// Window end (exclusive).
    pub to: DateTime<Utc>,
    /// Only this agent.
    pub agent_id: Option<String>,
    /// CSV or JSON.
    pub format: Format,
}

/// Parses `--from … --to … [--format csv|json] [--output FILE] [--agent-id ID]`.
pub fn parse_args(args: &[String]) -> Result<(Export, Option<String>), String> {
    let (mut from, mut to, mut format, mut output, mut agent_id) =
        (None, None, Format::Csv, None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--from" => from = Some(value.clone()),
            "--to" => to = Some(value.clone()),
            "--output" => output = Some(value.clone()),
            "--agent-id" => agent_id = Some(value.clone()),
            "--format" => {
                format = match value.as_str() {
                    "csv" => Format::Csv,
                    "json" => Format::Json,
                    other => return Err(format!("--format {other:?}: csv or json")),
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let (from, to) = report::time_window(from.as_deref(), to.as_deref())
        .map_err(|e| format!("--{}", e.detail))?;
    Ok((
        Export {
            from,
            to,
            agent_id,
            format,
        },
        output,
    ))
}

/// Writes the export to `out`; returns how many shift rows were written.
pub async fn run(
    ledger: &Ledger,
    export: &Export,
    breaks_paid: bool,
    out: &mut dyn Write,
    progress: &ProgressBar,
) -> Result<u64, String> {
    let now = Utc::now().timestamp();
    let window = Window {
        from: export.from.timestamp(),
        to: export.to.timestamp(),
    };
    let agent = export.agent_id.as_deref();
    let total = ledger
        .count_shifts(export.from, export.to, agent)
        .await
        .map_err(|e| e.to_string())?;
    progress.set_length(total);
    let mut sink = match export.format {
        Format::Csv => {
            let mut w = report::csv_writer(out);
            w.write_record(report::SHIFT_COLUMNS)
                .map_err(|e| e.to_string())?;
            Sink::Csv(Box::new(w))
        }
        Format::Json => {
            let at = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
            write!(
                out,
                "{{\"from\":\"{}\",\"to\":\"{}\",\"shifts\":[",
                at(export.from),
                at(export.to)
            )
            .map_err(io)?;
            Sink::Json(out)
        }
    };
    let mut rows = ledger.shifts(export.from, export.to, agent);
    let mut written = 0u64;
    while let Some(shift) = rows.next().await {
        let shift = shift.map_err(|e| e.to_string())?;
        progress.inc(1);
        let Some(row) = shift_row(&shift, window, now, breaks_paid) else {
            continue;
        };
        sink.write(&ShiftView::from(row), written == 0)?;
        written += 1;
    }
    sink.finish()?;
    Ok(written)
}

fn io(e: std::io::Error) -> String {
    format!("cannot write the export: {e}")
}

/// Where rows go: a CSV writer, or the JSON array being written.
enum Sink<'a> {
    Csv(Box<report::CsvWriter<&'a mut dyn Write>>),
    Json(&'a mut dyn Write),
}

impl Sink<'_> {
    fn write(&mut self, row: &ShiftView, first: bool) -> Result<(), String> {
        match self {
            Sink::Csv(w) => w.write_record(row.record()).map_err(|e| e.to_string()),
            Sink::Json(out) => {
                if !first {
                    out.write_all(b",").map_err(io)?;
                }
                serde_json::to_writer(&mut **out, row).map_err(|e| e.to_string())
            }
        }
    }

    fn finish(self) -> Result<(), String> {
        match self {
            Sink::Csv(mut w) => w.flush().map_err(io),
            Sink::Json(out) => out.write_all(b"]}\n").map_err(io),
        }
    }
}

/// The `export-shifts` command: exit code 0, or 2 for bad arguments, 1 for a failure.
pub fn main(args: &[String]) -> std::process::ExitCode {
    use std::process::ExitCode;
    let fail = |code: u8, msg: String| {
        eprintln!("dispatcher export-shifts: {msg}");
        ExitCode::from(code)
    };
    let (export, output) = match parse_args(args) {
        Ok(parsed) => parsed,
        Err(e) => return fail(2, format!("{e}\nusage: dispatcher export-shifts --from RFC3339 --to RFC3339 [--format csv|json] [--output FILE] [--agent-id ID]")),
    };
    let settings = match LedgerSettings::from_env() {
        Ok(s) => s,
        Err(e) => return fail(2, e.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("cannot start the runtime: {e}")),
    };
    // The pool spawns its upkeep on the runtime it is created in.
    let _runtime = runtime.enter();
    let ledger = match Ledger::open(&settings.database_url, &settings.namespace) {
        Ok(l) => l,
        Err(e) => return fail(2, format!("DATABASE_URL: {e}")),
    };
    let mut out: Box<dyn Write> = match &output {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Box::new(std::io::BufWriter::with_capacity(1 << 16, f)),
            Err(e) => return fail(1, format!("cannot create {path}: {e}")),
        },
        None => Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout().lock(),
        )),
    };
    let progress = ProgressBar::new(0);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} shifts  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let result = runtime.block_on(run(
        &ledger,
        &export,
        settings.breaks_paid,
        &mut out,
        &progress,
    ));
    progress.finish_and_clear();
    let flushed = out.flush();
    match (result, flushed) {
        (Ok(n), Ok(())) => {
            if let Some(path) = output {
                eprintln!("dispatcher export-shifts: {n} shifts written to {path}");
            }
            ExitCode::SUCCESS
        }
        (Err(e), _) => fail(1, e),
        (_, Err(e)) => fail(1, format!("cannot write the export: {e}")),
    }
}
