//! The command line of `loadgen`: every flag optional, `--name value` or `--name=value`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::shard::Shard;

/// Which system the fleet and the escalation engine talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The dispatcher (HTTP) and agent-app-api (WebSocket).
    Dispatch,
    /// A NATS server: agents over its WebSocket listener, the engine over TCP.
    Nats,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Dispatch => "dispatch",
            Target::Nats => "nats",
        }
    }
}

/// Everything the command line sets.
#[derive(Debug, Clone)]
pub struct Args {
    pub target: Target,
    pub dispatchers: Vec<String>,
    pub gateways: Vec<String>,
    pub nats_ws: String,
    pub nats_tcp: String,
    pub secret: String,
    pub namespace: String,
    pub redis: String,
    pub agents: usize,
    pub free_share: f64,
    pub rate: f64,
    pub duration: f64,
    pub accept_delay_ms: u64,
    pub decline_share: f64,
    pub ignore_share: f64,
    pub handle_mean_ms: f64,
    pub idle: bool,
    pub source_ips: Vec<Ipv4Addr>,
    pub pids: Vec<(String, u32)>,
    /// Command names of further server processes to measure (every process of that name).
    pub commands: Vec<String>,
    pub agent_prefix: String,
    pub label: String,
    pub seed: u64,
    /// Seconds to wait after posting stops for in-flight tickets.
    pub drain_secs: f64,
    /// The NATS request timeout (the dispatcher's `OFFER_TIMEOUT_SECS`).
    pub offer_timeout_secs: f64,
    /// How many agents connect at once.
    pub connect_concurrency: usize,
    /// How many ticket POSTs may be in flight at once.
    pub max_inflight: usize,
    /// How many agent PUTs run at once.
    pub put_concurrency: usize,
    /// How many processes play the fleet (`None`: as many as the open-file limit needs).
    pub processes: Option<usize>,
    /// The part of the fleet this process plays (set on worker processes only).
    pub shard: Shard,
    /// The run's id, which every ticket summary carries (0: a fresh one).
    pub run_id: u32,
}

