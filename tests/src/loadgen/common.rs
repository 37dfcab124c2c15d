//! What both targets share: the seeded fleet and ticket mix, the clock, and the ticket
//! summaries that carry each ticket's send time.

use serde_json::{json, Value};

use crate::cli::Args;

/// The languages tickets and agents use.
pub const LANGS: [&str; 6] = ["en", "sv", "de", "fr", "es", "fi"];
/// The language of "not eligible" agents: no ticket asks for it.
pub const OTHER_LANG: &str = "nl";
/// The skills.
pub const SKILLS: [&str; 8] = [
    "refunds",
    "billing",
    "disputes",
    "shipping",
    "returns",
    "technical",
    "accounts",
    "fraud",
];
/// The length of every ticket summary, so payloads are the same size for both targets.
pub const SUMMARY_LEN: usize = 120;

// ---------------------------------------------------------------------------------------------
// Randomness

/// A small deterministic PRNG (xorshift64*, seeded through splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n` ≥ 1).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Exponentially distributed with mean `mean`.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }
}

// ---------------------------------------------------------------------------------------------
// The clock

/// Microseconds since the Unix epoch: one clock for send and receive times, shared by the
/// generator's processes (a ticket sent by one may be offered to an agent of another).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The fleet

/// What an agent does with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Goes `available` and takes offers.
    Free,
    /// Connected but `offline`.
    Offline,
    /// Connected, on `break`.
    Break,
    /// `available` but speaks only a language no ticket uses.
    OtherLanguage,
}

/// One simulated agent.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub id: String,
    pub langs: Vec<&'static str>,
    pub skills: Vec<(&'static str, u8)>,
    pub max: u8,
    pub role: Role,
}

impl AgentSpec {
    /// The roster profile (`PUT /v1/agents/{id}`).
    pub fn profile(&self) -> Value {
        let skills: serde_json::Map<String, Value> = self
            .skills
            .iter()
            .map(|(s, l)| ((*s).to_owned(), json!(l)))
            .collect();
        let mut p = e2e::profile(&self.langs, Value::Object(skills), self.max);
        p["display_name"] = json!(format!("Load {}", self.id));
        p
    }
}

/// The fleet for `args`: deterministic in `--seed`. Agent `i` is free when the running share
/// of free agents crosses an integer at `i`, so free agents are spread evenly over gateways and
/// source addresses; the others cycle through offline, break and another language.
pub fn fleet(args: &Args) -> Vec<AgentSpec> {
    let mut rng = Rng::new(args.seed);
    let mut other = 0usize;
    (0..args.agents)
        .map(|i| {
            let a = LANGS[rng.below(LANGS.len())];
            let langs = if rng.f64() < 0.5 {
                let mut b = LANGS[rng.below(LANGS.len())];
                while b == a {
                    b = LANGS[rng.below(LANGS.len())];
                }
                vec![a, b]
            } else {
                vec![a]
            };
            let s1 = rng.below(SKILLS.len());
            let s2 = (s1 + 1 + rng.below(SKILLS.len() - 1)) % SKILLS.len();
            let skills = vec![
                (SKILLS[s1], 1 + rng.below(5) as u8),
                (SKILLS[s2], 1 + rng.below(5) as u8),
            ];
            let max = 1 + rng.below(3) as u8;
            let share = args.free_share;
            let free = ((i + 1) as f64 * share).floor() > (i as f64 * share).floor();
            let role = if free {
                Role::Free
            } else {
                other += 1;
                match other % 3 {
                    1 => Role::Offline,
                    2 => Role::Break,
                    _ => Role::OtherLanguage,
                }
            };
            let langs = if role == Role::OtherLanguage {
                vec![OTHER_LANG]
            } else {
                langs
            };
            AgentSpec {
                id: format!("{}-{i}", args.agent_prefix),
                langs,
                skills,
                max,
                role,
            }
        })
        .collect()
}

/// The ticket mix: each ticket copies a language (and, half the time, one skill at a low
/// level) from a random free agent, so tickets follow the fleet's languages and most match.
pub struct TicketMix {
    rng: Rng,
    free: Vec<usize>,
}

