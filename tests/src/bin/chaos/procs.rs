//! The processes the chaos suite runs and hurts: the services as child processes of their own
//! (so that they can be killed and frozen), and a private PostgreSQL (so that stopping it
//! leaves the machine's alone).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use e2e::redis_server::free_port;
pub use e2e::redis_server::send_signal as signal;

/// One instance of a service, restarted on the same port as a supervisor would.
pub struct Service {
    /// `dispatcher-1`, `gateway-2`.
    pub name: String,
    binary: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Service {
    /// Starts `binary` (`dispatcher` or `agent-app-api`) with `env` and its listen address.
    pub fn start(name: &str, binary: &Path, env: &[(String, String)], logs: &Path) -> Self {
        let port = free_port();
        let listen = if name.starts_with("dispatcher") {
            "DISPATCHER_LISTEN"
        } else {
            "AGENT_API_LISTEN"
        };
        let mut env = env.to_vec();
        env.push((listen.into(), format!("127.0.0.1:{port}")));
        let mut service = Self {
            name: name.to_owned(),
            binary: binary.to_owned(),
            base: format!("http://127.0.0.1:{port}"),
            env,
            log: logs.join(format!("{name}.log")),
            child: None,
        };
        service.spawn();
        service
    }

    /// Starts the process (again).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} runs already", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("a log file");
        let child = Command::new(&self.binary)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", self.binary.display()));
        self.child = Some(child);
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// kill -9, reaped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits for the drain (at most 30 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            for _ in 0..300 {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL of the suite's own, in a temporary folder, on a free port, trusting `postgres`.
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

/// Runs `command` as the `postgres` user when this process is root (PostgreSQL refuses root).
fn as_postgres(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// initdb and start; the database `dispatch` created.
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (deploy/lib.sh ensure_postgres)")
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .find(|p| p.join("initdb").exists())
            .expect("an initdb");
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("chaos-pg-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a folder for PostgreSQL");
        let _ = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status();
        let ok = as_postgres(&bin.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-D"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "initdb");
        let pg = Self { port, dir, bin };
        pg.run();
        let ok = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .args(["-qc", "CREATE DATABASE dispatch"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "CREATE DATABASE dispatch");
        pg
    }

    /// `DATABASE_URL`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/dispatch", self.port)
    }

    /// Starts the server and waits for it.
    pub fn run(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let ok = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &options, "-w", "-l"])
            .arg(self.dir.join("log"))
            .arg("start")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "pg_ctl start");
    }

    /// Stops it (fast: open connections are cut).
    pub fn halt(&self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status();
    }

    /// One value (`psql -At`) of `sql`.
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "dispatch", "-Atc", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.halt();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
