//! The NATS peer: the same fleet subscribes over NATS's WebSocket listener (one queue group per
//! language), and the escalation engine sends each ticket as a request over TCP with the offer
//! timeout; the reply is the accept. The client protocol is written out here: it is the same
//! text protocol over TCP and over WebSocket frames.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::loopback_addr;
use crate::common::{now_us, parse_summary, ticket_body, Rng, Role, TicketMix};
use crate::nats_wire::{publish, Op, Parser, CONNECT};
use crate::record::{Ctx, Note};
use crate::ws::connect_agent;

// ---------------------------------------------------------------------------------------------
// Agents

enum Timer {
    Reply { to: String, accept: bool, seq: u64 },
    Complete(u64),
}

struct Agent {
    idx: u32,
    max: usize,
    active: usize,
    rng: Rng,
    timers: Vec<(Instant, Timer)>,
}

impl Agent {
    fn on_msg(&mut self, ctx: &Ctx, reply: Option<String>, payload: &[u8]) {
        let at = now_us();
        let body: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        let Some((seq, sent)) =
            parse_summary(ctx.run, body["summary"].as_str().unwrap_or_default())
        else {
            ctx.note(Note::ForeignFrame);
            return;
        };
        ctx.note(Note::Offer { seq, sent, at });
        if self.active >= self.max {
            ctx.note(Note::BusyOffer);
        }
        let Some(to) = reply else {
            ctx.note(Note::Error {
                code: "msg_without_reply".into(),
            });
            return;
        };
        let delay = Duration::from_millis(ctx.args.accept_delay_ms);
        let r = self.rng.f64();
        if r < ctx.args.decline_share {
            self.timers.push((
                Instant::now() + delay,
                Timer::Reply {
                    to,
                    accept: false,
                    seq,
                },
            ));
        } else if r < ctx.args.decline_share + ctx.args.ignore_share {
            ctx.note(Note::Ignored { seq });
        } else {
            self.timers.push((
                Instant::now() + delay,
                Timer::Reply {
                    to,
                    accept: true,
                    seq,
                },
            ));
        }
    }

    fn due(&mut self, ctx: &Ctx, out: &mut Vec<u8>) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.timers.len() {
            if self.timers[i].0 > now {
                i += 1;
                continue;
            }
            let (_, t) = self.timers.swap_remove(i);
            match t {
                Timer::Reply { to, accept, seq } => {
                    let word = if accept { "accept" } else { "decline" };
                    let payload = format!("{word} {seq} {}", self.idx);
                    publish(out, &to, None, payload.as_bytes());
                    if accept {
                        self.active += 1;
                        let hold = self.rng.exp(ctx.args.handle_mean_ms) / 1000.0;
                        self.timers
                            .push((now + Duration::from_secs_f64(hold), Timer::Complete(seq)));
                    } else {
                        ctx.note(Note::Declined { seq });
                    }
                }
                Timer::Complete(seq) => {
                    self.active = self.active.saturating_sub(1);
                    ctx.note(Note::Completed { seq });
                }
            }
        }
    }
}

