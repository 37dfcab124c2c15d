//! Typed calls of the function library's transitions.

use std::time::Duration;

use super::read::{assigned_frame, pairs};
use super::{num, Store, StoreError};
use crate::domain::{
    AgentId, AgentProfile, AgentStatus, NewTicket, OfferId, Outcome, RequestedStatus, TicketId,
};
use crate::protocol::AssignedFrame;

/// A profile flattened into what the Lua side indexes on.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileFields {
    /// The profile as JSON (what `GET` returns).
    pub json: String,
    /// `sv,en`.
    pub langs: String,
    /// `refunds:4,disputes:2`.
    pub skills: String,
    /// `,eu,nordics,`: the geofences containing the agent's location.
    pub regions: String,
    /// Capacity.
    pub max: u8,
    /// Rate at shift start.
    pub rate: u32,
    /// Currency.
    pub currency: String,
    /// Time zone name.
    pub tz: String,
}

impl ProfileFields {
    /// Flattens `profile`; `regions` are the geofence names containing its location.
    pub fn new(profile: &AgentProfile, regions: &[String]) -> Self {
        let langs: Vec<&str> = profile
            .languages
            .as_slice()
            .iter()
            .map(|l| l.as_str())
            .collect();
        Self {
            json: serde_json::to_string(profile).unwrap_or_default(),
            langs: langs.join(","),
            skills: compact_skills(&profile.skills),
            regions: format!(",{},", regions.join(",")),
            max: profile.max_concurrent.get(),
            rate: profile.hourly_rate_cents.get(),
            currency: profile.currency.to_string(),
            tz: String::from(profile.timezone),
        }
    }
}

fn compact_skills(skills: &crate::domain::Skills) -> String {
    skills
        .iter()
        .map(|(s, l)| format!("{s}:{l}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A ticket flattened into hash fields.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTicketFields(Vec<(&'static str, String)>);

impl NewTicketFields {
    /// Flattens a validated ticket.
    pub fn new(t: &NewTicket) -> Self {
        let context = t
            .context
            .as_ref()
            .map(|c| serde_json::Value::Object(c.clone()).to_string())
            .unwrap_or_else(|| "{}".into());
        Self(vec![
            ("conv", t.conversation_id.to_string()),
            ("lang", t.language.to_string()),
            ("req", compact_skills(&t.skills)),
            (
                "skills",
                serde_json::to_string(&t.skills).unwrap_or_else(|_| "{}".into()),
            ),
            ("prio", t.priority.get().to_string()),
            (
                "region",
                t.region.as_ref().map(|r| r.to_string()).unwrap_or_default(),
            ),
            (
                "pref",
                t.preferred_agent_id
                    .as_ref()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
            ),
            ("summary", t.summary.to_string()),
            ("context", context),
        ])
    }
}

/// One agent that may be the best for a ticket, with what the choice policy orders by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The agent.
    pub agent_id: String,
    /// Tickets it holds.
    pub active: u32,
    /// Its last assignment (or going available), ms.
    pub idle_since: i64,
    /// Its summed level over the ticket's skills.
    pub summed_level: u32,
    /// Whether it is the ticket's preferred agent.
    pub preferred: bool,
}

/// A page of candidates and where to continue, if the index holds more to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidatePage {
    /// Candidates found on this page.
    pub candidates: Vec<Candidate>,
    /// The offset of the next page, if the page ended before an eligible agent was found.
    pub next_offset: Option<u64>,
}

/// What `create_ticket` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreatedTicket {
    /// A new ticket, created at `created_ms` (Redis's clock), with the first page of its
    /// candidates: route it (`Matcher::route_created`). An empty page that ends the index means
    /// no agent can take it now, and it waits in its queue.
    Created {
        /// The ticket.
        id: String,
        /// When it was created, ms.
        created_ms: i64,
        /// Its first page of candidates.
        page: CandidatePage,
    },
    /// The ticket an earlier request with the same `Idempotency-Key` and body created.
    Existing(String),
}

/// Parses `[next offset, id, active, idle_since, summed level, preferred, ...]`.
fn candidate_page(words: &[String]) -> Result<CandidatePage, StoreError> {
    let next: i64 = num("candidates offset", words.first())?;
    let mut candidates = Vec::new();
    for c in words.get(1..).unwrap_or_default().chunks(5) {
        if c.len() < 5 {
            return Err(StoreError::Corrupt("candidates: short record".into()));
        }
        candidates.push(Candidate {
            agent_id: c[0].clone(),
            active: num("active", Some(&c[1]))?,
            idle_since: num("idle_since", Some(&c[2]))?,
            summed_level: num("summed_level", Some(&c[3]))?,
            preferred: c[4] == "1",
        });
    }
    Ok(CandidatePage {
        candidates,
        next_offset: u64::try_from(next).ok(),
    })
}

