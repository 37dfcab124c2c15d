//! Configuration from the environment (API.md §1): one typed struct, read once, no globals.
//!
//! Both services read the same variables and ignore what they do not use. Every bad value is a
//! [`ConfigError`] naming the variable, which `main` prints on one line before exiting.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::{KeySource, TokenVerifier};
use crate::domain::check_identifier;

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {why}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub why: String,
}

impl ConfigError {
    /// An error about `var`.
    pub fn new(var: &'static str, why: impl Into<String>) -> Self {
        Self {
            var,
            why: why.into(),
        }
    }
}

/// Everything both services may be configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `DISPATCHER_LISTEN`.
    pub dispatcher_listen: String,
    /// `AGENT_API_LISTEN`.
    pub agent_api_listen: String,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `REDIS_MIN_REPLICAS`: how many replicas must hold a ticket before its creation is
    /// acknowledged.
    pub redis_min_replicas: u32,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `DISPATCH_NAMESPACE`: part of every Redis key, stream and channel.
    pub namespace: String,
    /// `JWT_SECRET` or `JWT_PUBLIC_KEY_FILE`.
    pub jwt_key: KeySource,
    /// `JWT_AUDIENCE`.
    pub jwt_audience: String,
    /// `JWT_ISSUER`.
    pub jwt_issuer: Option<String>,
    /// `OFFER_TIMEOUT_SECS`.
    pub offer_timeout: Duration,
    /// `MISSED_OFFERS_BEFORE_AWAY`.
    pub missed_offers_before_away: u32,
    /// `DISCONNECT_GRACE_SECS`.
    pub disconnect_grace: Duration,
    /// `GEOFENCES_FILE`.
    pub geofences_file: Option<PathBuf>,
    /// `BREAKS_PAID`.
    pub breaks_paid: bool,
    /// `AGENT_APP_ORIGINS`, comma-separated.
    pub agent_app_origins: Vec<String>,
    /// `TICKET_RETENTION_SECS`: how long an ended ticket stays in Redis (then PostgreSQL only).
    pub ticket_retention: Duration,
    /// `EVENT_RETENTION_SECS`: how long the stream keeps events the ledger has stored.
    pub event_retention: Duration,
    /// `LEDGER_BACKLOG_MAX`: the most events the stream keeps, stored or not (while PostgreSQL
    /// is down, the oldest unstored ones beyond it are given up, and reported as a gap).
    pub ledger_backlog_max: u64,
    /// `WEBHOOK_RETRY_SCHEDULE`: the delays before each retry of a failed webhook delivery.
    pub webhook_retry_schedule: Vec<Duration>,
    /// `WEBHOOK_BACKLOG_MAX`: the most deliveries one endpoint may have waiting (beyond, the
    /// oldest are given up).
    pub webhook_backlog_max: u64,
    /// `WEB_DIR`: the built web apps (`app/`, `console/`), as `npm run build` in `web/` writes
    /// them; by default this checkout's `web/dist`.
    pub web_dir: PathBuf,
}

/// Where `npm run build` in `web/` writes the apps, in the checkout this was built from.
pub const DEFAULT_WEB_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../web/dist");

/// API.md §9: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h.
pub const WEBHOOK_RETRY_SCHEDULE: [u64; 7] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];

