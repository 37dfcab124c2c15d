//! Reading the store after every step, comparing it with the model and checking the contract's
//! invariants on it.

use proptest::test_runner::TestCaseError;
use redis::AsyncCommands;
use shared::domain::TicketStatus;

use crate::case::{aid, fail, Case};
use crate::world::Lang;
use crate::IDS;

impl Case {
    /// Reads the store, compares it with the model and checks the invariants on it.
    pub(crate) async fn check(&mut self) -> Result<(), TestCaseError> {
        let keys = self.store.keys().clone();
        let mut conn = self.store.conn();
        let redis_err = |e: redis::RedisError| fail(format!("redis: {e}"));
        // Raw fields: each agent's pending offer; each ticket's offer and offer_agent; each
        // offer's status, ticket and agent.
        let mut pipe = redis::pipe();
        for id in IDS {
            pipe.hget(keys.agent(id), "offer");
        }
        for t in &self.m.tickets {
            pipe.hget(keys.ticket(&t.id), "offer")
                .hget(keys.ticket(&t.id), "offer_agent");
        }
        for o in &self.m.offers {
            pipe.hget(keys.offer(&o.id), "status")
                .hget(keys.offer(&o.id), "ticket")
                .hget(keys.offer(&o.id), "agent");
        }
        let raw: Vec<Option<String>> = pipe.query_async(&mut conn).await.map_err(redis_err)?;
        let raw: Vec<String> = raw.into_iter().map(Option::unwrap_or_default).collect();
        let (agent_offer, rest) = raw.split_at(IDS.len());
        let (ticket_raw, offer_raw) = rest.split_at(2 * self.m.tickets.len());
        // Where each ticket waits: its language's queue (parked) and the routing set.
        let mut pipe = redis::pipe();
        for t in &self.m.tickets {
            pipe.zscore(keys.queue(t.spec.lang.code()), &t.id)
                .zscore(keys.routing(), &t.id);
        }
        let waits: Vec<(Option<f64>, Option<f64>)> = if self.m.tickets.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn).await.map_err(redis_err)?
        };

        let mut views = Vec::new();
        for (a, id) in IDS.iter().enumerate() {
            let v = self
                .store
                .agent(&aid(a))
                .await
                .map_err(|e| fail(format!("agent {id}: {e}")))?;
            views.push(v);
        }
        let mut tickets = Vec::new();
        for t in 0..self.m.tickets.len() {
            let v = self
                .store
                .ticket(&self.ticket_id(t))
                .await
                .map_err(|e| fail(format!("ticket #{t}: {e} (not one of the five statuses?)")))?
                .ok_or_else(|| fail(format!("ticket #{t} is gone")))?;
            tickets.push(v);
        }

        // The model's view of the same.
        let mut diffs = Vec::new();
        for (a, v) in views.iter().enumerate() {
            let ag = &self.m.agents[a];
            let Some(v) = v else {
                if ag.exists {
                    diffs.push(format!("{} is not on the roster, model: it is", IDS[a]));
                }
                continue;
            };
            if !ag.exists {
                diffs.push(format!("{} is on the roster, model: removed", IDS[a]));
                continue;
            }
            let held = self.m.held_ids(a);
            let seen: Vec<String> = v
                .state
                .active_tickets
                .iter()
                .map(|t| t.to_string())
                .collect();
            let offer = ag
                .offer
                .map(|o| self.m.offers[o].id.clone())
                .unwrap_or_default();
            if v.state.status != ag.status {
                diffs.push(format!(
                    "{}: status {:?}, model {:?}",
                    IDS[a], v.state.status, ag.status
                ));
            }
            if v.state.connected != ag.connected {
                diffs.push(format!(
                    "{}: connected {}, model {}",
                    IDS[a], v.state.connected, ag.connected
                ));
            }
            if seen != held {
                diffs.push(format!(
                    "{}: active_tickets {seen:?}, model {held:?}",
                    IDS[a]
                ));
            }
            if agent_offer[a] != offer {
                diffs.push(format!(
                    "{}: pending offer {:?}, model {offer:?}",
                    IDS[a], agent_offer[a]
                ));
            }
        }
        for (t, v) in tickets.iter().enumerate() {
            let mt = &self.m.tickets[t];
            let agent = mt.agent.map(|a| IDS[a].to_owned());
            if v.status != mt.status {
                diffs.push(format!(
                    "ticket #{t}: status {:?}, model {:?}",
                    v.status, mt.status
                ));
            }
            if v.agent_id != agent {
                diffs.push(format!(
                    "ticket #{t}: agent_id {:?}, model {agent:?}",
                    v.agent_id
                ));
            }
            if v.offers_made != mt.offers_made {
                diffs.push(format!(
                    "ticket #{t}: offers_made {}, model {}",
                    v.offers_made, mt.offers_made
                ));
            }
            let parked = waits[t].0.is_some();
            if parked != mt.parked {
                diffs.push(format!(
                    "ticket #{t}: {} its queue, model: {}",
                    if parked { "in" } else { "not in" },
                    if mt.parked { "parked" } else { "not parked" }
                ));
            }
            let offer = mt
                .offer
                .map(|o| self.m.offers[o].id.clone())
                .unwrap_or_default();
            if ticket_raw[2 * t] != offer {
                diffs.push(format!(
                    "ticket #{t}: offer {:?}, model {offer:?}",
                    ticket_raw[2 * t]
                ));
            }
        }
        for (o, mo) in self.m.offers.iter().enumerate() {
            if offer_raw[3 * o] != mo.state.as_str() {
                diffs.push(format!(
                    "offer #{o} (ticket #{} to {}): {:?}, model {}",
                    mo.ticket,
                    IDS[mo.agent],
                    offer_raw[3 * o],
                    mo.state.as_str()
                ));
            }
        }
        if !diffs.is_empty() {
            return Err(fail(format!(
                "the store and the model differ:\n    {}",
                diffs.join("\n    ")
            )));
        }

        // Invariants, on what the store holds.
        let mut broken = Vec::new();
        let pending: Vec<(usize, &str, &str)> = (0..self.m.offers.len())
            .filter(|&o| offer_raw[3 * o] == "pending")
            .map(|o| {
                (
                    o,
                    offer_raw[3 * o + 1].as_str(),
                    offer_raw[3 * o + 2].as_str(),
                )
            })
            .collect();
        for (t, v) in tickets.iter().enumerate() {
            let id = self.m.tickets[t].id.as_str();
            let mine: Vec<&(usize, &str, &str)> =
                pending.iter().filter(|(_, tk, _)| *tk == id).collect();
            if v.status == TicketStatus::Offered {
                let (offer, offer_agent) = (&ticket_raw[2 * t], &ticket_raw[2 * t + 1]);
                let holders: Vec<&str> = IDS
                    .iter()
                    .enumerate()
                    .filter(|(a, _)| agent_offer[*a] == *offer)
                    .map(|(_, id)| *id)
                    .collect();
                if mine.len() != 1
                    || self.m.offers[mine[0].0].id != *offer
                    || mine[0].2 != offer_agent
                    || holders != [offer_agent.as_str()]
                {
                    broken.push(format!(
                        "ticket #{t} is offered (offer {offer:?} to {offer_agent:?}) but its pending offers are {mine:?} and agents holding that offer {holders:?}"
                    ));
                }
            } else if !mine.is_empty() {
                broken.push(format!(
                    "ticket #{t} is {:?} but has pending offers {mine:?}",
                    v.status
                ));
            }
            // A queued ticket waits in exactly one place (so none is lost): routing, or parked
            // in its queue; any other ticket in neither.
            let (in_queue, routing) = (waits[t].0.is_some(), waits[t].1.is_some());
            let places = usize::from(in_queue) + usize::from(routing);
            if places != usize::from(v.status == TicketStatus::Queued) {
                broken.push(format!(
                    "ticket #{t} is {:?}, in its queue: {in_queue}, routing: {routing}",
                    v.status
                ));
            }
            // No lost wake-up: a parked ticket waits only while no free agent could take it.
            if in_queue {
                let takers: Vec<&str> = (0..IDS.len())
                    .filter(|&a| self.m.eligible(a, t))
                    .map(|a| IDS[a])
                    .collect();
                if !takers.is_empty() {
                    broken.push(format!(
                        "ticket #{t} waits in its queue while {takers:?} are free and eligible"
                    ));
                }
            }
            if v.status == TicketStatus::Assigned {
                let holders: Vec<&str> = views
                    .iter()
                    .flatten()
                    .filter(|w| w.state.active_tickets.iter().any(|x| x.as_str() == id))
                    .map(|w| w.agent_id.as_str())
                    .collect();
                if v.agent_id.as_deref().map(|h| vec![h]) != Some(holders.clone()) {
                    broken.push(format!(
                        "ticket #{t} is assigned to {:?} but held by {holders:?}",
                        v.agent_id
                    ));
                }
            }
        }
        for (a, w) in views.iter().enumerate() {
            let Some(w) = w else { continue };
            let mine = pending.iter().filter(|(_, _, ag)| *ag == IDS[a]).count();
            if mine > 1 {
                broken.push(format!("{} has {mine} pending offers", IDS[a]));
            }
            if !agent_offer[a].is_empty()
                && !pending
                    .iter()
                    .any(|(o, _, ag)| self.m.offers[*o].id == agent_offer[a] && *ag == IDS[a])
            {
                broken.push(format!(
                    "{} records offer {} as pending, which is not a pending offer of it",
                    IDS[a], agent_offer[a]
                ));
            }
            let max = usize::from(self.m.agents[a].profile.max);
            let ag = &mut self.m.agents[a];
            if ag.active.len() + usize::from(ag.offer.is_some()) <= max {
                ag.excused = false;
            }
            if w.state.active_tickets.len() > max && !ag.excused {
                broken.push(format!(
                    "{} holds {} tickets, max_concurrent {max}",
                    IDS[a],
                    w.state.active_tickets.len()
                ));
            }
            for held in &w.state.active_tickets {
                let ok = tickets.iter().any(|v| {
                    v.ticket_id == *held
                        && v.status == TicketStatus::Assigned
                        && v.agent_id.as_deref() == Some(IDS[a])
                });
                if !ok {
                    broken.push(format!(
                        "{} holds {held}, which is not assigned to it",
                        IDS[a]
                    ));
                }
            }
        }
        let parked: Vec<bool> = waits.iter().map(|w| w.0.is_some()).collect();
        broken.extend(self.index_errors(&parked).await?);
        if !broken.is_empty() {
            return Err(fail(format!(
                "invariants broken:\n    {}",
                broken.join("\n    ")
            )));
        }
        Ok(())
    }

    /// What is wrong with the indexes: the queues by language and by class against the tickets
    /// parked (`parked[t]`, and the ballast), the free indexes against who is free.
    async fn index_errors(&self, parked: &[bool]) -> Result<Vec<String>, TestCaseError> {
        let keys = self.store.keys().clone();
        let mut conn = self.store.conn();
        let redis_err = |e: redis::RedisError| fail(format!("redis: {e}"));
        let mut broken = Vec::new();
        for lang in [Lang::Sv, Lang::En] {
            let code = lang.code();
            let waiting: usize = conn.zcard(keys.queue(code)).await.map_err(redis_err)?;
            let mine = (0..self.m.tickets.len())
                .filter(|&t| parked[t] && self.m.tickets[t].spec.lang == lang)
                .count();
            if waiting != self.ballast + mine {
                broken.push(format!(
                    "queue:{code} holds {waiting}, but {} ballast and {mine} parked tickets wait",
                    self.ballast
                ));
            }
            let classes: Vec<String> = conn
                .hkeys(keys.queue_classes(code))
                .await
                .map_err(redis_err)?;
            let mut in_classes = 0;
            for class in &classes {
                let n: usize = conn
                    .zcard(keys.class_queue(code, class))
                    .await
                    .map_err(redis_err)?;
                if n == 0 {
                    broken.push(format!(
                        "class {class:?} of {code} is listed with no ticket"
                    ));
                }
                in_classes += n;
            }
            if in_classes != waiting {
                broken.push(format!(
                    "the class queues of {code} hold {in_classes}, its queue {waiting}"
                ));
            }
            let languages: Vec<String> = conn.smembers(keys.queues()).await.map_err(redis_err)?;
            if languages.contains(&code.to_owned()) != (waiting > 0) {
                broken.push(format!(
                    "queues lists {languages:?} while {waiting} {code} tickets wait"
                ));
            }
        }
        for (t, mt) in self.m.tickets.iter().enumerate() {
            let fields = mt.spec.fields();
            let class = fields.queue_class();
            let lang = mt.spec.lang.code();
            let in_class: Option<f64> = conn
                .zscore(keys.class_queue(lang, &class), &mt.id)
                .await
                .map_err(redis_err)?;
            if in_class.is_some() != parked[t] {
                broken.push(format!(
                    "ticket #{t}: in the queue of class {class:?}: {}, parked: {}",
                    in_class.is_some(),
                    parked[t]
                ));
            }
        }
        for (a, ag) in self.m.agents.iter().enumerate() {
            if !ag.exists {
                continue;
            }
            for lang in [Lang::Sv, Lang::En] {
                let indexed: Option<f64> = conn
                    .zscore(keys.free(lang.code()), IDS[a])
                    .await
                    .map_err(redis_err)?;
                let want = self.m.is_free(a) && ag.profile.langs.contains(&lang);
                if indexed.is_some() != want {
                    broken.push(format!(
                        "{} in free:{}: {}, free and speaks it: {want}",
                        IDS[a],
                        lang.code(),
                        indexed.is_some()
                    ));
                }
            }
        }
        Ok(broken)
    }
}
