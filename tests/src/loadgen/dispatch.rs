//! The dispatch target: agents on the roster (`PUT /v1/agents`), connected to agent-app-api
//! over WebSockets; tickets posted to the dispatcher; the end state checked with
//! `GET /v1/tickets/{id}` and the namespace's event stream.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::loopback_addr;
use crate::common::{
    connect_agent, gateway_ws_url, now_us, parse_summary, ticket_body, Ctx, Rng, Role, TicketMix,
};

const TOKEN_TTL: i64 = 24 * 3600;

fn mint(ctx: &Ctx, sub: &str, role: &str) -> String {
    shared::auth::mint_hs256(&ctx.args.secret, sub, role, "dispatch", TOKEN_TTL)
}

fn dispatcher_url(ctx: &Ctx, i: usize, path: &str) -> String {
    let d = &ctx.args.dispatchers[i % ctx.args.dispatchers.len()];
    format!("{}{path}", d.trim_end_matches('/'))
}

/// An HTTP client for many concurrent requests to loopback services.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .tcp_nodelay(true)
        .build()
        .expect("an HTTP client")
}

/// Puts every agent on the roster (`PUT /v1/agents/{id}`, admin token), `--put-concurrency`
/// at a time. Returns how many failed.
pub async fn create_agents(ctx: &Arc<Ctx>, client: &reqwest::Client) -> usize {
    let token = mint(ctx, "loadgen", "admin");
    let started = Instant::now();
    let mut last_note = Instant::now();
    let mut failed = 0usize;
    let mut done = 0usize;
    let mut puts = futures_util::stream::iter(ctx.specs.iter().enumerate().map(|(i, spec)| {
        let req = client
            .put(dispatcher_url(ctx, i, &format!("/v1/agents/{}", spec.id)))
            .bearer_auth(&token)
            .json(&spec.profile())
            .timeout(Duration::from_secs(30));
        async move {
            match req.send().await {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => Some(format!("{}: {}", spec.id, r.status())),
                Err(e) => Some(format!("{}: {e}", spec.id)),
            }
        }
    }))
    .buffer_unordered(ctx.args.put_concurrency);
    while let Some(res) = puts.next().await {
        done += 1;
        if let Some(why) = res {
            failed += 1;
            if failed <= 5 {
                eprintln!("PUT agent failed: {why}");
            }
        }
        if last_note.elapsed() >= Duration::from_secs(5) {
            last_note = Instant::now();
            eprintln!("  roster: {done}/{} agents", ctx.specs.len());
        }
    }
    eprintln!(
        "roster: {} agents put in {:.1} s ({failed} failed)",
        ctx.specs.len(),
        started.elapsed().as_secs_f64()
    );
    failed
}

/// Something an agent does later.
enum Timer {
    Accept(String),
    Decline(String, Option<u64>),
    Complete(String, Option<u64>),
    SetStatus(&'static str),
}

/// One agent's connection and what it is about to do.
struct Agent {
    idx: u32,
    role: Role,
    rng: Rng,
    ready: bool,
    timers: Vec<(Instant, Timer)>,
}

fn final_status(role: Role) -> &'static str {
    match role {
        Role::Free | Role::OtherLanguage => "available",
        Role::Break => "break",
        Role::Offline => "offline",
    }
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

impl Agent {
    fn later(&mut self, after: Duration, t: Timer) {
        self.timers.push((Instant::now() + after, t));
    }

