//! Batching changes nothing: a stream of shift events applied as one batch leaves exactly the
//! ledger that applying it one event at a time does, and so does any cut into batches, and a
//! replay of it. Runs against the real PostgreSQL (`DATABASE_URL`, default the local `dispatch`
//! database), a fresh namespace per case.

use std::collections::HashMap;
use std::sync::OnceLock;

use ledger::batch::apply_events;
use ledger::Ledger;
use proptest::prelude::*;
use shared::events::{StreamEvent as Event, StreamId};
use sqlx::PgPool;

const AGENTS: [&str; 2] = ["b-1", "b-2"];

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/dispatch".to_owned())
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// One generated step of an agent's working day.
#[derive(Debug, Clone)]
enum Step {
    Start,
    Status(&'static str),
    Assign,
    Complete,
    Requeue,
    Cancel,
    Connected,
    Disconnected,
    End(&'static str),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Start),
        2 => prop::sample::select(vec!["available", "break", "away"]).prop_map(Step::Status),
        4 => Just(Step::Assign),
        3 => Just(Step::Complete),
        1 => Just(Step::Requeue),
        1 => Just(Step::Cancel),
        1 => Just(Step::Connected),
        1 => Just(Step::Disconnected),
        1 => prop::sample::select(vec!["requested", "disconnected", "removed"]).prop_map(Step::End),
    ]
}

/// What the generator knows of an agent, to emit events the store could have emitted.
#[derive(Default)]
struct Agent {
    shift: Option<String>,
    held: Vec<String>,
}

/// Turns (agent, step, time advance) triples into stream events with increasing ids; times
/// advance by 0 to 3 s, so some changes land in the same second.
fn events(steps: &[(usize, Step, u16)]) -> Vec<Event> {
    let mut agents: Vec<Agent> = AGENTS.iter().map(|_| Agent::default()).collect();
    let mut out = Vec::new();
    let mut ms: i64 = 1_780_000_000_000;
    let (mut tickets, mut shifts) = (0, 0);
    for (a, step, advance) in steps {
        ms += i64::from(*advance);
        let id = AGENTS[*a];
        let agent = &mut agents[*a];
        let mut fields: Vec<(&str, String)> = vec![("agent", id.to_owned())];
        let kind = match (step, &agent.shift) {
            // With a shift open, a start is what the store emits after Redis lost the end
            // (the ledger closes the open shift as recovered).
            (Step::Start, _) => {
                shifts += 1;
                let shift = format!("s-{shifts}");
                fields.extend([
                    ("shift", shift.clone()),
                    ("rate", "1650".to_owned()),
                    ("currency", "EUR".to_owned()),
                    ("tz", "Europe/Stockholm".to_owned()),
                ]);
                agent.shift = Some(shift);
                agent.held.clear();
                "shift_started"
            }
            (Step::Status(s), Some(shift)) => {
                fields.extend([
                    ("status", (*s).to_owned()),
                    ("reason", "requested".to_owned()),
                    ("shift", shift.clone()),
                ]);
                "agent_status"
            }
            (Step::Assign, Some(shift)) => {
                tickets += 1;
                let ticket = format!("t-{tickets}");
                fields.extend([
                    ("ticket", ticket.clone()),
                    ("offer", format!("o-{tickets}")),
                    ("shift", shift.clone()),
                ]);
                agent.held.push(ticket);
                "ticket_assigned"
            }
            (Step::Complete, Some(shift)) if !agent.held.is_empty() => {
                let ticket = agent.held.remove(0);
                fields.extend([
                    ("ticket", ticket),
                    ("outcome", "resolved".to_owned()),
                    ("shift", shift.clone()),
                ]);
                "ticket_completed"
            }
            (Step::Requeue, Some(_)) if !agent.held.is_empty() => {
                fields.push(("ticket", agent.held.remove(0)));
                "ticket_requeued"
            }
            (Step::Cancel, Some(_)) if !agent.held.is_empty() => {
                fields.extend([
                    ("ticket", agent.held.remove(0)),
                    ("was", "assigned".to_owned()),
                ]);
                "ticket_cancelled"
            }
            (Step::Connected, _) => {
                fields.push(("conn", "c".to_owned()));
                "agent_connected"
            }
            (Step::Disconnected, _) => {
                fields.extend([("conn", "c".to_owned()), ("at", ms.to_string())]);
                "agent_disconnected"
            }
            (Step::End(reason), Some(shift)) => {
                // As the store does: held tickets go back first, then the shift ends.
                for ticket in std::mem::take(&mut agent.held) {
                    out.push(event(
                        ms,
                        "ticket_requeued",
                        &[("agent", id.to_owned()), ("ticket", ticket)],
                    ));
                }
                fields.extend([
                    ("shift", shift.clone()),
                    ("ended_at", ms.to_string()),
                    ("reason", (*reason).to_owned()),
                ]);
                agent.shift = None;
                "shift_ended"
            }
            _ => continue,
        };
        out.push(event(ms, kind, &fields));
    }
    // Stream ids increase: the sequence part numbers events within a millisecond.
    let mut last = (0, 0);
    for e in &mut out {
        e.id.seq = if e.id.ms == last.0 { last.1 + 1 } else { 0 };
        last = (e.id.ms, e.id.seq);
    }
    out
}

fn event(ms: i64, kind: &str, fields: &[(&str, String)]) -> Event {
    let mut map: HashMap<String, String> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    map.insert("type".into(), kind.into());
    map.insert("ts".into(), ms.to_string());
    Event::parse(StreamId { ms, seq: 0 }, &map)
        .expect("the generator writes events the store could")
}

/// Applies `events` in batches cut at `cuts` (positions), each batch in its own transaction.
async fn apply_in(pool: &PgPool, ns: &str, events: &[Event], cuts: &[usize]) {
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (events.len() + 1)).collect();
    bounds.extend([0, events.len()]);
    bounds.sort_unstable();
    bounds.dedup();
    for w in bounds.windows(2) {
        let mut tx = pool.begin().await.expect("begin");
        apply_events(&mut tx, ns, &events[w[0]..w[1]])
            .await
            .expect("the batch applies");
        tx.commit().await.expect("commit");
    }
}

