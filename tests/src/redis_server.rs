//! Private `redis-server` processes for the tests and the chaos suite that kill, freeze,
//! demote or fail over their Redis, leaving the shared one of the other tests alone: a
//! [`RedisServer`] on a free port, and a [`Replicated`] set (a primary, a replica and three
//! Sentinels watching them) for failovers.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// A `redis-server` child process on a fixed port, killed when dropped (even if the test fails).
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
    /// Extra arguments (`--appendonly yes`, `--replicaof …`).
    args: Vec<String>,
    /// The Sentinel configuration, for a Sentinel.
    sentinel: Option<String>,
    /// Whether a restart keeps what it wrote (an append-only file) instead of starting empty.
    keeps_data: bool,
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Sends `signal` (`KILL`, `STOP`, `CONT`, `TERM`) to process `pid`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

impl RedisServer {
    /// Starts a fresh, empty, non-persistent Redis on a free port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`RedisServer::start`] with more arguments; `--appendonly yes` among them makes each
    /// restart load what the last run wrote.
    pub fn start_with(args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
        let keeps_data = args
            .windows(2)
            .any(|w| w[0] == "--appendonly" && w[1] == "yes");
        let mut server = Self {
            port: free_port(),
            child: None,
            args,
            sentinel: None,
            keeps_data,
        };
        let _ = std::fs::remove_dir_all(server.dir());
        server.spawn();
        server
    }

    /// [`RedisServer::start`], once it answers.
    pub async fn ready() -> Self {
        let server = Self::start();
        server.wait_ready().await;
        server
    }

    /// A Sentinel watching the primary on `primary_port` as `master`, with a quorum of 2 and a
    /// primary judged down after 2 s without an answer (1 s can be a busy CI machine's hiccup).
    pub fn sentinel(master: &str, primary_port: u16) -> Self {
        let conf = format!(
            "sentinel monitor {master} 127.0.0.1 {primary_port} 2\n\
             sentinel down-after-milliseconds {master} 2000\n\
             sentinel failover-timeout {master} 4000\n\
             sentinel parallel-syncs {master} 1\n"
        );
        let mut server = Self {
            port: free_port(),
            child: None,
            args: Vec::new(),
            sentinel: Some(conf),
            keeps_data: false,
        };
        let _ = std::fs::remove_dir_all(server.dir());
        server.spawn();
        server
    }

    /// Starts the process (again) on the same port: empty, unless it keeps its data.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        // Replication writes an RDB file even without `save`: into a folder of its own, not
        // the checkout. Without an append-only file it starts empty: a file a replication left
        // would be loaded.
        let dir = self.dir();
        if !self.keeps_data {
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::fs::create_dir_all(&dir).expect("a folder for redis-server");
        let mut command = Command::new("redis-server");
        if let Some(conf) = &self.sentinel {
            // A Sentinel rewrites its configuration file as it learns: one of its own.
            let file = dir.join("sentinel.conf");
            if !file.exists() {
                std::fs::write(&file, conf).expect("sentinel.conf written");
            }
            command.arg(&file).arg("--sentinel");
        } else {
            command.args(["--save", "", "--appendonly", "no"]);
        }
        let child = command
            .args(["--bind", "127.0.0.1"])
            .args(["--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed and starts");
        self.child = Some(child);
    }

    fn dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("e2e-redis-{}", self.port))
    }

    /// Whether the process runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the process (SIGKILL: Redis goes away without a goodbye) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends the process `signal` (`STOP` freezes it: its clients' calls hang, as if the
    /// network to it were cut; `CONT` resumes it with everything it held).
    pub fn signal(&self, signal: &str) {
        send_signal(self.child.as_ref().expect("redis-server runs").id(), signal);
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Waits until the server answers PING.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url()).expect("redis url");
        loop {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let pong: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} never answered",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(self.dir());
    }
}