    /// Reacts to one server frame; frames to send at once are pushed on `out`.
    fn on_frame(&mut self, ctx: &Ctx, f: &Value, out: &mut Vec<Message>) {
        let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
        let delay = Duration::from_millis(ctx.args.accept_delay_ms);
        match f["type"].as_str().unwrap_or_default() {
            "welcome" => {
                // Left over from an earlier run: finish it and start clean.
                if let Some(active) = f["active_tickets"].as_array() {
                    for t in active {
                        out.push(text(
                            json!({"type": "complete", "ticket_id": t["ticket_id"],
                            "outcome": "resolved"}),
                        ));
                    }
                }
                if let Some(offer) = f["pending_offer"].as_object() {
                    out.push(text(
                        json!({"type": "decline", "offer_id": offer.get("offer_id")}),
                    ));
                }
                let first = match self.role {
                    Role::Offline => "offline",
                    _ => "available",
                };
                out.push(text(json!({"type": "set_status", "status": first})));
            }
            "status" => {
                let status = f["status"].as_str().unwrap_or_default();
                if !self.ready {
                    if self.role == Role::Break && status == "available" {
                        out.push(text(json!({"type": "set_status", "status": "break"})));
                    } else if status == final_status(self.role) {
                        self.ready = true;
                        ctx.mark_ready();
                    }
                } else if status == "away" && matches!(self.role, Role::Free | Role::OtherLanguage)
                {
                    // Set away after missed offers: come back, as a person would.
                    self.later(delay, Timer::SetStatus("available"));
                }
            }
            "offer" => {
                let at = now_us();
                let offer_id = s("offer_id");
                let mine = parse_summary(ctx.run, f["summary"].as_str().unwrap_or_default());
                let Some((seq, sent)) = mine else {
                    ctx.col().foreign_frames += 1;
                    out.push(text(json!({"type": "accept", "offer_id": offer_id})));
                    return;
                };
                ctx.col().offer(seq, sent, at);
                let r = self.rng.f64();
                if r < ctx.args.decline_share {
                    self.later(delay, Timer::Decline(offer_id, Some(seq)));
                } else if r < ctx.args.decline_share + ctx.args.ignore_share {
                    ctx.col().ignored(seq);
                } else {
                    self.later(delay, Timer::Accept(offer_id));
                }
            }
            "assigned" => {
                let at = now_us();
                let ticket = s("ticket_id");
                match parse_summary(ctx.run, f["summary"].as_str().unwrap_or_default()) {
                    Some((seq, sent)) => {
                        ctx.col().assigned(seq, self.idx, sent, at);
                        let hold = self.rng.exp(ctx.args.handle_mean_ms);
                        self.later(
                            Duration::from_secs_f64(hold / 1000.0),
                            Timer::Complete(ticket, Some(seq)),
                        );
                    }
                    None => {
                        ctx.col().foreign_frames += 1;
                        self.later(Duration::ZERO, Timer::Complete(ticket, None));
                    }
                }
            }
            "offer_revoked" => {
                let mut col = ctx.col();
                if f["reason"] == "expired" {
                    col.revoked_expired += 1;
                } else {
                    col.revoked_cancelled += 1;
                }
            }
            "ticket_cancelled" => {
                let ticket = s("ticket_id");
                self.timers
                    .retain(|(_, t)| !matches!(t, Timer::Complete(id, _) if *id == ticket));
            }
            "error" => {
                let code = s("code");
                ctx.col().error(&code);
                if !self.ready {
                    self.ready = true;
                    ctx.mark_failed(&format!("agent {}: error {code} in setup", self.idx));
                }
            }
            _ => {}
        }
    }

    /// Fires due timers.
    fn due(&mut self, ctx: &Ctx, out: &mut Vec<Message>) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.timers.len() {
            if self.timers[i].0 > now {
                i += 1;
                continue;
            }
            let (_, t) = self.timers.swap_remove(i);
            match t {
                Timer::Accept(offer_id) => {
                    out.push(text(json!({"type": "accept", "offer_id": offer_id})));
                }
                Timer::Decline(offer_id, seq) => {
                    if let Some(seq) = seq {
                        ctx.col().declined(seq);
                    }
                    out.push(text(
                        json!({"type": "decline", "offer_id": offer_id, "reason": "busy"}),
                    ));
                }
                Timer::Complete(ticket, seq) => {
                    if let Some(seq) = seq {
                        ctx.col().completed(seq);
                    }
                    out.push(text(json!({"type": "complete", "ticket_id": ticket,
                        "outcome": "resolved"})));
                }
                Timer::SetStatus(status) => {
                    out.push(text(json!({"type": "set_status", "status": status})));
                }
            }
        }
    }
}

/// One agent: connects (holding a `connect` permit until it is set up), then plays its part
/// until `stop`.
pub async fn agent_task(
    ctx: Arc<Ctx>,
    idx: u32,
    connect: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let spec = &ctx.specs[idx as usize];
    let Ok(permit) = connect.acquire_owned().await else {
        return;
    };
    let mut permit = Some(permit);
    let gw = &ctx.args.gateways[idx as usize % ctx.args.gateways.len()];
    let src = ctx.args.source_ips[idx as usize % ctx.args.source_ips.len()];
    let url = gateway_ws_url(gw);
    let addr = match loopback_addr(gw, 80) {
        Ok(a) => a,
        Err(e) => return ctx.mark_failed(&e),
    };
    let auth = format!("Bearer {}", mint(&ctx, &spec.id, "agent"));
    let headers = [("authorization", auth)];
    let Some(mut ws) = connect_agent(&ctx, &spec.id, &url, addr, src, &headers).await else {
        return;
    };
    let mut agent = Agent {
        idx,
        role: spec.role,
        rng: Rng::new(ctx.args.seed.wrapping_mul(1_000_003) ^ u64::from(idx)),
        ready: false,
        timers: Vec::new(),
    };
    let setup_deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    loop {
        if agent.ready && permit.is_some() {
            permit = None;
        }
        let next_timer = agent.timers.iter().map(|(at, _)| *at).min();
        let wake = match (next_timer, agent.ready) {
            (Some(t), false) => t.min(setup_deadline),
            (Some(t), true) => t,
            (None, false) => setup_deadline,
            (None, true) => Instant::now() + Duration::from_secs(3600),
        };
        tokio::select! {
            _ = stop.changed() => break,
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<Value>(&t) {
                    Ok(f) => agent.on_frame(&ctx, &f, &mut out),
                    Err(_) => ctx.col().error("frame_not_json"),
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    ctx.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if !agent.ready {
                        ctx.mark_failed(&format!("{}: closed during setup", spec.id));
                    }
                    return;
                }
                Some(Ok(_)) => {}
            },
            _ = tokio::time::sleep_until(wake) => {
                if !agent.ready && Instant::now() >= setup_deadline {
                    agent.ready = true;
                    ctx.mark_failed(&format!("{}: not set up within 60 s", spec.id));
                }
                agent.due(&ctx, &mut out);
            }
        }
        // Whatever is due now (an accept without delay) goes out at once, not at the next
        // timer tick.
        agent.due(&ctx, &mut out);
        for m in out.drain(..) {
            if ws.send(m).await.is_err() {
                ctx.dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
        }
    }
    // Leave the namespace clean for the next run: finish what is held (not counted: the
    // measurement is over), end the shift, close.
    let leave = async {
        for (_, t) in agent.timers.drain(..) {
            if let Timer::Complete(ticket, _) = t {
                let frame = json!({"type": "complete", "ticket_id": ticket, "outcome": "resolved"});
                ws.feed(text(frame)).await?;
            }
        }
        ws.feed(text(json!({"type": "set_status", "status": "offline"})))
            .await?;
        ws.flush().await?;
        ws.close(None).await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), leave).await;
}

