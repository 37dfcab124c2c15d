//! One fleet over several processes. A process holds no more sockets than its open-file limit
//! (20,000 on the benchmark machine, which root cannot raise), and every agent is a socket, so a
//! larger fleet is split: the coordinating process runs the escalation engine, the record and
//! the agents of shard 0, and starts a worker process (this same binary, with `--shard k/n`)
//! for each other shard. Agent `i` belongs to shard `i % n`, so every shard has the same mix of
//! roles, gateways and source addresses.
//!
//! A worker connects its agents and plays them exactly as the coordinator plays its own, but
//! writes each [`Note`] they make to stdout as a JSON line, which the coordinator applies to its
//! record; all processes share one clock ([`crate::common::now_us`]), so a ticket sent by the
//! coordinator is timed by whichever process's agent it reaches. A line `stop` on a worker's
//! stdin (or its end) makes the worker's agents leave and the worker exit.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, watch};

use crate::record::{Ctx, Note};

/// Which part of the fleet a process plays: agents `i` with `i % of == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub of: usize,
}

impl Shard {
    /// The whole fleet in one process.
    pub const ALL: Shard = Shard { index: 0, of: 1 };

    /// Parses `k/n` (`k < n`).
    pub fn parse(v: &str) -> Result<Self, String> {
        let bad = || format!("--shard: expected k/n with k < n, got {v:?}");
        let (k, n) = v.split_once('/').ok_or_else(bad)?;
        let (index, of): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if of == 0 || index >= of {
            return Err(bad());
        }
        Ok(Self { index, of })
    }

    /// Whether agent `idx` is this shard's.
    pub fn has(self, idx: usize) -> bool {
        idx % self.of == self.index
    }
}

/// The worker processes of a coordinating process.
pub struct Workers {
    children: Vec<(Child, Option<ChildStdin>)>,
}

impl Workers {
    /// Starts a worker for each of shards `1..n`, with this process's own arguments, and applies
    /// the notes they send to `ctx`'s record.
    pub fn start(ctx: &Arc<Ctx>, n: usize, args: &[String]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("the loadgen binary's path")?;
        let mut children = Vec::new();
        for k in 1..n {
            let mut child = Command::new(&exe)
                .args(args)
                .arg("--shard")
                .arg(format!("{k}/{n}"))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting worker process {k}/{n}"))?;
            let stdout = child.stdout.take().context("a worker's stdout")?;
            let stdin = child.stdin.take();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match serde_json::from_str::<Note>(&line) {
                        Ok(note) => ctx.apply(note),
                        Err(e) => eprintln!("worker {k}/{n}: unreadable note {line:?}: {e}"),
                    }
                }
            });
            children.push((child, stdin));
        }
        Ok(Self { children })
    }

    /// The workers' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(|(c, _)| c.id()).collect()
    }

    /// Tells every worker to stop and waits (at most 20 s) for each to exit.
    pub async fn stop(mut self) {
        for (_, stdin) in &mut self.children {
            if let Some(mut s) = stdin.take() {
                let _ = s.write_all(b"stop\n").await;
                let _ = s.flush().await;
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        for (child, _) in &mut self.children {
            if tokio::time::timeout_at(deadline, child.wait())
                .await
                .is_err()
            {
                eprintln!("a worker process did not stop within 20 s; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

/// Writes the notes of a worker's agents to stdout, one JSON line each, until every sender is
/// gone.
pub async fn write_notes(mut notes: mpsc::UnboundedReceiver<Note>) {
    let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
    while let Some(note) = notes.recv().await {
        let mut batch = vec![note];
        while let Ok(more) = notes.try_recv() {
            batch.push(more);
        }
        for note in batch {
            let mut line = serde_json::to_vec(&note).unwrap_or_default();
            line.push(b'\n');
            if out.write_all(&line).await.is_err() {
                return;
            }
        }
        if out.flush().await.is_err() {
            return;
        }
    }
}

/// Waits until the coordinator says `stop` (or closes the worker's stdin), then stops the
/// agents.
pub async fn wait_for_stop(stop: watch::Sender<bool>) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) if line.trim() == "stop" => break,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let _ = stop.send(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_fleet_evenly() {
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, of: 3 }));
        assert!(Shard::parse("3/3").is_err());
        assert!(Shard::parse("0/0").is_err());
        assert!(Shard::parse("x").is_err());
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, of: 3 }).collect();
        for idx in 0..30 {
            assert_eq!(shards.iter().filter(|s| s.has(idx)).count(), 1);
        }
        assert!(Shard::ALL.has(12345));
    }

    #[test]
    fn notes_travel_as_json_lines() {
        let note = Note::Assigned {
            seq: 7,
            agent: 3,
            sent: 1_780_000_000_000_000,
            at: 1_780_000_000_001_000,
        };
        let line = serde_json::to_string(&note).expect("serializes");
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Note>(&line).expect("parses"), note);
    }
}
