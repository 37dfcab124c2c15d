//! The wait estimate (API.md §8), from what the namespace has measured.
//!
//! Each dispatcher keeps, per language, the times of the latest assignments (at most
//! [`SAMPLES`] within [`WINDOW`]) and how long agents take to accept an offer, and, per agent,
//! its languages and whether it is online. It learns them from the stream, which its live
//! events reader follows anyway (and reads back [`WINDOW`] of at start), so every dispatcher
//! derives the same figures and a request costs no Redis call for them.
//!
//! The model is rate based: a queued ticket at place `p` waits until `p` more tickets of its
//! language have been assigned, at the rate they were assigned lately, so
//! `estimated_wait = p / rate`. While the queue is long every agent is busy, and the rate is
//! what the agents complete; the window keeps it to the last few minutes, so it follows a
//! change of staffing. Erlang C would ask for the arrival rate and handling time per agent and
//! assume both steady; the measured rate needs neither. With no assignment measured yet there
//! is no estimate (`null`), except that a new ticket of a language with a free agent waits 0.
//! An offered ticket waits about as long as its language's agents take to accept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::domain::AgentStatus;
use shared::events::{Event, StreamEvent};

use crate::metrics;

/// How far back assignments count.
pub const WINDOW: Duration = Duration::from_secs(10 * 60);
/// The most assignments kept per language.
pub const SAMPLES: usize = 100;
/// Assignments needed before there is a rate.
const MIN_SAMPLES: usize = 3;

#[derive(Debug, Default)]
struct Language {
    assigned: VecDeque<i64>,
    /// Mean offer-to-accept time, ms (exponentially weighted).
    accept_ms: Option<f64>,
}

#[derive(Debug, Default)]
struct Model {
    /// Live tickets: language, when created, and when their current offer was made.
    tickets: HashMap<String, Seen>,
    languages: HashMap<String, Language>,
    /// Agents: languages, status.
    agents: HashMap<String, (Vec<String>, AgentStatus)>,
}

#[derive(Debug, Clone)]
struct Seen {
    language: String,
    created: i64,
    offered: Option<i64>,
}

/// The shared model; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Waits {
    inner: Arc<Mutex<Model>>,
}

impl Waits {
    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether agent `id`'s languages are known (else the caller reads its profile and calls
    /// [`Waits::agent`]).
    pub fn knows_agent(&self, id: &str) -> bool {
        self.model().agents.contains_key(id)
    }

    /// Learns an agent's languages and status from its roster entry.
    pub fn learn_agent(&self, a: &shared::domain::AgentView) {
        let langs = a
            .profile
            .languages
            .as_slice()
            .iter()
            .map(|l| l.as_str().to_owned())
            .collect();
        self.agent(a.agent_id.as_str(), langs, a.state.status);
    }

    /// Agent `id` speaks `languages` and has `status`.
    pub fn agent(&self, id: &str, languages: Vec<String>, status: AgentStatus) {
        self.model()
            .agents
            .insert(id.to_owned(), (languages, status));
    }

    /// Learns from one stream entry (and counts the namespace's tickets and offers for
    /// `/metrics`).
    pub fn observe(&self, e: &StreamEvent) {
        let mut m = self.model();
        match &e.event {
            Event::TicketCreated {
                ticket,
                language,
                offer,
                ..
            } => {
                let offered = (!offer.is_empty()).then_some(e.ts);
                if offered.is_some() {
                    metrics::offer_made(0);
                }
                let seen = Seen {
                    language: language.clone(),
                    created: e.ts,
                    offered,
                };
                m.tickets.insert(ticket.clone(), seen);
            }
            Event::OfferCreated { ticket, .. } => {
                if let Some(t) = m.tickets.get_mut(ticket) {
                    t.offered = Some(e.ts);
                    metrics::offer_made(e.ts - t.created);
                }
            }
            Event::TicketAssigned { ticket, .. } => {
                let Some(seen) = m.tickets.get(ticket).cloned() else {
                    return;
                };
                let l = m.languages.entry(seen.language).or_default();
                l.assigned.push_back(e.ts);
                while l.assigned.len() > SAMPLES {
                    l.assigned.pop_front();
                }
                if let Some(at) = seen.offered {
                    let took = (e.ts - at).max(0) as f64;
                    l.accept_ms = Some(l.accept_ms.map_or(took, |m| 0.8 * m + 0.2 * took));
                }
            }
            Event::TicketCompleted {
                ticket, outcome, ..
            } => {
                if let Some(t) = m.tickets.remove(ticket) {
                    metrics::ticket_ended(&t.language, outcome.as_str());
                }
            }
            Event::TicketCancelled { ticket, .. } => {
                if let Some(t) = m.tickets.remove(ticket) {
                    metrics::ticket_ended(&t.language, "cancelled");
                }
            }
            Event::AgentStatus { agent, status, .. } => {
                if let Some(a) = m.agents.get_mut(agent) {
                    a.1 = *status;
                }
            }
            Event::AgentRemoved { agent } => {
                m.agents.remove(agent);
            }
            _ => {}
        }
    }

