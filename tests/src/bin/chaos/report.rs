//! After the last fault: the load stops, every ticket finishes, the ledger catches up, and
//! the checks make the report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::Instant;

use super::faults::Fault;
use super::fleet::{agent_id, Record};
use super::{say, World};

/// One phase's times.
pub struct Phase {
    pub fault: Fault,
    pub start: Instant,
    pub healed: Instant,
    pub end: Instant,
}

/// Stops the load, lets everything finish, and checks; the report to print.
pub async fn finish(
    world: &World,
    phases: &[Phase],
    ns: &str,
    began: Instant,
    ended: Instant,
) -> String {
    world.fleet.stop_load();
    say("load stopped; waiting for every ticket to finish");
    let finals = drain(world).await;
    world.fleet.stop();
    let left = Instant::now();
    while world.fleet.connected.load(Ordering::Relaxed) > 0
        && left.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let completed = finals
        .values()
        .filter(|s| s.as_str() == "completed")
        .count();
    say("waiting for the ledger to store every shift and completion");
    let q = |sql: &str| world.pg.query(&sql.replace("$NS", ns));
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(90) {
        let open = q("SELECT count(*) FROM shifts WHERE namespace = '$NS' AND ended_at IS NULL");
        let done = q("SELECT count(*) FROM ticket_completions WHERE namespace = '$NS'");
        if open == "0" && done == completed.to_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Taken last: the agents' tasks take it too, and no await may follow.
    let rec = world
        .fleet
        .record
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = String::new();
    let mut fail = false;
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "{:<34} {:>7} {:>5} {:>7} {:>9} {:>12}",
        "fault", "tickets", "lost", "doubled", "recovery", "quiet agents"
    ));
    for p in phases {
        let tickets: Vec<&String> = rec
            .posted
            .iter()
            .filter(|(_, &at)| at >= p.start && at < p.end)
            .map(|(id, _)| id)
            .collect();
        let lost = tickets
            .iter()
            .filter(|id| finals.get(id.as_str()).is_none_or(|s| s != "completed"))
            .count();
        let doubled = tickets
            .iter()
            .filter(|id| rec.assigned.get(id.as_str()).is_some_and(|a| a.len() > 1))
            .count();
        let recovery = rec
            .offered
            .iter()
            .filter(|(id, &at)| {
                at >= p.healed && rec.posted.get(id.as_str()).is_some_and(|&t| t >= p.healed)
            })
            .map(|(_, &at)| at - p.healed)
            .min();
        let window = p.healed + Duration::from_secs(10);
        let quiet = (0..rec.offers.len())
            .filter(|&i| !matches!(p.fault, Fault::StopsReading(_)) || i != 0)
            .filter(|&i| !rec.dropped[i].iter().any(|&d| d >= p.start && d < window))
            .filter(|&i| !rec.offers[i].iter().any(|&o| o >= p.healed && o < window))
            .collect::<Vec<_>>();
        if let Some(&first) = quiet.first() {
            let ids: Vec<String> = quiet.iter().take(5).map(|&i| agent_id(i)).collect();
            say(&format!(
                "{}: no offer within 10 s for {} agents, e.g. {ids:?}",
                p.fault.name(),
                quiet.len()
            ));
            explain_quiet(&rec, p, first);
        }
        let quiet = quiet.len();
        fail |= lost > 0 || doubled > 0 || quiet > 0;
        line(format!(
            "{:<34} {:>7} {:>5} {:>7} {:>9} {:>12}",
            p.fault.name(),
            tickets.len(),
            lost,
            doubled,
            recovery.map_or("none".into(), |r| format!("{:.2} s", r.as_secs_f64())),
            quiet
        ));
    }
    let unknown = finals.values().filter(|s| s.as_str() == "404").count();
    let overlap = q("SELECT coalesce(sum(extract(epoch FROM least(a.ended_at, b.ended_at) - greatest(a.started_at, b.started_at))), 0)::float8 \
         FROM shifts a JOIN shifts b ON a.namespace = b.namespace AND a.agent_id = b.agent_id AND a.shift_id < b.shift_id \
         WHERE a.namespace = '$NS' AND a.started_at < b.ended_at AND b.started_at < a.ended_at");
    let open = q("SELECT count(*) FROM shifts WHERE namespace = '$NS' AND ended_at IS NULL");
    let recovered = q("SELECT count(*) FROM shifts WHERE namespace = '$NS' AND recovered");
    let shifts = q("SELECT count(*) FROM shifts WHERE namespace = '$NS'");
    let too_long = q(&format!(
        "SELECT count(*) FROM (SELECT agent_id FROM shifts WHERE namespace = '$NS' GROUP BY agent_id \
         HAVING sum(extract(epoch FROM ended_at - started_at)) > {}) t",
        (ended - began).as_secs() + 120
    ));
    let completions = q("SELECT count(*) FROM ticket_completions WHERE namespace = '$NS'");
    let gaps = q("SELECT count(*) FROM ledger_gaps WHERE namespace = '$NS'");
    let posted = rec.posted.len();
    let doubled_all = rec.assigned.values().filter(|a| a.len() > 1).count();
    fail |= unknown > 0 || completed != posted || doubled_all > 0 || !rec.refused.is_empty();
    // Unrounded: a double-paid millisecond fails too.
    fail |= overlap.parse::<f64>().map_or(true, |o| o > 0.0)
        || open != "0"
        || too_long != "0"
        || completions != completed.to_string()
        || gaps != "0";
    line(String::new());
    line(format!(
        "tickets answered 201: {posted}; completed: {completed}; unknown at the end: {unknown}; \
         assigned to two agents: {doubled_all}; POSTs given up: {}",
        rec.refused.len()
    ));
    line(format!(
        "ledger: {shifts} shifts ({recovered} recovered), open: {open}, seconds paid twice: {overlap}, \
         agents with more shift time than the run: {too_long}, completions: {completions} (tickets completed: {completed}), gaps: {gaps}"
    ));
    line(if fail { "FAIL".into() } else { "PASS".into() });
    out
}