/// Runs `command` on the Redis at `url` and returns its reply or its error; waits as long as
/// it takes (a script that runs for seconds).
pub async fn try_redis_command(url: &str, command: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(url)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(None)
        .set_connection_timeout(Some(Duration::from_secs(2)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let mut cmd = redis::cmd(command[0]);
    for arg in &command[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut conn).await
}

/// [`try_redis_command`], which must succeed.
pub async fn redis_command(url: &str, command: &[&str]) -> redis::Value {
    try_redis_command(url, command)
        .await
        .unwrap_or_else(|e| panic!("{command:?} on {url}: {e}"))
}

/// Waits until the Redis at `url` is a replica in sync with its primary.
pub async fn wait_synced(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = redis_command(url, &["INFO", "replication"]).await;
        let info: String = redis::from_redis_value(info).expect("INFO is text");
        if info.contains("master_link_status:up") {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never synced: {info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A primary, a replica following it and three Sentinels watching both, as `master`.
pub struct Replicated {
    /// The name the Sentinels know the primary by.
    pub master: String,
    /// The two data servers; which is primary changes with each failover.
    pub servers: [RedisServer; 2],
    /// The three Sentinels.
    pub sentinels: Vec<RedisServer>,
}

impl Replicated {
    /// Starts them (with `args` for both data servers) and waits until the Sentinels know each
    /// other and the replica, so that a failover can be authorised.
    pub async fn start(args: &[&str]) -> Self {
        // A demoted primary that took writes the new one lacks needs a full sync: at once.
        let args = [args, &["--repl-diskless-sync-delay", "0"]].concat();
        let primary = RedisServer::start_with(&args);
        primary.wait_ready().await;
        let replica = RedisServer::start_with(&args);
        replica.wait_ready().await;
        let port = primary.port.to_string();
        redis_command(&replica.url(), &["REPLICAOF", "127.0.0.1", &port]).await;
        wait_synced(&replica.url()).await;
        let master = "e2e".to_owned();
        let sentinels: Vec<_> = (0..3)
            .map(|_| RedisServer::sentinel(&master, primary.port))
            .collect();
        for sentinel in &sentinels {
            sentinel.wait_ready().await;
        }
        let set = Self {
            master,
            servers: [primary, replica],
            sentinels,
        };
        set.wait_watched().await;
        set
    }

    /// `REDIS_URL` for the services: `redis+sentinel://…/<master>`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{}", hosts.join(","), self.master)
    }

    /// Waits until every Sentinel sees the other two and a replica in sync (a failover needs
    /// a majority of them and a replica to promote).
    pub async fn wait_watched(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for sentinel in &self.sentinels {
            loop {
                let quorum =
                    try_redis_command(&sentinel.url(), &["SENTINEL", "CKQUORUM", &self.master])
                        .await;
                let sees = match quorum {
                    Ok(v) => redis::from_redis_value::<String>(v)
                        .is_ok_and(|s| s.contains("3 usable Sentinels")),
                    Err(_) => false,
                };
                let replicas = try_redis_command(
                    &sentinel.url(),
                    &["SENTINEL", "REPLICAS", &self.master],
                )
                .await
                .ok()
                .and_then(|v| {
                    redis::from_redis_value::<Vec<std::collections::HashMap<String, String>>>(v)
                        .ok()
                })
                .unwrap_or_default();
                let synced = replicas.iter().any(|r| {
                    r.get("flags").is_some_and(|f| f == "slave")
                        && r.get("master-link-status").is_some_and(|s| s == "ok")
                });
                if sees && synced {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the Sentinels never watched a primary with a synced replica"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// The port of the primary a running Sentinel names now.
    pub async fn primary_port(&self) -> u16 {
        for sentinel in self.sentinels.iter().filter(|s| s.running()) {
            let asked = try_redis_command(
                &sentinel.url(),
                &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &self.master],
            )
            .await;
            if let Ok(v) = asked {
                if let Ok((_, port)) = redis::from_redis_value::<(String, u16)>(v) {
                    return port;
                }
            }
        }
        panic!("no Sentinel names a primary");
    }

    /// The data server that is primary now, and the other.
    pub async fn roles(&mut self) -> (&mut RedisServer, &mut RedisServer) {
        let port = self.primary_port().await;
        let [a, b] = &mut self.servers;
        if a.port == port {
            (a, b)
        } else {
            (b, a)
        }
    }

    /// Waits until the Sentinels name a primary other than the one on `old`, and it takes
    /// writes; returns how long that took.
    pub async fn wait_failed_over(&self, old: u16, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let port = self.primary_port().await;
            if port != old {
                let url = format!("redis://127.0.0.1:{port}");
                let role = try_redis_command(&url, &["ROLE"]).await.ok();
                let is_primary = role
                    .and_then(|v| redis::from_redis_value::<Vec<redis::Value>>(v).ok())
                    .and_then(|v| v.first().cloned())
                    .and_then(|v| redis::from_redis_value::<String>(v).ok())
                    .is_some_and(|r| r == "master");
                if is_primary {
                    return started.elapsed();
                }
            }
            assert!(
                started.elapsed() < within,
                "no failover from port {old} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