/// `WEBHOOK_RETRY_SCHEDULE`: comma-separated whole seconds, 1 to 30 of them, each at most a day.
fn retry_schedule(raw: Option<String>) -> Result<Vec<Duration>, ConfigError> {
    const VAR: &str = "WEBHOOK_RETRY_SCHEDULE";
    let Some(raw) = raw else {
        return Ok(WEBHOOK_RETRY_SCHEDULE
            .iter()
            .map(|s| Duration::from_secs(*s))
            .collect());
    };
    let mut out = Vec::new();
    for part in raw.split(',').map(str::trim) {
        let secs: u64 = part.parse().map_err(|_| {
            ConfigError::new(VAR, format!("{part:?} is not a whole number of seconds"))
        })?;
        if !(1..=86_400).contains(&secs) {
            return Err(ConfigError::new(
                VAR,
                format!("{secs} is out of range 1..=86400 seconds"),
            ));
        }
        out.push(Duration::from_secs(secs));
    }
    if out.len() > 30 {
        return Err(ConfigError::new(VAR, "at most 30 retries"));
    }
    Ok(out)
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests build their own without touching the process.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let or = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_owned());

        let LedgerSettings {
            database_url,
            namespace,
            breaks_paid,
        } = LedgerSettings::from_lookup(&lookup)?;

        let jwt_key = match (get("JWT_SECRET"), get("JWT_PUBLIC_KEY_FILE")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "JWT_SECRET",
                    "set either JWT_SECRET or JWT_PUBLIC_KEY_FILE, not both",
                ))
            }
            (Some(secret), None) => KeySource::Secret(secret),
            (None, Some(path)) => KeySource::PublicKeyPem(std::fs::read(&path).map_err(|e| {
                ConfigError::new("JWT_PUBLIC_KEY_FILE", format!("cannot read {path}: {e}"))
            })?),
            (None, None) => {
                return Err(ConfigError::new(
                    "JWT_SECRET",
                    "neither JWT_SECRET nor JWT_PUBLIC_KEY_FILE is set",
                ))
            }
        };
        let jwt_audience = or("JWT_AUDIENCE", "dispatch");
        let jwt_issuer = get("JWT_ISSUER");
        let key_var = match jwt_key {
            KeySource::Secret(_) => "JWT_SECRET",
            KeySource::PublicKeyPem(_) => "JWT_PUBLIC_KEY_FILE",
        };
        TokenVerifier::new(&jwt_key, &jwt_audience, jwt_issuer.as_deref())
            .map_err(|e| ConfigError::new(key_var, e))?;

        let redis_url = or("REDIS_URL", "redis://127.0.0.1:6379");
        crate::store::Address::parse(&redis_url).map_err(|e| ConfigError::new("REDIS_URL", e))?;

        let dispatcher_listen = listen_addr(&get, "DISPATCHER_LISTEN", "127.0.0.1:8080")?;
        let agent_api_listen = listen_addr(&get, "AGENT_API_LISTEN", "127.0.0.1:8081")?;

        let redis_min_replicas =
            u32::try_from(number(&get, "REDIS_MIN_REPLICAS", 0, 0, 16)?).unwrap_or(0);
        let offer_timeout = Duration::from_secs(number(&get, "OFFER_TIMEOUT_SECS", 20, 1, 3600)?);
        let missed_offers_before_away =
            u32::try_from(number(&get, "MISSED_OFFERS_BEFORE_AWAY", 2, 1, 1000)?)
                .unwrap_or(u32::MAX);
        let disconnect_grace =
            Duration::from_secs(number(&get, "DISCONNECT_GRACE_SECS", 60, 0, 86_400)?);

        let ticket_retention =
            Duration::from_secs(number(&get, "TICKET_RETENTION_SECS", 3600, 1, 90 * 86_400)?);
        let event_retention =
            Duration::from_secs(number(&get, "EVENT_RETENTION_SECS", 3600, 1, 30 * 86_400)?);
        let ledger_backlog_max = number(&get, "LEDGER_BACKLOG_MAX", 5_000_000, 1_000, 20_000_000)?;
        let webhook_retry_schedule = retry_schedule(get("WEBHOOK_RETRY_SCHEDULE"))?;
        let webhook_backlog_max = number(&get, "WEBHOOK_BACKLOG_MAX", 10_000, 10, 1_000_000)?;

        let agent_app_origins = get("AGENT_APP_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for origin in &agent_app_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(ConfigError::new(
                    "AGENT_APP_ORIGINS",
                    format!("{origin:?} is not an http(s) origin"),
                ));
            }
        }

        Ok(Self {
            dispatcher_listen,
            agent_api_listen,
            redis_url,
            redis_min_replicas,
            database_url,
            namespace,
            jwt_key,
            jwt_audience,
            jwt_issuer,
            offer_timeout,
            missed_offers_before_away,
            disconnect_grace,
            geofences_file: get("GEOFENCES_FILE").map(PathBuf::from),
            breaks_paid,
            agent_app_origins,
            ticket_retention,
            event_retention,
            ledger_backlog_max,
            webhook_retry_schedule,
            webhook_backlog_max,
            web_dir: PathBuf::from(get("WEB_DIR").unwrap_or_else(|| DEFAULT_WEB_DIR.to_owned())),
        })
    }

    /// The token verifier these settings describe (already checked to build in `from_lookup`).
    pub fn verifier(&self) -> Result<TokenVerifier, ConfigError> {
        TokenVerifier::new(
            &self.jwt_key,
            &self.jwt_audience,
            self.jwt_issuer.as_deref(),
        )
        .map_err(|e| ConfigError::new("JWT_SECRET", e))
    }
}

/// What the ledger and the payroll export need: a subset of [`Settings`] that needs no JWT key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSettings {
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `DISPATCH_NAMESPACE`.
    pub namespace: String,
    /// `BREAKS_PAID`.
    pub breaks_paid: bool,
}

impl LedgerSettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let namespace = get("DISPATCH_NAMESPACE").unwrap_or_else(|| "dispatch".into());
        check_identifier(&namespace).map_err(|e| ConfigError::new("DISPATCH_NAMESPACE", e))?;
        let database_url = get("DATABASE_URL")
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/dispatch".into());
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(ConfigError::new(
                "DATABASE_URL",
                format!("{database_url:?} is not a postgres:// URL"),
            ));
        }
        let breaks_paid = match get("BREAKS_PAID").as_deref().map(str::trim) {
            None => false,
            Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(other) => {
                return Err(ConfigError::new(
                    "BREAKS_PAID",
                    format!("{other:?} is not true or false"),
                ))
            }
        };
        Ok(Self {
            database_url,
            namespace,
            breaks_paid,
        })
    }
}

