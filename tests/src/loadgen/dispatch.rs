//! The dispatch target: agents on the roster (`PUT /v1/agents`), connected to agent-app-api
//! over WebSockets; tickets posted to the dispatcher; the end state checked with
//! `GET /v1/tickets/{id}` and the namespace's event stream.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::loopback_addr;
use crate::common::{now_us, parse_summary, ticket_body, Rng, Role, TicketMix};
use crate::record::{Ctx, Note};
use crate::ws::{connect_agent, gateway_ws_url};

const TOKEN_TTL: i64 = 24 * 3600;

pub fn mint(ctx: &Ctx, sub: &str, role: &str) -> String {
    shared::auth::mint_hs256(&ctx.args.secret, sub, role, "dispatch", TOKEN_TTL)
}

pub fn dispatcher_url(ctx: &Ctx, i: usize, path: &str) -> String {
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
                        ctx.note(Note::Ready);
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
                    ctx.note(Note::ForeignFrame);
                    out.push(text(json!({"type": "accept", "offer_id": offer_id})));
                    return;
                };
                ctx.note(Note::Offer { seq, sent, at });
                let r = self.rng.f64();
                if r < ctx.args.decline_share {
                    self.later(delay, Timer::Decline(offer_id, Some(seq)));
                } else if r < ctx.args.decline_share + ctx.args.ignore_share {
                    ctx.note(Note::Ignored { seq });
                } else {
                    self.later(delay, Timer::Accept(offer_id));
                }
            }
            "assigned" => {
                let at = now_us();
                let ticket = s("ticket_id");
                match parse_summary(ctx.run, f["summary"].as_str().unwrap_or_default()) {
                    Some((seq, sent)) => {
                        ctx.note(Note::Assigned {
                            seq,
                            agent: self.idx,
                            sent,
                            at,
                        });
                        let hold = self.rng.exp(ctx.args.handle_mean_ms);
                        self.later(
                            Duration::from_secs_f64(hold / 1000.0),
                            Timer::Complete(ticket, Some(seq)),
                        );
                    }
                    None => {
                        ctx.note(Note::ForeignFrame);
                        self.later(Duration::ZERO, Timer::Complete(ticket, None));
                    }
                }
            }
            "offer_revoked" => {
                ctx.note(Note::Revoked {
                    expired: f["reason"] == "expired",
                });
            }
            "ticket_cancelled" => {
                let ticket = s("ticket_id");
                self.timers
                    .retain(|(_, t)| !matches!(t, Timer::Complete(id, _) if *id == ticket));
            }
            "error" => {
                let code = s("code");
                ctx.note(Note::Error { code: code.clone() });
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
                        ctx.note(Note::Declined { seq });
                    }
                    out.push(text(
                        json!({"type": "decline", "offer_id": offer_id, "reason": "busy"}),
                    ));
                }
                Timer::Complete(ticket, seq) => {
                    if let Some(seq) = seq {
                        ctx.note(Note::Completed { seq });
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
                    Err(_) => ctx.note(Note::Error {
                        code: "frame_not_json".into(),
                    }),
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    ctx.note(Note::Dropped);
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
                ctx.note(Note::Dropped);
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