/// A ticket about to be sent.
#[derive(Debug, Clone)]
pub struct TicketSpec {
    pub seq: u64,
    pub lang: &'static str,
    pub skills: Value,
    pub priority: u8,
}

impl TicketMix {
    pub fn new(seed: u64, specs: &[AgentSpec]) -> Self {
        let mut free: Vec<usize> = specs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.role == Role::Free)
            .map(|(i, _)| i)
            .collect();
        if free.is_empty() {
            free = (0..specs.len()).collect();
        }
        Self {
            rng: Rng::new(seed ^ 0x7469_636B_6574),
            free,
        }
    }

    pub fn next(&mut self, seq: u64, specs: &[AgentSpec]) -> TicketSpec {
        let Some(agent) =
            (!self.free.is_empty()).then(|| &specs[self.free[self.rng.below(self.free.len())]])
        else {
            return TicketSpec {
                seq,
                lang: "en",
                skills: json!({}),
                priority: 5,
            };
        };
        let lang = agent.langs[self.rng.below(agent.langs.len())];
        let skills = if self.rng.f64() < 0.5 {
            json!({})
        } else {
            let (name, level) = agent.skills[self.rng.below(agent.skills.len())];
            let low = (1 + self.rng.below(2) as u8).min(level);
            json!({ name: low })
        };
        TicketSpec {
            seq,
            lang,
            skills,
            priority: self.rng.below(10) as u8,
        }
    }
}

/// The fixed-length summary that carries the run, the sequence number and the send time.
pub fn summary(run: u32, seq: u64, sent_us: u64) -> String {
    const FILLER: &str =
        "Customer reports a double charge on the last order and asks for a refund \
                          to the original card; escalated by the assistant. ";
    let mut s = format!("lg {run:08x} {seq:010} {sent_us:016} ");
    while s.len() < SUMMARY_LEN {
        let need = SUMMARY_LEN - s.len();
        s.push_str(&FILLER[..need.min(FILLER.len())]);
    }
    s.truncate(SUMMARY_LEN);
    s
}

/// `(seq, sent_us)` of a summary of run `run`; `None` for anything else.
pub fn parse_summary(run: u32, summary: &str) -> Option<(u64, u64)> {
    let mut parts = summary.split(' ');
    if parts.next()? != "lg" || u32::from_str_radix(parts.next()?, 16).ok()? != run {
        return None;
    }
    let seq = parts.next()?.parse().ok()?;
    let sent = parts.next()?.parse().ok()?;
    Some((seq, sent))
}

/// The ticket body, the same for both targets (`POST /v1/tickets` body; the NATS payload).
pub fn ticket_body(t: &TicketSpec, run: u32, sent_us: u64) -> Value {
    let mut body = e2e::ticket(t.lang, t.skills.clone(), t.priority);
    body["summary"] = json!(summary(run, t.seq, sent_us));
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_round_trip_at_fixed_length() {
        let s = summary(0xabc, 42, 1_780_000_000_123_456);
        assert_eq!(s.len(), SUMMARY_LEN);
        assert_eq!(parse_summary(0xabc, &s), Some((42, 1_780_000_000_123_456)));
        assert_eq!(parse_summary(0xabd, &s), None);
        assert_eq!(summary(1, u64::MAX / 2, u64::MAX / 2).len(), SUMMARY_LEN);
    }

    #[test]
    fn fleet_is_deterministic_and_mixed() {
        let args = Args {
            agents: 300,
            free_share: 0.1,
            ..Args::default()
        };
        let a = fleet(&args);
        let b = fleet(&args);
        assert_eq!(a.len(), 300);
        assert_eq!(
            a.iter().map(|s| s.langs.clone()).collect::<Vec<_>>(),
            b.iter().map(|s| s.langs.clone()).collect::<Vec<_>>()
        );
        assert_eq!(a.iter().filter(|s| s.role == Role::Free).count(), 30);
        for s in &a {
            assert!((1..=3).contains(&s.max));
            assert_eq!(s.skills.len(), 2);
            assert_ne!(s.skills[0].0, s.skills[1].0);
            assert!(!s.langs.is_empty() && s.langs.len() <= 2);
        }
    }
}