/// Waits (at most 3 minutes) until every ticket answered 201 is completed; the last status of
/// each (`404` for one unknown).
async fn drain(world: &World) -> HashMap<String, String> {
    let http = reqwest::Client::new();
    let token = e2e::token("escalation", "chaos");
    let base = world.dispatchers[1].base.clone();
    let mut finals = HashMap::new();
    let began = Instant::now();
    // POSTs still retrying finish within their two minutes.
    while world.fleet.posting() && began.elapsed() < Duration::from_secs(130) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let ids: Vec<String> = {
            let rec = world
                .fleet
                .record
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            rec.posted.keys().cloned().collect()
        };
        let pending: Vec<String> = ids
            .into_iter()
            .filter(|id| finals.get(id).is_none_or(|s: &String| s != "completed"))
            .collect();
        let answers: Vec<(String, String)> = futures_util::stream::iter(pending)
            .map(|id| {
                let (http, token, base) = (&http, &token, &base);
                async move {
                    let a = http
                        .get(format!("{base}/v1/tickets/{id}"))
                        .bearer_auth(token)
                        .send()
                        .await;
                    let status = match a {
                        Ok(a) if a.status() == 404 => "404".to_owned(),
                        Ok(a) => a
                            .json::<Value>()
                            .await
                            .ok()
                            .and_then(|v| v["status"].as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        Err(_) => String::new(),
                    };
                    (id, status)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let open: HashSet<&str> = answers
            .iter()
            .filter(|(_, s)| s != "completed")
            .map(|(id, _)| id.as_str())
            .collect();
        let done = open.is_empty();
        finals.extend(answers);
        if done || began.elapsed() > Duration::from_secs(180) {
            return finals;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// What the fleet saw around a phase whose agents went without offers: offers, welcomes and
/// errors, in all and for agent `i`.
fn explain_quiet(rec: &Record, p: &Phase, i: usize) {
    let window = p.healed + Duration::from_secs(10);
    let since = |t: Instant| format!("{:.2}", t.saturating_duration_since(p.start).as_secs_f64());
    let offers: usize = rec
        .offers
        .iter()
        .map(|o| o.iter().filter(|&&t| t >= p.healed && t < window).count())
        .sum();
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    for (t, _, code) in &rec.errors {
        if *t >= p.start && *t < window {
            *errors.entry(code.as_str()).or_default() += 1;
        }
    }
    let welcomes = rec
        .welcomes
        .iter()
        .filter(|(t, _)| *t >= p.start && *t < window)
        .count();
    say(&format!(
        "  healed {} s into the phase; {offers} offers in the 10 s after; since the fault \
         {welcomes} welcomes, errors {errors:?}",
        since(p.healed)
    ));
    let mine = |v: &[Instant]| -> Vec<String> {
        v.iter()
            .filter(|&&t| t >= p.start)
            .take(6)
            .map(|&t| since(t))
            .collect()
    };
    let my_errors: Vec<String> = rec
        .errors
        .iter()
        .filter(|(t, a, _)| *a == i && *t >= p.start)
        .take(6)
        .map(|(t, _, c)| format!("{} {c}", since(*t)))
        .collect();
    let my_welcomes: Vec<Instant> = rec
        .welcomes
        .iter()
        .filter(|(_, a)| *a == i)
        .map(|(t, _)| *t)
        .collect();
    say(&format!(
        "  {}: offers at {:?}, welcomes at {:?}, errors {my_errors:?} (s into the phase)",
        agent_id(i),
        mine(&rec.offers[i]),
        mine(&my_welcomes),
    ));
}