/// One agent on NATS's WebSocket listener: subscribes to `tickets.<lang>` in queue group
/// `q.<lang>` for each of its languages (only if it would be `available`), then answers
/// requests until `stop`.
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
    let src = ctx.args.source_ips[idx as usize % ctx.args.source_ips.len()];
    let addr = match loopback_addr(&ctx.args.nats_ws, 80) {
        Ok(a) => a,
        Err(e) => return ctx.mark_failed(&e),
    };
    let Some(mut ws) = connect_agent(&ctx, &spec.id, &ctx.args.nats_ws, addr, src, &[]).await
    else {
        return;
    };
    let mut hello = CONNECT.to_owned();
    let langs: &[&str] = match spec.role {
        Role::Free | Role::OtherLanguage => &spec.langs,
        Role::Offline | Role::Break => &[],
    };
    for (sid, lang) in langs.iter().enumerate() {
        hello.push_str(&format!("SUB tickets.{lang} q.{lang} {}\r\n", sid + 1));
    }
    hello.push_str("PING\r\n");
    if ws
        .send(Message::Binary(hello.into_bytes().into()))
        .await
        .is_err()
    {
        return ctx.mark_failed(&format!("{}: CONNECT not sent", spec.id));
    }
    let mut agent = Agent {
        idx,
        max: usize::from(spec.max),
        active: 0,
        rng: Rng::new(ctx.args.seed.wrapping_mul(1_000_003) ^ u64::from(idx)),
        timers: Vec::new(),
    };
    let mut parser = Parser::default();
    let mut ready = false;
    let setup_deadline = Instant::now() + Duration::from_secs(60);
    let mut out: Vec<u8> = Vec::new();
    loop {
        let next_timer = agent.timers.iter().map(|(at, _)| *at).min();
        let wake = match (next_timer, ready) {
            (Some(t), false) => t.min(setup_deadline),
            (Some(t), true) => t,
            (None, false) => setup_deadline,
            (None, true) => Instant::now() + Duration::from_secs(3600),
        };
        tokio::select! {
            _ = stop.changed() => break,
            msg = ws.next() => {
                let data = match msg {
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        ctx.note(Note::Dropped);
                        if !ready {
                            ctx.mark_failed(&format!("{}: closed during setup", spec.id));
                        }
                        return;
                    }
                    Some(Ok(_)) => Vec::new(),
                };
                parser.feed(&data);
                for _ in 0..100_000 {
                    match parser.next_op() {
                        Ok(Some(Op::Ping)) => out.extend_from_slice(b"PONG\r\n"),
                        Ok(Some(Op::Pong)) => {
                            if !ready {
                                ready = true;
                                permit = None;
                                ctx.note(Note::Ready);
                            }
                        }
                        Ok(Some(Op::Msg { reply, payload, .. })) => {
                            agent.on_msg(&ctx, reply, &payload);
                        }
                        Ok(Some(Op::Err(e))) => {
                            ctx.note(Note::Error {
                                code: format!("nats: {e}"),
                            });
                        }
                        Ok(Some(Op::Info | Op::Ok)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            ctx.note(Note::Error {
                                code: "nats_protocol".into(),
                            });
                            if !ready {
                                ctx.mark_failed(&format!("{}: {e}", spec.id));
                            }
                            return;
                        }
                    }
                }
            },
            _ = tokio::time::sleep_until(wake) => {
                if !ready && Instant::now() >= setup_deadline {
                    ready = true;
                    permit = None;
                    ctx.mark_failed(&format!("{}: no PONG within 60 s", spec.id));
                }
                agent.due(&ctx, &mut out);
            }
        }
        // Whatever is due now (an accept without delay) goes out at once, not at the next
        // timer tick.
        agent.due(&ctx, &mut out);
        if !out.is_empty() {
            let bytes = std::mem::take(&mut out);
            if ws.send(Message::Binary(bytes.into())).await.is_err() {
                ctx.note(Note::Dropped);
                return;
            }
        }
    }
    drop(permit);
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}

// ---------------------------------------------------------------------------------------------
// The escalation engine

/// A request waiting for its reply.
struct Pending {
    attempt: u8,
    deadline: Instant,
    subject: String,
    body: Vec<u8>,
}

/// The engine's side: one TCP connection, requests on `tickets.<lang>` with replies to
/// `_INBOX.lg<run>.<seq>.<attempt>`.
pub struct Engine {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    pending: Mutex<HashMap<u64, Pending>>,
    inbox: String,
    timeout: Duration,
    pub declined_twice: std::sync::atomic::AtomicU64,
    pub late_replies: std::sync::atomic::AtomicU64,
}