/// Posts tickets as an open-loop Poisson process for `--duration` at `--rate`; returns when
/// every POST has been answered (or 35 s after the last was sent).
pub async fn post_tickets(ctx: Arc<Ctx>, client: reqwest::Client) {
    let args = &ctx.args;
    if args.rate <= 0.0 || args.duration <= 0.0 {
        return;
    }
    let token = Arc::new(mint(&ctx, "loadgen", "escalation"));
    let inflight = Arc::new(Semaphore::new(args.max_inflight));
    let mut mix = TicketMix::new(args.seed, &ctx.specs);
    let mut rng = Rng::new(args.seed ^ 0x706F_7374);
    let cap = (args.rate * args.duration * 2.0) as u64 + 1000;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration);
    let mut next = start;
    let mut seq = 0u64;
    let mut waited = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while seq < cap {
        next += Duration::from_secs_f64(rng.exp(1.0 / args.rate));
        if next >= end {
            break;
        }
        tokio::time::sleep_until(next).await;
        let permit = match inflight.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                waited += 1;
                match inflight.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break,
                }
            }
        };
        let t = mix.next(seq, &ctx.specs);
        let url = dispatcher_url(&ctx, seq as usize, "/v1/tickets");
        let (ctx2, client, token) = (ctx.clone(), client.clone(), token.clone());
        tasks.spawn(async move {
            let sent = now_us();
            ctx2.col().sending(t.seq, sent);
            let body = ticket_body(&t, ctx2.run, sent);
            let res = client
                .post(url)
                .bearer_auth(token.as_str())
                .json(&body)
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            let outcome = match res {
                Ok(r) if r.status().as_u16() == 201 => {
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    Ok(v["ticket_id"].as_str().map(str::to_owned))
                }
                Ok(r) => {
                    let status = r.status();
                    Err(format!("{status} {}", r.text().await.unwrap_or_default()))
                }
                Err(e) => Err(e.to_string()),
            };
            let answered = now_us();
            let mut col = ctx2.col();
            let _ = col.post_hist.record(answered.saturating_sub(sent).max(1));
            match outcome {
                Ok(Some(id)) => col.posted(t.seq, Some(id)),
                Ok(None) => {
                    col.posted(t.seq, None);
                    col.problem(format!("ticket #{}: 201 without a ticket_id", t.seq));
                }
                Err(why) => col.post_failed(t.seq, why),
            }
            drop(permit);
        });
        seq += 1;
        while tasks.try_join_next().is_some() {}
    }
    if waited > 0 {
        eprintln!(
            "note: {waited} tickets waited for one of the {} in-flight POSTs to finish",
            args.max_inflight
        );
    }
    let deadline = Instant::now() + Duration::from_secs(35);
    while !tasks.is_empty() {
        if tokio::time::timeout_at(deadline, tasks.join_next())
            .await
            .is_err()
        {
            eprintln!("{} POSTs still unanswered; giving up on them", tasks.len());
            tasks.abort_all();
            break;
        }
    }
}

/// The correctness check: `GET /v1/tickets/{id}` for every ticket (or a random 2000, plus up
/// to 2000 the generator did not see assigned) and the event stream's `ticket_assigned`s.
pub async fn check(ctx: &Ctx, client: &reqwest::Client) -> Value {
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
    let wanted: HashSet<String> = tickets.iter().map(|t| t.1.clone()).collect();
    let mut stream_assigned = 0usize;
    let mut events_read = 0usize;
    match crate::stream::assigned_events(ctx, &wanted).await {
        Ok((events, read)) => {
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
