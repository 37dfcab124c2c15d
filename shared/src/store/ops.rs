//! One typed method per function of the library: its arguments in, its reply type out.

use std::time::Duration;

use super::reply::{
    ConnectReply, Count, CreatedTicket, Done, Expired, GraceEnded, Ids, LeaseState, Routed,
    StatusNow, Swept, Upserted,
};
use super::{Function, Store, StoreError};
use crate::domain::{
    AgentId, AgentProfile, AgentStatus, DeclineReason, NewTicket, Note, OfferId, Outcome,
    RequestedStatus, TicketId,
};
use crate::events::StreamId;
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
    /// The value of hash field `name` (`req`, `region`, ...), if the ticket has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The ticket's queue class (see [`crate::keys::queue_class`]).
    pub fn queue_class(&self) -> String {
        crate::keys::queue_class(
            self.get("req").unwrap_or_default(),
            self.get("region").unwrap_or_default(),
        )
    }

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

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

impl Store {
    /// The two arguments every transition that may free an agent ends with: the id of the offer
    /// it makes that agent, if any, and how long the offer lasts.
    fn next_offer(&self) -> [String; 2] {
        [OfferId::generate().to_string(), millis(self.offer_timeout)]
    }

    /// Creates or replaces a profile. A free agent is offered the best waiting ticket it can
    /// now take.
    pub async fn put_agent(&self, id: &AgentId, p: &ProfileFields) -> Result<Upserted, StoreError> {
        let offer = self.next_offer();
        let (max, rate) = (p.max.to_string(), p.rate.to_string());
        self.call(
            Function::PutAgent,
            &[
                id.as_str(),
                &p.json,
                &p.langs,
                &p.skills,
                &p.regions,
                &max,
                &rate,
                &p.currency,
                &p.tz,
                &offer[0],
                &offer[1],
            ],
        )
        .await
    }

    /// Removes an agent: closes its connection, ends its shift, requeues its work.
    pub async fn remove_agent(&self, id: &AgentId) -> Result<(), StoreError> {
        self.call::<Done>(Function::RemoveAgent, &[id.as_str()])
            .await
            .map(drop)
    }

    /// Creates a ticket, or finds the one created before under the same idempotency key. A new
    /// ticket is routed in the same call: offered to the best eligible agent (for the store's
    /// offer timeout) or parked; with nobody eligible among the first `page` free-index entries
    /// it is left routing, for [`Store::route_ticket`] to go on from where it stopped.
    pub async fn create_ticket(
        &self,
        id: &TicketId,
        idempotency: Option<(&str, &str)>,
        fields: &NewTicketFields,
        page: u64,
    ) -> Result<CreatedTicket, StoreError> {
        let (key, hash) = idempotency.unwrap_or(("", ""));
        let page = page.to_string();
        let offer = self.next_offer();
        let mut args: Vec<&str> = vec![id.as_str(), key, hash, &page, &offer[0], &offer[1]];
        for (k, v) in &fields.0 {
            args.push(k);
            args.push(v);
        }
        self.call(Function::CreateTicket, &args).await
    }