impl Engine {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request(&self, seq: u64, attempt: u8, subject: &str, body: &[u8]) {
        let mut out = Vec::with_capacity(body.len() + 64);
        let reply = format!("{}.{seq}.{attempt}", self.inbox);
        publish(&mut out, subject, Some(&reply), body);
        let _ = self.tx.send(out);
    }

    /// Pending requests now.
    pub fn outstanding(&self) -> usize {
        self.pending().len()
    }

    fn on_reply(&self, ctx: &Ctx, subject: &str, payload: &[u8]) {
        let at = now_us();
        let mut parts = subject.rsplitn(3, '.');
        let attempt: u8 = parts.next().and_then(|a| a.parse().ok()).unwrap_or(0);
        let Some(seq) = parts.next().and_then(|s| s.parse::<u64>().ok()) else {
            return;
        };
        let text = String::from_utf8_lossy(payload);
        let mut words = text.split_whitespace();
        let verb = words.next().unwrap_or_default();
        let agent: u32 = words
            .nth(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(u32::MAX);
        let mut pending = self.pending();
        let current = pending.get(&seq).map(|p| p.attempt) == Some(attempt);
        match verb {
            "accept" => {
                if current {
                    pending.remove(&seq);
                    drop(pending);
                    ctx.col().assigned_reply(seq, agent, at);
                } else {
                    drop(pending);
                    self.late_replies
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // After the timeout it is no assignment, unless the ticket already had
                    // one: then it is a second accept, which the check reports.
                    let mut col = ctx.col();
                    if col
                        .recs
                        .get(&seq)
                        .is_some_and(|r| !r.assigned_to.is_empty())
                    {
                        col.assigned_reply(seq, agent, at);
                    }
                }
            }
            "decline" if current => {
                if attempt == 1 {
                    if let Some(p) = pending.get_mut(&seq) {
                        p.attempt = 2;
                        p.deadline = Instant::now() + self.timeout;
                        self.request(seq, 2, &p.subject, &p.body);
                    }
                } else {
                    pending.remove(&seq);
                    self.declined_twice
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }

    /// Drops requests past their timeout.
    fn sweep(&self, ctx: &Ctx) {
        let now = Instant::now();
        let mut pending = self.pending();
        let before = pending.len();
        pending.retain(|_, p| p.deadline > now);
        let expired = before - pending.len();
        if expired > 0 {
            drop(pending);
            ctx.col().request_timeouts += expired as u64;
        }
    }
}

/// Connects the engine to NATS over TCP; it runs until the process ends.
pub async fn start_engine(ctx: Arc<Ctx>) -> anyhow::Result<Arc<Engine>> {
    let addr = loopback_addr(&ctx.args.nats_tcp, 4222).map_err(anyhow::Error::msg)?;
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await??;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
        while let Some(first) = rx.recv().await {
            buf.extend_from_slice(&first);
            while buf.len() < 256 * 1024 {
                match rx.try_recv() {
                    Ok(more) => buf.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            if wr.write_all(&buf).await.is_err() {
                eprintln!("NATS engine: write failed");
                return;
            }
            buf.clear();
        }
    });
    let inbox = format!("_INBOX.lg{:08x}", ctx.run);
    let engine = Arc::new(Engine {
        tx: tx.clone(),
        pending: Mutex::new(HashMap::new()),
        inbox: inbox.clone(),
        timeout: Duration::from_secs_f64(ctx.args.offer_timeout_secs),
        declined_twice: Default::default(),
        late_replies: Default::default(),
    });
    let hello = format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"echo\":false,\"name\":\"loadgen\"}}\r\nSUB {inbox}.> 1\r\nPING\r\n"
    );
    tx.send(hello.into_bytes())
        .map_err(|_| anyhow::anyhow!("engine writer gone"))?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let (e2, c2) = (engine.clone(), ctx.clone());
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut parser = Parser::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    eprintln!("NATS engine: connection closed");
                    return;
                }
                Ok(n) => n,
            };
            parser.feed(&buf[..n]);
            loop {
                match parser.next_op() {
                    Ok(Some(Op::Msg {
                        subject, payload, ..
                    })) => e2.on_reply(&c2, &subject, &payload),
                    Ok(Some(Op::Ping)) => {
                        let _ = e2.tx.send(b"PONG\r\n".to_vec());
                    }
                    Ok(Some(Op::Pong)) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Some(Op::Err(e))) => eprintln!("NATS engine: -ERR {e}"),
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("NATS engine: {e}");
                        return;
                    }
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .map_err(|_| anyhow::anyhow!("no PONG from NATS within 10 s"))?
        .map_err(|_| anyhow::anyhow!("NATS engine connection closed"))?;
    let (e3, c3) = (engine.clone(), ctx.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            e3.sweep(&c3);
        }
    });
    Ok(engine)
}