/// Everything the ledger holds for `ns`, row by row.
async fn dump(pool: &PgPool, ns: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT r FROM (
           SELECT 'shift ' || shift_id || ' ' || agent_id || ' ' || started_at || ' '
                  || coalesce(ended_at::text, '-') || ' ' || coalesce(end_reason, '-') || ' '
                  || recovered || ' ' || status || ' ' || active_tickets || ' '
                  || last_seen_at || ' ' || last_event_ms || '-' || last_event_seq AS r
             FROM shifts WHERE namespace = $1
           UNION ALL
           SELECT 'segment ' || shift_id || ' ' || started_at || ' '
                  || coalesce(ended_at::text, '-') || ' ' || kind
             FROM shift_segments WHERE namespace = $1
           UNION ALL
           SELECT 'completion ' || ticket_id || ' ' || agent_id || ' ' || shift_id || ' '
                  || completed_at || ' ' || outcome
             FROM ticket_completions WHERE namespace = $1) d ORDER BY r",
    )
    .bind(ns)
    .fetch_all(pool)
    .await
    .expect("dump")
}

async fn delete(pool: &PgPool, ns: &str) {
    for statement in [
        "DELETE FROM ticket_completions WHERE namespace = $1",
        "DELETE FROM shift_segments WHERE namespace = $1",
        "DELETE FROM shifts WHERE namespace = $1",
    ] {
        sqlx::query(statement)
            .bind(ns)
            .execute(pool)
            .await
            .expect("delete");
    }
}

async fn pool() -> PgPool {
    static MIGRATED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let ledger = Ledger::open(&database_url(), "batch-test").expect("database url");
    MIGRATED
        .get_or_init(|| async { ledger.migrate().await.expect("migrations apply") })
        .await;
    ledger.pool().clone()
}

async fn run_case(steps: Vec<(usize, Step, u16)>, cuts: Vec<usize>) -> Result<(), String> {
    let events = events(&steps);
    let pool = pool().await;
    let base = format!("batch-{}", uuid_like());
    let (whole, single, cut) = (
        format!("{base}-whole"),
        format!("{base}-single"),
        format!("{base}-cut"),
    );
    apply_in(&pool, &whole, &events, &[]).await;
    let each: Vec<usize> = (0..events.len()).collect();
    apply_in(&pool, &single, &events, &each).await;
    apply_in(&pool, &cut, &events, &cuts).await;
    let want = dump(&pool, &single).await;
    let got_whole = dump(&pool, &whole).await;
    let got_cut = dump(&pool, &cut).await;
    // A replay of everything (an offset reset) changes nothing.
    apply_in(&pool, &whole, &events, &[]).await;
    let replayed = dump(&pool, &whole).await;
    for ns in [&whole, &single, &cut] {
        delete(&pool, ns).await;
    }
    let names: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e.id.ms,
                e.event.kind().as_str(),
                e.event.agent().unwrap_or_default()
            )
        })
        .collect();
    if got_whole != want {
        return Err(format!(
            "one batch differs from one event at a time\nevents: {names:#?}\none at a time: {want:#?}\none batch: {got_whole:#?}"
        ));
    }
    if got_cut != want {
        return Err(format!(
            "batches cut at {cuts:?} differ from one event at a time\nevents: {names:#?}\none at a time: {want:#?}\ncut: {got_cut:#?}"
        ));
    }
    if replayed != want {
        return Err(format!(
            "a replay changed the ledger\nbefore: {want:#?}\nafter: {replayed:#?}"
        ));
    }
    Ok(())
}

/// A namespace suffix unique across test processes.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn batches_apply_exactly_as_single_events(
        steps in prop::collection::vec((0usize..2, step(), 0u16..3000), 1..60),
        cuts in prop::collection::vec(0usize..80, 0..4),
    ) {
        runtime().block_on(run_case(steps, cuts)).map_err(TestCaseError::fail)?;
    }
}