    /// Routes a queued ticket by the choice policy, in one call: offered to the best eligible
    /// agent, or parked when nobody can take it; `offset` and `limit` bound the free-index
    /// entries looked at while nobody eligible is found ([`Routed::More`] says where to go on).
    pub async fn route_ticket(
        &self,
        ticket: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Routed, StoreError> {
        let offer = self.next_offer();
        self.call(
            Function::RouteTicket,
            &[
                ticket,
                &offset.to_string(),
                &limit.to_string(),
                &offer[0],
                &offer[1],
            ],
        )
        .await
    }

    /// Routing tickets no dispatcher has finished with for `older` (it died): up to `limit`,
    /// each handed to this caller only.
    pub async fn stale_routing(
        &self,
        limit: u32,
        older: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let ids: Ids = self
            .call(
                Function::StaleRouting,
                &[&limit.to_string(), &millis(older)],
            )
            .await?;
        Ok(ids.0)
    }

    /// The queue sweep over the free agents of `language`, `count` of them from index entry
    /// `offset`: each is offered the best waiting ticket it may take. Returns where to go on
    /// (0: from the start) and how many offers were made.
    pub async fn sweep(
        &self,
        language: &str,
        offset: u64,
        count: u32,
    ) -> Result<(u64, u32), StoreError> {
        let next = self.next_offer();
        let Swept {
            next_offset,
            offers,
        } = self
            .call(
                Function::Sweep,
                &[
                    language,
                    &offset.to_string(),
                    &count.to_string(),
                    &next[0],
                    &next[1],
                ],
            )
            .await?;
        Ok((next_offset, offers))
    }

    /// The agent accepts an offer; returns the `assigned` frame. An agent with capacity left is
    /// offered the best waiting ticket.
    pub async fn accept(
        &self,
        agent: &AgentId,
        offer: &OfferId,
    ) -> Result<AssignedFrame, StoreError> {
        let next = self.next_offer();
        self.call(
            Function::Accept,
            &[agent.as_str(), offer.as_str(), &next[0], &next[1]],
        )
        .await
    }

    /// The agent declines an offer (and is offered the best waiting ticket).
    pub async fn decline(
        &self,
        agent: &AgentId,
        offer: &OfferId,
        reason: Option<&DeclineReason>,
    ) -> Result<(), StoreError> {
        let next = self.next_offer();
        self.call::<Done>(
            Function::Decline,
            &[
                agent.as_str(),
                offer.as_str(),
                reason.map_or("", DeclineReason::as_str),
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
        note: Option<&Note>,
    ) -> Result<(), StoreError> {
        let next = self.next_offer();
        self.call::<Done>(
            Function::Complete,
            &[
                agent.as_str(),
                ticket.as_str(),
                outcome.as_str(),
                note.map_or("", Note::as_str),
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
        self.call::<Done>(
            Function::CancelTicket,
            &[ticket.as_str(), &next[0], &next[1]],
        )
        .await
        .map(drop)
    }

    /// The agent asks for a status; returns the status and shift now. An agent that goes
    /// available is offered the best waiting ticket.
    pub async fn set_status(
        &self,
        agent: &AgentId,
        status: RequestedStatus,
    ) -> Result<StatusNow, StoreError> {
        let shift = format!("s-{}", uuid::Uuid::new_v4().simple());
        let next = self.next_offer();
        self.call(
            Function::SetStatus,
            &[
                agent.as_str(),
                AgentStatus::from(status).as_str(),
                &shift,
                &next[0],
                &next[1],
            ],
        )
        .await
    }

    /// Binds the agent's live connection to `conn` on gateway `instance`, whose pushes then go
    /// on that instance's own channel, as frames ready to send. An agent free again is offered
    /// the best waiting ticket (in the reply's `offer_id`).
    pub async fn connect(
        &self,
        agent: &AgentId,
        conn: &str,
        instance: &str,
    ) -> Result<ConnectReply, StoreError> {
        let next = self.next_offer();
        // This build's gateways read frames ready to send on their own sharded push channel
        // (`Keys::push_gateway`, `U.push`, `Store::subscribe`).
        self.call(
            Function::Connect,
            &[agent.as_str(), conn, instance, &next[0], &next[1], "3"],
        )
        .await
    }

    /// Gateway `instance` got the push of `offer` for `agent` and holds no connection of it:
    /// if Redis still records the agent as connected there with that offer pending, that
    /// connection is dropped now (grace `grace`), as its disconnect would drop it, and the offer
    /// withdrawn, not missed. Whether it was.
    pub async fn offer_unreached(
        &self,
        agent: &str,
        offer: &str,
        instance: &str,
        grace: Duration,
    ) -> Result<bool, StoreError> {
        let n: Count = self
            .call(
                Function::OfferUnreached,
                &[agent, offer, instance, &millis(grace)],
            )
            .await?;
        Ok(n.0 == 1)
    }

    /// The connection `conn` of the agent closed.
    pub async fn disconnect(
        &self,
        agent: &AgentId,
        conn: &str,
        grace: Duration,
    ) -> Result<(), StoreError> {
        self.call::<Done>(
            Function::Disconnect,
            &[agent.as_str(), conn, &millis(grace)],
        )
        .await
        .map(drop)
    }

    /// Handles up to `limit` deadlines that passed: pending offers lapse (the agents freed are
    /// offered the best waiting tickets), those of offers answered before are dropped.
    pub async fn expire_offers(
        &self,
        limit: u32,
        missed_before_away: u32,
    ) -> Result<Expired, StoreError> {
        let next = self.next_offer();
        self.call(
            Function::ExpireOffers,
            &[
                &limit.to_string(),
                &missed_before_away.to_string(),
                &next[0],
                &next[1],
            ],
        )
        .await
    }

    /// Ends up to `limit` shifts whose grace period ran out; how many.
    pub async fn expire_grace(&self, limit: u32) -> Result<GraceEnded, StoreError> {
        self.call(Function::ExpireGrace, &[&limit.to_string()])
            .await
    }

    /// Treats every connection of a silent gateway instance as dropped at its last heartbeat.
    pub async fn reap_gateway(&self, instance: &str, grace: Duration) -> Result<u32, StoreError> {
        let n: Count = self
            .call(Function::ReapGateway, &[instance, &millis(grace)])
            .await?;
        Ok(n.0)
    }

    /// Removes from Redis up to `limit` tickets that ended over `retention` ago and whose end
    /// the ledger has stored; how many.
    pub async fn purge_tickets(&self, retention: Duration, limit: u32) -> Result<u32, StoreError> {
        let n: Count = self
            .call(
                Function::PurgeTickets,
                &[&millis(retention), &limit.to_string()],
            )
            .await?;
        Ok(n.0)
    }

    /// Records that the ledger has committed every event up to `id` (the mark only moves on).
    pub async fn ledger_stored(&self, id: StreamId) -> Result<(), StoreError> {
        self.call::<Done>(Function::LedgerStored, &[&id.to_string()])
            .await
            .map(drop)
    }

    /// Takes or renews the lease `name` for `holder` for `ttl`; `true` if `holder` holds it.
    pub async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let state: LeaseState = self
            .call(Function::Lease, &[name, holder, &millis(ttl)])
            .await?;
        Ok(state == LeaseState::Ours)
    }
}