/// Sends tickets as requests, an open-loop Poisson process for `--duration` at `--rate`.
pub async fn post_tickets(ctx: Arc<Ctx>, engine: Arc<Engine>) {
    let args = &ctx.args;
    if args.rate <= 0.0 || args.duration <= 0.0 {
        return;
    }
    let mut mix = TicketMix::new(args.seed, &ctx.specs);
    let mut rng = Rng::new(args.seed ^ 0x706F_7374);
    let cap = (args.rate * args.duration * 2.0) as u64 + 1000;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration);
    let mut next = start;
    let mut seq = 0u64;
    while seq < cap {
        next += Duration::from_secs_f64(rng.exp(1.0 / args.rate));
        if next >= end {
            break;
        }
        tokio::time::sleep_until(next).await;
        let t = mix.next(seq, &ctx.specs);
        let subject = format!("tickets.{}", t.lang);
        let sent = now_us();
        ctx.col().sending(seq, sent);
        let body = ticket_body(&t, ctx.run, sent).to_string().into_bytes();
        engine.pending().insert(
            seq,
            Pending {
                attempt: 1,
                deadline: Instant::now() + engine.timeout,
                subject: subject.clone(),
                body: body.clone(),
            },
        );
        engine.request(seq, 1, &subject, &body);
        ctx.col().posted(seq, Some(format!("n{seq}")));
        seq += 1;
    }
}

/// The end state from the generator's record: every request delivered to one agent, accepted
/// at most once; the unanswered ones are still pending (ignored, timeout not reached).
pub fn check(ctx: &Ctx, engine: &Engine) -> Value {
    let col = ctx.col();
    let pending = engine.pending();
    let mut problems = Vec::new();
    let mut lost = 0usize;
    let mut twice = 0usize;
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut seqs: Vec<&u64> = col.recs.keys().collect();
    seqs.sort();
    for seq in seqs {
        let r = &col.recs[seq];
        if !r.posted {
            continue;
        }
        if r.offers == 0 {
            lost += 1;
            if lost <= 20 {
                problems.push(format!("n{seq}: no agent received the request"));
            }
        }
        if r.assigned_to.len() > 1 {
            twice += 1;
            problems.push(format!("n{seq}: accepted by agents {:?}", r.assigned_to));
        }
        if r.assigned_to.is_empty() && pending.contains_key(seq) {
            let reason = if r.ignored_pending {
                "ignored by the agent, request not yet timed out"
            } else {
                "awaiting the reply"
            };
            *reasons.entry(reason).or_default() += 1;
        }
    }
    let still: usize = reasons.values().sum();
    json!({
        "ok": lost == 0 && twice == 0,
        "lost": lost,
        "assigned_twice": twice,
        "still_queued": still,
        "problems": problems,
        "still_queued_reasons": reasons,
        "request_timeouts": col.request_timeouts,
        "declined_twice": engine.declined_twice.load(std::sync::atomic::Ordering::Relaxed),
        "late_replies": engine.late_replies.load(std::sync::atomic::Ordering::Relaxed),
    })
}
