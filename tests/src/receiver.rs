//! A webhook receiver for tests: a real HTTP/1.1 server on a free port that records every
//! request and answers as it is told (a status, or silence for a while).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// This status, at once.
    Status(u16),
    /// No answer for this long (then 200, if the client still waits).
    Hang(Duration),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its headers, names lowercased.
    pub headers: HashMap<String, String>,
    /// Its body.
    pub body: String,
    /// When it arrived.
    pub at: Instant,
    /// How it was answered.
    pub reply: Reply,
}

impl Received {
    /// A header's value ('' if absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// `webhook-id`.
    pub fn id(&self) -> &str {
        self.header("webhook-id")
    }

    /// The body's `type`.
    pub fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    script: VecDeque<Reply>,
    by_id: HashMap<String, VecDeque<Reply>>,
    otherwise: Option<Reply>,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// Its URL, `http://127.0.0.1:<port>/hook`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    /// Starts one that answers 200 to everything.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, state).await;
                });
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            state,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next requests are answered by `replies`, in turn (then as before).
    pub fn script(&self, replies: &[Reply]) {
        self.state().script.extend(replies.iter().copied());
    }

    /// The next requests with `webhook-id` `id` are answered by `replies`, in turn (before any
    /// other script).
    pub fn script_for(&self, id: &str, replies: &[Reply]) {
        self.state()
            .by_id
            .entry(id.to_owned())
            .or_default()
            .extend(replies.iter().copied());
    }

    /// Every request not scripted is answered by `reply`.
    pub fn otherwise(&self, reply: Reply) {
        self.state().otherwise = Some(reply);
    }

    /// What was received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state().received.clone()
    }

    /// Waits (at most `within`) until `pred` holds of what was received; returns it.
    pub async fn wait_for(
        &self,
        within: Duration,
        what: &str,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if pred(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver never got {what} within {within:?}; it got {:#?}",
                got.iter()
                    .map(|r| (r.id().to_owned(), r.kind()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn serve(stream: tokio::net::TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).await?;
        let reply = {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            let id = headers.get("webhook-id").cloned().unwrap_or_default();
            let reply = s
                .by_id
                .get_mut(&id)
                .and_then(VecDeque::pop_front)
                .or_else(|| s.script.pop_front())
                .or(s.otherwise)
                .unwrap_or(Reply::Status(200));
            s.received.push(Received {
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                at: Instant::now(),
                reply,
            });
            reply
        };
        let status = match reply {
            Reply::Status(s) => s,
            Reply::Hang(d) => {
                tokio::time::sleep(d).await;
                200
            }
        };
        let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
        reader.get_mut().write_all(answer.as_bytes()).await?;
    }
}
