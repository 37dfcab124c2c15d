//! The dispatch target's end-state check: every ticket the generator posted is assigned,
//! completed, cancelled or still queued with a reason, none twice, and the event stream's
//! assignments agree with the `assigned` frames the agents got.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::common::Rng;
use crate::dispatch::{dispatcher_url, mint};
use crate::record::Ctx;

/// Waits (at most 5 s) until every ticket of this run the stream has assigned has had its
/// `assigned` frame at an agent.
async fn frames_of(ctx: &Ctx, assigned: &HashMap<String, Vec<String>>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let missing = {
            let col = ctx.col();
            let seen: HashSet<&str> = col
                .recs
                .values()
                .filter(|r| !r.assigned_to.is_empty())
                .filter_map(|r| r.ticket_id.as_deref())
                .collect();
            let ours: HashSet<&str> = col
                .recs
                .values()
                .filter_map(|r| r.ticket_id.as_deref())
                .collect();
            assigned
                .keys()
                .filter(|t| ours.contains(t.as_str()) && !seen.contains(t.as_str()))
                .count()
        };
        if missing == 0 || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The correctness check: `GET /v1/tickets/{id}` for every ticket (or a random 2000, plus up
/// to 2000 the generator did not see assigned) and the event stream's `ticket_assigned`s.
pub async fn check(ctx: &Ctx, client: &reqwest::Client) -> Value {
    // The stream first: an assignment it holds whose `assigned` frame is still on its way (the
    // system is live while this runs) is waited for, so that only a frame that never comes is
    // a mismatch.
    let stream = crate::stream::assigned_events(ctx).await;
    if let Ok((events, _)) = &stream {
        frames_of(ctx, events).await;
    }
    // (seq, ticket id, agents it was assigned to, declines, offers, ignored-pending)
    let tickets: Vec<(u64, String, Vec<u32>, u32, u32, bool)> = {
        let col = ctx.col();
        let mut v: Vec<_> = col
            .recs
            .iter()
            .filter(|(_, r)| r.posted)
            .filter_map(|(seq, r)| {
                r.ticket_id.clone().map(|id| {
                    (
                        *seq,
                        id,
                        r.assigned_to.clone(),
                        r.declines,
                        r.offers,
                        r.ignored_pending,
                    )
                })
            })
            .collect();
        v.sort_by_key(|t| t.0);
        v
    };
    let mut problems: Vec<String> = Vec::new();
    let mut assigned_twice: HashSet<String> = HashSet::new();
    let mut mismatches = 0usize;
    for (_, id, to, ..) in &tickets {
        if to.len() > 1 {
            assigned_twice.insert(id.clone());
            let names: Vec<&str> = to
                .iter()
                .map(|i| ctx.specs[*i as usize].id.as_str())
                .collect();
            problems.push(format!("{id}: `assigned` reached {names:?}"));
        }
    }

    // The sample to GET.
    let mut rng = Rng::new(ctx.args.seed ^ 0x0063_6865_636B);
    let mut sample: Vec<usize> = (0..tickets.len()).collect();
    if sample.len() > 2000 {
        for i in 0..2000 {
            let j = i + rng.below(sample.len() - i);
            sample.swap(i, j);
        }
        sample.truncate(2000);
        let chosen: HashSet<usize> = sample.iter().copied().collect();
        let extra: Vec<usize> = (0..tickets.len())
            .filter(|i| tickets[*i].2.is_empty() && !chosen.contains(i))
            .take(2000)
            .collect();
        sample.extend(extra);
    }
    let token = mint(ctx, "loadgen", "escalation");
    let gets = futures_util::stream::iter(sample.iter().map(|&i| {
        let id = tickets[i].1.clone();
        let req = client
            .get(dispatcher_url(ctx, i, &format!("/v1/tickets/{id}")))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(10));
        async move {
            let res = match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    Ok((status, body))
                }
                Err(e) => Err(e.to_string()),
            };
            (i, res)
        }
    }))
    .buffer_unordered(32)
    .collect::<Vec<_>>();
    let answers = tokio::time::timeout(Duration::from_secs(180), gets)
        .await
        .unwrap_or_default();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut lost = 0usize;
    let mut still_queued = 0usize;
    let mut unreadable = 0usize;
    for (i, res) in &answers {
        let (_, id, to, declines, offers, ignored) = &tickets[*i];
        let (code, body) = match res {
            Ok(x) => x,
            Err(e) => {
                unreadable += 1;
                if unreadable <= 5 {
                    problems.push(format!("{id}: GET failed: {e}"));
                }
                continue;
            }
        };
        let status = body["status"].as_str().unwrap_or_default();
        if *code != 200 {
            lost += 1;
            problems.push(format!("{id}: GET answered {code}: {body}"));
            continue;
        }
        *statuses.entry(status.to_owned()).or_default() += 1;
        match status {
            "assigned" | "completed" | "cancelled" => {}
            "queued" | "offered" => {
                still_queued += 1;
                if !to.is_empty() {
                    mismatches += 1;
                    problems.push(format!(
                        "{id}: an agent got `assigned` but the ticket is {status}"
                    ));
                }
                let reason = if status == "offered" && *ignored {
                    "offer ignored by the agent, waiting for it to expire"
                } else if status == "offered" {
                    "offer outstanding"
                } else if *declines > 0 {
                    "declined, waiting for another eligible agent"
                } else if *offers == 0 {
                    "no eligible agent free yet"
                } else {
                    "back in the queue after an expired offer"
                };
                *reasons.entry(reason).or_default() += 1;
            }
            other => {
                lost += 1;
                problems.push(format!("{id}: unexpected status {other:?}"));
            }
        }
    }
    if answers.len() < sample.len() {
        problems.push(format!(
            "only {} of {} tickets could be read within 180 s",
            answers.len(),
            sample.len()
        ));
    }

    // The event stream.
    let wanted: HashSet<&str> = tickets.iter().map(|t| t.1.as_str()).collect();
    let mut stream_assigned = 0usize;
    let mut events_read = 0usize;
    match stream {
        Ok((mut events, read)) => {
            events.retain(|ticket, _| wanted.contains(ticket.as_str()));
            events_read = read;
            stream_assigned = events.len();
            for (_, id, to, ..) in &tickets {
                let agents = events.get(id).map(Vec::as_slice).unwrap_or_default();
                if agents.len() > 1 {
                    assigned_twice.insert(id.clone());
                    problems.push(format!("{id}: {} ticket_assigned events", agents.len()));
                }
                match (agents.first(), to.first()) {
                    (Some(a), Some(mine)) if *a != ctx.specs[*mine as usize].id => {
                        mismatches += 1;
                        problems.push(format!(
                            "{id}: the stream says assigned to {a}, but {} got `assigned`",
                            ctx.specs[*mine as usize].id
                        ));
                    }
                    (Some(a), None) => {
                        mismatches += 1;
                        problems.push(format!(
                            "{id}: ticket_assigned to {a} in the stream, but no agent got `assigned`"
                        ));
                    }
                    (None, Some(mine)) => {
                        mismatches += 1;
                        problems.push(format!(
                            "{id}: {} got `assigned` but the stream has no ticket_assigned",
                            ctx.specs[*mine as usize].id
                        ));
                    }
                    _ => {}
                }
            }
        }
        Err(e) => problems.push(format!("event stream not read: {e}")),
    }
    let total_problems = problems.len();
    problems.truncate(50);
    if total_problems > 50 {
        problems.push(format!("… and {} more", total_problems - 50));
    }
    json!({
        "ok": lost == 0 && assigned_twice.is_empty() && mismatches == 0 && unreadable == 0,
        "lost": lost,
        "assigned_twice": assigned_twice.len(),
        "still_queued": still_queued,
        "problems": problems,
        "checked": answers.len(),
        "statuses": statuses,
        "still_queued_reasons": reasons,
        "stream_assigned": stream_assigned,
        "stream_events_read": events_read,
        "mismatches": mismatches,
    })
}