/// What `connect` tells the gateway about the agent, to build its `welcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectReply {
    /// Status now.
    pub status: AgentStatus,
    /// Shift now.
    pub shift_id: Option<String>,
    /// Pending offer.
    pub offer_id: Option<String>,
    /// Tickets held.
    pub tickets: Vec<String>,
}

fn non_empty(s: Option<&String>) -> Option<String> {
    s.filter(|s| !s.is_empty()).cloned()
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

impl Store {
    /// The two arguments every transition that may free an agent ends with: the id of the offer
    /// it makes that agent, if any, and how long the offer lasts.
    fn next_offer(&self) -> [String; 2] {
        [OfferId::generate().to_string(), millis(self.offer_timeout)]
    }

    /// Creates or replaces a profile; `true` when created. A free agent is offered the best
    /// waiting ticket it can now take.
    pub async fn put_agent(&self, id: &AgentId, p: &ProfileFields) -> Result<bool, StoreError> {
        let offer = self.next_offer();
        let reply = self
            .fcall(
                "put_agent",
                &[
                    id.as_str(),
                    &p.json,
                    &p.langs,
                    &p.skills,
                    &p.regions,
                    &p.max.to_string(),
                    &p.rate.to_string(),
                    &p.currency,
                    &p.tz,
                    &offer[0],
                    &offer[1],
                ],
            )
            .await?;
        Ok(reply[0] == "created")
    }

    /// Removes an agent: closes its connection, ends its shift, requeues its work.
    pub async fn remove_agent(&self, id: &AgentId) -> Result<(), StoreError> {
        self.fcall("remove_agent", &[id.as_str()]).await.map(drop)
    }

    /// Creates a ticket, or finds the one created before under the same idempotency key. A new
    /// ticket comes with its first page of candidates (`page` index entries looked at).
    pub async fn create_ticket(
        &self,
        id: &TicketId,
        idempotency: Option<(&str, &str)>,
        fields: &NewTicketFields,
        page: u64,
    ) -> Result<CreatedTicket, StoreError> {
        let (key, hash) = idempotency.unwrap_or(("", ""));
        let page = page.to_string();
        let mut args: Vec<&str> = vec![id.as_str(), key, hash, &page];
        for (k, v) in &fields.0 {
            args.push(k);
            args.push(v);
        }
        let reply = self.fcall("create_ticket", &args).await?;
        let ticket = reply
            .get(1)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt("create_ticket: no id".into()))?;
        if reply[0] != "created" {
            return Ok(CreatedTicket::Existing(ticket));
        }
        Ok(CreatedTicket::Created {
            id: ticket,
            created_ms: num("create_ticket created", reply.get(2))?,
            page: candidate_page(reply.get(3..).unwrap_or_default())?,
        })
    }

    /// A page of candidates for a queued ticket; `None` if it is no longer queued.
    pub async fn candidates(
        &self,
        ticket: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Option<CandidatePage>, StoreError> {
        let reply = self
            .fcall(
                "candidates",
                &[ticket, &offset.to_string(), &limit.to_string()],
            )
            .await?;
        if reply[0] != "candidates" {
            return Ok(None);
        }
        candidate_page(&reply[1..]).map(Some)
    }

    /// Offers a queued ticket to an agent; `false` if either is no longer free for it.
    pub async fn offer_ticket(
        &self,
        ticket: &str,
        agent: &str,
        offer: &OfferId,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let reply = self
            .fcall(
                "offer_ticket",
                &[ticket, agent, offer.as_str(), &millis(timeout)],
            )
            .await?;
        Ok(reply[0] == "offered")
    }

    /// Routing tickets no dispatcher has finished with for `older` (it died): up to `limit`,
    /// each handed to this caller only.
    pub async fn stale_routing(
        &self,
        limit: u32,
        older: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let reply = self
            .fcall("stale_routing", &[&limit.to_string(), &millis(older)])
            .await?;
        Ok(reply.into_iter().skip(1).collect())
    }

    /// The agent accepts an offer; returns the `assigned` frame. An agent with capacity left is
    /// offered the best waiting ticket.
    pub async fn accept(
        &self,
        agent: &AgentId,
        offer: &OfferId,
    ) -> Result<AssignedFrame, StoreError> {
        let next = self.next_offer();
        let mut reply = self
            .fcall(
                "accept",
                &[agent.as_str(), offer.as_str(), &next[0], &next[1]],
            )
            .await?;
        if reply.len() < 2 {
            return Err(StoreError::Corrupt("accept: no ticket".into()));
        }
        let fields = reply.split_off(2);
        Ok(assigned_frame(&reply[1], &pairs(fields)))
    }

    /// The agent declines an offer (and is offered the best waiting ticket).
    pub async fn decline(
        &self,
        agent: &AgentId,
        offer: &OfferId,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let next = self.next_offer();
        self.fcall(
            "decline",
            &[
                agent.as_str(),
                offer.as_str(),
                reason.unwrap_or(""),
                &next[0],
                &next[1],
            ],
        )
        .await
        .map(drop)
    }

    /// The agent completes a ticket (and is offered the best waiting ticket).
    pub async fn complete(
        &self,
        agent: &AgentId,
        ticket: &TicketId,
        outcome: Outcome,
        note: Option<&str>,
    ) -> Result<(), StoreError> {
        let next = self.next_offer();
        self.fcall(
            "complete",
            &[
                agent.as_str(),
                ticket.as_str(),
                outcome.as_str(),
                note.unwrap_or(""),
                &next[0],
                &next[1],
            ],
        )
        .await
        .map(drop)
    }

    /// Cancels a ticket. The agent it frees is offered the best waiting ticket.
    pub async fn cancel_ticket(&self, ticket: &TicketId) -> Result<(), StoreError> {
        let next = self.next_offer();
        self.fcall("cancel_ticket", &[ticket.as_str(), &next[0], &next[1]])
            .await
            .map(drop)
    }

    /// The agent asks for a status; returns the status and shift now. An agent that goes
    /// available is offered the best waiting ticket.
    pub async fn set_status(
        &self,
        agent: &AgentId,
        status: RequestedStatus,
    ) -> Result<(AgentStatus, Option<String>), StoreError> {
        let shift = format!("s-{}", uuid::Uuid::new_v4().simple());
        let next = self.next_offer();
        let reply = self
            .fcall(
                "set_status",
                &[
                    agent.as_str(),
                    AgentStatus::from(status).as_str(),
                    &shift,
                    &next[0],
                    &next[1],
                ],
            )
            .await?;
        let status = reply
            .get(1)
            .and_then(|s| AgentStatus::parse(s))
            .ok_or_else(|| StoreError::Corrupt("set_status: no status".into()))?;
        Ok((status, non_empty(reply.get(2))))
    }

    /// Binds the agent's live connection to `conn` on gateway `instance`. An agent free again is
    /// offered the best waiting ticket (in the reply's `offer_id`).
    pub async fn connect(
        &self,
        agent: &AgentId,
        conn: &str,
        instance: &str,
    ) -> Result<ConnectReply, StoreError> {
        let next = self.next_offer();
        let reply = self
            .fcall(
                "connect",
                &[agent.as_str(), conn, instance, &next[0], &next[1]],
            )
            .await?;
        let status = reply
            .get(1)
            .and_then(|s| AgentStatus::parse(s))
            .ok_or_else(|| StoreError::Corrupt("connect: no status".into()))?;
        Ok(ConnectReply {
            status,
            shift_id: non_empty(reply.get(2)),
            offer_id: non_empty(reply.get(3)),
            tickets: reply.get(4..).map(<[String]>::to_vec).unwrap_or_default(),
        })
    }

    /// The connection `conn` of the agent closed.
    pub async fn disconnect(
        &self,
        agent: &AgentId,
        conn: &str,
        grace: Duration,
    ) -> Result<(), StoreError> {
        self.fcall("disconnect", &[agent.as_str(), conn, &millis(grace)])
            .await
            .map(drop)
    }

    /// Lapses up to `limit` offers past their deadline; how many lapsed. The agents freed are
    /// offered the best waiting tickets.
    pub async fn expire_offers(
        &self,
        limit: u32,
        missed_before_away: u32,
    ) -> Result<u32, StoreError> {
        let next = self.next_offer();
        let reply = self
            .fcall(
                "expire_offers",
                &[
                    &limit.to_string(),
                    &missed_before_away.to_string(),
                    &next[0],
                    &next[1],
                ],
            )
            .await?;
        num("expired", reply.get(1))
    }

    /// Ends up to `limit` shifts whose grace period ran out; how many.
    pub async fn expire_grace(&self, limit: u32) -> Result<u32, StoreError> {
        let reply = self.fcall("expire_grace", &[&limit.to_string()]).await?;
        num("grace", reply.get(1))
    }

    /// Treats every connection of a silent gateway instance as dropped at its last heartbeat.
    pub async fn reap_gateway(&self, instance: &str, grace: Duration) -> Result<u32, StoreError> {
        let reply = self
            .fcall("reap_gateway", &[instance, &millis(grace)])
            .await?;
        num("reaped", reply.get(1))
    }

    /// Takes or renews the lease `name` for `holder` for `ttl`; `true` if `holder` holds it.
    pub async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let reply = self.fcall("lease", &[name, holder, &millis(ttl)]).await?;
        Ok(reply[0] == "ok")
    }
}