pub const USAGE: &str = "\
loadgen: a fleet of agents over real WebSockets and an open-loop Poisson escalation engine.

  --target dispatch|nats            (default dispatch)
  --dispatcher URLS                 (default http://127.0.0.1:8080; comma-separated, round-robin)
  --gateways URLS                   (default ws://127.0.0.1:8081; comma-separated, round-robin)
  --nats-ws URL                     (default ws://127.0.0.1:9222)
  --nats-tcp HOST:PORT              (default 127.0.0.1:4222)
  --secret S                        (default dev-secret-change-me)
  --namespace NS                    (default dispatch)
  --redis URL                       (default redis://127.0.0.1:6379)
  --agents N --free-share F         (default 1000, 1.0)
  --rate R --duration SECS          (default 100, 10)
  --accept-delay-ms MS --decline-share F --ignore-share F --handle-mean-ms MS
                                    (default 0, 0.0, 0.0, 200)
  --idle                            (connect the fleet, post nothing, hold --duration)
  --source-ips LIST                 (default 127.0.0.1; e.g. 127.0.0.2-127.0.0.20,127.0.1.1)
  --pids name=pid,...               (processes whose CPU and RSS are sampled)
  --procs-named NAME,...            (and every process of these command names, e.g. postgres)
  --agent-prefix P                  (default lg)
  --label NAME
  --seed N                          (default 1)
  --drain-secs SECS                 (default 5)
  --offer-timeout-secs SECS         (default 20; the NATS request timeout)
  --connect-concurrency N           (default 200)
  --max-inflight N                  (default 10000)
  --put-concurrency N               (default 32)
  --processes N                     (default: enough that no process holds more sockets than
                                     its open-file limit allows; the others are started as
                                     workers of this one)

Prints progress on stderr and one JSON object on stdout.
";

impl Default for Args {
    fn default() -> Self {
        Self {
            target: Target::Dispatch,
            dispatchers: vec!["http://127.0.0.1:8080".into()],
            gateways: vec!["ws://127.0.0.1:8081".into()],
            nats_ws: "ws://127.0.0.1:9222".into(),
            nats_tcp: "127.0.0.1:4222".into(),
            secret: "dev-secret-change-me".into(),
            namespace: "dispatch".into(),
            redis: "redis://127.0.0.1:6379".into(),
            agents: 1000,
            free_share: 1.0,
            rate: 100.0,
            duration: 10.0,
            accept_delay_ms: 0,
            decline_share: 0.0,
            ignore_share: 0.0,
            handle_mean_ms: 200.0,
            idle: false,
            source_ips: vec![Ipv4Addr::LOCALHOST],
            pids: Vec::new(),
            commands: Vec::new(),
            agent_prefix: "lg".into(),
            label: String::new(),
            seed: 1,
            drain_secs: 5.0,
            offer_timeout_secs: 20.0,
            connect_concurrency: 200,
            max_inflight: 10_000,
            put_concurrency: 32,
            processes: None,
            shard: Shard::ALL,
            run_id: 0,
        }
    }
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{name}: not a valid number: {v:?}"))
}

fn share(name: &str, v: &str) -> Result<f64, String> {
    let x: f64 = num(name, v)?;
    if !(0.0..=1.0).contains(&x) {
        return Err(format!("{name}: must be within 0..1, got {x}"));
    }
    Ok(x)
}

fn loopback_v4(s: &str) -> Result<Ipv4Addr, String> {
    let ip: Ipv4Addr = s
        .trim()
        .parse()
        .map_err(|_| format!("--source-ips: not an IPv4 address: {s:?}"))?;
    if !ip.is_loopback() {
        return Err(format!("--source-ips: {ip} is not a loopback address"));
    }
    Ok(ip)
}

/// `127.0.0.1`, `127.0.0.2-127.0.0.20`, `127.0.0.2-20`, comma-separated.
pub fn parse_source_ips(v: &str) -> Result<Vec<Ipv4Addr>, String> {
    const MAX: u32 = 65_536;
    let mut out = Vec::new();
    for item in list(v) {
        if let Some((a, b)) = item.split_once('-') {
            let start = loopback_v4(a)?;
            let end = if b.contains('.') {
                loopback_v4(b)?
            } else {
                let last: u8 = num("--source-ips", b)?;
                let o = start.octets();
                Ipv4Addr::new(o[0], o[1], o[2], last)
            };
            let (s, e) = (u32::from(start), u32::from(end));
            if e < s || e - s >= MAX {
                return Err(format!("--source-ips: bad range {item:?}"));
            }
            out.extend((s..=e).map(Ipv4Addr::from));
        } else {
            out.push(loopback_v4(&item)?);
        }
        if out.len() > MAX as usize {
            return Err("--source-ips: too many addresses".into());
        }
    }
    if out.is_empty() {
        return Err("--source-ips: empty".into());
    }
    Ok(out)
}

fn parse_pids(v: &str) -> Result<Vec<(String, u32)>, String> {
    list(v)
        .into_iter()
        .map(|item| {
            let (name, pid) = item
                .split_once('=')
                .ok_or_else(|| format!("--pids: expected name=pid, got {item:?}"))?;
            Ok((name.trim().to_owned(), num("--pids", pid)?))
        })
        .collect()
}

/// The host:port of a URL (`scheme://host:port/...`) or of a bare `host:port`, which must be a
/// loopback address (`localhost` counts).
pub fn loopback_addr(url: &str, default_port: u16) -> Result<SocketAddr, String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, num::<u16>(url, p)?),
        _ => (authority, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .map_err(|_| format!("{url}: the host must be a loopback IP address"))?
    };
    if !ip.is_loopback() {
        return Err(format!("{url}: only loopback addresses are allowed"));
    }
    Ok(SocketAddr::new(ip, port))
}

impl Args {
    /// Parses `args` (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut a = Args::default();
        let mut it = args.into_iter();
        while let Some(raw) = it.next() {
            if raw == "--help" || raw == "-h" {
                return Err(String::new());
            }
            if raw == "--idle" {
                a.idle = true;
                continue;
            }
            let (name, inline) = match raw.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
                _ => (raw.clone(), None),
            };
            if !name.starts_with("--") {
                return Err(format!("unexpected argument {raw:?}"));
            }
            let v = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .ok_or_else(|| format!("{name}: a value is required"))?,
            };
            match name.as_str() {
                "--target" => {
                    a.target = match v.as_str() {
                        "dispatch" => Target::Dispatch,
                        "nats" => Target::Nats,
                        _ => return Err(format!("--target: dispatch or nats, got {v:?}")),
                    }
                }
                "--dispatcher" | "--dispatchers" => a.dispatchers = list(&v),
                "--gateways" | "--gateway" => a.gateways = list(&v),
                "--nats-ws" => a.nats_ws = v,
                "--nats-tcp" => a.nats_tcp = v,
                "--secret" => a.secret = v,
                "--namespace" => a.namespace = v,
                "--redis" => a.redis = v,
                "--agents" => a.agents = num(&name, &v)?,
                "--free-share" => a.free_share = share(&name, &v)?,
                "--rate" => a.rate = num(&name, &v)?,
                "--duration" => a.duration = num(&name, &v)?,
                "--accept-delay-ms" => a.accept_delay_ms = num(&name, &v)?,
                "--decline-share" => a.decline_share = share(&name, &v)?,
                "--ignore-share" => a.ignore_share = share(&name, &v)?,
                "--handle-mean-ms" => a.handle_mean_ms = num(&name, &v)?,
                "--source-ips" => a.source_ips = parse_source_ips(&v)?,
                "--pids" => a.pids = parse_pids(&v)?,
                "--procs-named" => a.commands = list(&v),
                "--agent-prefix" => a.agent_prefix = v,
                "--label" => a.label = v,
                "--seed" => a.seed = num(&name, &v)?,
                "--drain-secs" => a.drain_secs = num(&name, &v)?,
                "--offer-timeout-secs" => a.offer_timeout_secs = num(&name, &v)?,
                "--connect-concurrency" => a.connect_concurrency = num(&name, &v)?,
                "--max-inflight" => a.max_inflight = num(&name, &v)?,
                "--put-concurrency" => a.put_concurrency = num(&name, &v)?,
                "--processes" => a.processes = Some(num(&name, &v)?),
                "--shard" => a.shard = Shard::parse(&v)?,
                "--run-id" => {
                    a.run_id = u32::from_str_radix(v.trim(), 16)
                        .map_err(|_| format!("--run-id: 8 hex digits, got {v:?}"))?
                }
                _ => return Err(format!("unknown flag {name}")),
            }
        }
        a.check()?;
        Ok(a)
    }

    fn check(&self) -> Result<(), String> {
        if self.decline_share + self.ignore_share > 1.0 {
            return Err("--decline-share plus --ignore-share must not exceed 1".into());
        }
        if !(self.rate.is_finite() && self.rate >= 0.0 && self.rate <= 1_000_000.0) {
            return Err("--rate: must be within 0..1000000".into());
        }
        if !(self.duration.is_finite() && self.duration >= 0.0 && self.duration <= 86_400.0) {
            return Err("--duration: must be within 0..86400 seconds".into());
        }
        if !(self.drain_secs.is_finite() && (0.0..=3600.0).contains(&self.drain_secs)) {
            return Err("--drain-secs: must be within 0..3600".into());
        }
        if !(self.offer_timeout_secs.is_finite()
            && (0.1..=3600.0).contains(&self.offer_timeout_secs))
        {
            return Err("--offer-timeout-secs: must be within 0.1..3600".into());
        }
        if !(self.handle_mean_ms.is_finite() && self.handle_mean_ms >= 0.0) {
            return Err("--handle-mean-ms: must be ≥ 0".into());
        }
        if self.agents > 2_000_000 {
            return Err("--agents: at most 2000000".into());
        }
        if self.agent_prefix.is_empty()
            || self.agent_prefix.len() > 40
            || !self
                .agent_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err("--agent-prefix: 1..40 of [A-Za-z0-9_.-]".into());
        }
        if self.processes.is_some_and(|n| n == 0 || n > 256) {
            return Err("--processes: 1 to 256".into());
        }
        if self.connect_concurrency == 0 || self.max_inflight == 0 || self.put_concurrency == 0 {
            return Err("concurrency limits must be at least 1".into());
        }
        match self.target {
            Target::Dispatch => {
                if self.dispatchers.is_empty() || self.gateways.is_empty() {
                    return Err("--dispatcher and --gateways must name at least one URL".into());
                }
                for d in &self.dispatchers {
                    loopback_addr(d, 80)?;
                }
                for g in &self.gateways {
                    loopback_addr(g, 80)?;
                }
                loopback_addr(&self.redis, 6379)?;
            }
            Target::Nats => {
                loopback_addr(&self.nats_ws, 80)?;
                loopback_addr(&self.nats_tcp, 4222)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_lists() {
        let ips = parse_source_ips("127.0.0.2-127.0.0.4,127.0.1.1,127.0.0.9-10").expect("ok");
        assert_eq!(ips.len(), 6);
        assert!(parse_source_ips("10.0.0.1").is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            loopback_addr("ws://localhost:9222/x", 80).expect("ok"),
            "127.0.0.1:9222".parse().expect("addr")
        );
        assert!(loopback_addr("http://192.168.1.1:80", 80).is_err());
        assert_eq!(
            loopback_addr("redis://127.0.0.1", 6379).expect("ok").port(),
            6379
        );
    }
}