    /// Assignments per second of `lang` lately, if enough were measured.
    fn rate(l: &Language, now_ms: i64) -> Option<f64> {
        let since = now_ms - i64::try_from(WINDOW.as_millis()).unwrap_or(i64::MAX);
        let recent: Vec<i64> = l.assigned.iter().copied().filter(|t| *t >= since).collect();
        if recent.len() < MIN_SAMPLES {
            return None;
        }
        let span = (now_ms - recent[0]).max(1000) as f64 / 1000.0;
        Some(recent.len() as f64 / span)
    }

    /// The seconds a ticket of `lang` at place `position` in the queue waits.
    pub fn queued(&self, lang: &str, position: u64, now_ms: i64) -> Option<u64> {
        let m = self.model();
        let rate = Self::rate(m.languages.get(lang)?, now_ms)?;
        Some((position as f64 / rate).round() as u64)
    }

    /// The seconds an offered ticket of `lang` waits for its agent's answer.
    pub fn offered(&self, lang: &str) -> Option<u64> {
        let m = self.model();
        let ms = m.languages.get(lang)?.accept_ms?;
        Some((ms / 1000.0).round() as u64)
    }

    /// Online agents who speak `lang`.
    pub fn online(&self, lang: &str) -> u64 {
        let m = self.model();
        m.agents
            .values()
            .filter(|(langs, status)| {
                *status != AgentStatus::Offline && langs.iter().any(|l| l == lang)
            })
            .count() as u64
    }

    /// The languages online agents speak.
    pub fn online_languages(&self) -> Vec<String> {
        let m = self.model();
        let mut out: Vec<String> = m
            .agents
            .values()
            .filter(|(_, status)| *status != AgentStatus::Offline)
            .flat_map(|(langs, _)| langs.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// How many agents of the roster have each status.
    pub fn by_status(&self) -> HashMap<AgentStatus, u64> {
        let mut out = HashMap::new();
        for (_, status) in self.model().agents.values() {
            *out.entry(*status).or_default() += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::events::StreamId;

    fn entry(ts: i64, event: Event) -> StreamEvent {
        StreamEvent {
            id: StreamId { ms: ts, seq: 0 },
            ts,
            event,
        }
    }

    #[test]
    fn the_estimate_is_the_place_over_the_recent_assignment_rate() {
        let w = Waits::default();
        for i in 0..10 {
            let t = format!("t-{i}");
            w.observe(&entry(
                i * 1000,
                Event::TicketCreated {
                    ticket: t.clone(),
                    language: "sv".into(),
                    priority: 5,
                    agent: "a".into(),
                    offer: "o".into(),
                    expires: Some(0),
                    queued: false,
                },
            ));
            // One a second, each accepted 2 s after its offer.
            w.observe(&entry(
                i * 1000 + 2000,
                Event::TicketAssigned {
                    ticket: t,
                    agent: "a".into(),
                    offer: "o".into(),
                    shift: String::new(),
                },
            ));
        }
        // 10 assignments over the 10 s since the first: 1 a second.
        assert_eq!(w.queued("sv", 30, 12_000), Some(30));
        assert_eq!(w.offered("sv"), Some(2));
        assert_eq!(w.queued("de", 1, 12_000), None);
        // Past the window, nothing is known any more.
        assert_eq!(w.queued("sv", 1, 12_000 + 11 * 60 * 1000), None);
    }
}