fn listen_addr(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let value = get(var).unwrap_or_else(|| default.to_owned());
    let ok = value
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if ok {
        Ok(value)
    } else {
        Err(ConfigError::new(
            var,
            format!("{value:?} is not a host:port address"),
        ))
    }
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(raw) = get(var) else {
        return Ok(default);
    };
    let n: u64 = raw
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(var, format!("{raw:?} is not a whole number")))?;
    if !(min..=max).contains(&n) {
        return Err(ConfigError::new(
            var,
            format!("{n} is out of range {min}..={max}"),
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = settings(&[("JWT_SECRET", "x")]).expect("a secret is enough");
        assert_eq!(s.dispatcher_listen, "127.0.0.1:8080");
        assert_eq!(s.agent_api_listen, "127.0.0.1:8081");
        assert_eq!(s.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(s.redis_min_replicas, 0);
        assert_eq!(s.namespace, "dispatch");
        assert_eq!(s.offer_timeout, Duration::from_secs(20));
        assert_eq!(s.missed_offers_before_away, 2);
        assert_eq!(s.disconnect_grace, Duration::from_secs(60));
        assert!(!s.breaks_paid);
        assert!(s.agent_app_origins.is_empty());
        assert_eq!(s.ticket_retention, Duration::from_secs(3600));
        assert_eq!(s.event_retention, Duration::from_secs(3600));
        assert_eq!(s.ledger_backlog_max, 5_000_000);
        assert_eq!(s.webhook_retry_schedule.len(), 7);
        assert_eq!(s.webhook_retry_schedule[1], Duration::from_secs(300));
        assert_eq!(s.webhook_backlog_max, 10_000);
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(settings(&[]).expect_err("no key").var, "JWT_SECRET");
        let e = settings(&[("JWT_SECRET", "x"), ("OFFER_TIMEOUT_SECS", "soon")]).expect_err("nan");
        assert_eq!(e.var, "OFFER_TIMEOUT_SECS");
        let e = settings(&[("JWT_SECRET", "x"), ("OFFER_TIMEOUT_SECS", "0")]).expect_err("zero");
        assert_eq!(e.var, "OFFER_TIMEOUT_SECS");
        for bad in ["999", "20000001", "lots"] {
            let e = settings(&[("JWT_SECRET", "x"), ("LEDGER_BACKLOG_MAX", bad)]).expect_err(bad);
            assert_eq!(e.var, "LEDGER_BACKLOG_MAX");
        }
        for bad in ["one", "-1", "17"] {
            let e = settings(&[("JWT_SECRET", "x"), ("REDIS_MIN_REPLICAS", bad)]).expect_err(bad);
            assert_eq!(e.var, "REDIS_MIN_REPLICAS");
        }
        for bad in ["5,soon", "0", "5,,6", "86401"] {
            let e =
                settings(&[("JWT_SECRET", "x"), ("WEBHOOK_RETRY_SCHEDULE", bad)]).expect_err(bad);
            assert_eq!(e.var, "WEBHOOK_RETRY_SCHEDULE");
        }
        let s = settings(&[("JWT_SECRET", "x"), ("WEBHOOK_RETRY_SCHEDULE", "1, 2")]).expect("ok");
        assert_eq!(
            s.webhook_retry_schedule,
            [Duration::from_secs(1), Duration::from_secs(2)]
        );
        let e = settings(&[("JWT_SECRET", "x"), ("BREAKS_PAID", "maybe")]).expect_err("bool");
        assert_eq!(e.var, "BREAKS_PAID");
        let e = settings(&[("JWT_SECRET", "x"), ("DISPATCH_NAMESPACE", "a{b}")]).expect_err("ns");
        assert_eq!(e.var, "DISPATCH_NAMESPACE");
        let e = settings(&[("JWT_PUBLIC_KEY_FILE", "/nonexistent.pem")]).expect_err("file");
        assert_eq!(e.var, "JWT_PUBLIC_KEY_FILE");
        let e = settings(&[("JWT_SECRET", "x"), ("REDIS_URL", "http://x")]).expect_err("url");
        assert_eq!(e.var, "REDIS_URL");
        let e = settings(&[("JWT_SECRET", "x"), ("DISPATCHER_LISTEN", "nope")]).expect_err("addr");
        assert_eq!(e.var, "DISPATCHER_LISTEN");
        let e = settings(&[("JWT_SECRET", "x"), ("TICKET_RETENTION_SECS", "0")]).expect_err("0");
        assert_eq!(e.var, "TICKET_RETENTION_SECS");
        let e =
            settings(&[("JWT_SECRET", "x"), ("AGENT_APP_ORIGINS", "ftp://x")]).expect_err("origin");
        assert_eq!(e.var, "AGENT_APP_ORIGINS");
    }

    #[test]
    fn origins_are_split_and_trimmed() {
        let s = settings(&[
            ("JWT_SECRET", "x"),
            (
                "AGENT_APP_ORIGINS",
                "https://app.example, http://localhost:3000/",
            ),
        ])
        .expect("valid");
        assert_eq!(
            s.agent_app_origins,
            vec!["https://app.example", "http://localhost:3000"]
        );
    }
}
