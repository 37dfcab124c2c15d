//! Applying one operation to both the store and the model, comparing the store's answer with
//! what the model expects.

use std::collections::BTreeSet;

use dispatcher::matcher::PAGE;
use proptest::test_runner::TestCaseError;
use shared::domain::{AgentStatus, OfferId, Outcome, TicketId, TicketStatus};
use shared::error::ErrorCode;
use shared::store::{CreatedTicket, Routed, StatusNow, Upserted};

use crate::case::{aid, check_answer, done, fail, Case};
use crate::reference::{MTicket, OfferState};
use crate::world::{Op, Want};
use crate::{
    IDS, LONG_GRACE, MAX_TICKETS, MISSED_BEFORE_AWAY, NEXT_MILLISECOND, PAST_DEADLINE, SHORT_GRACE,
};

impl Case {
    /// Applies one operation to both the store and the model.
    pub(crate) async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::PutAgent(a, p) => {
                let got = self.serving_store().put_agent(&aid(*a), &p.fields()).await;
                check_answer("put_agent", &got, &Ok(()))?;
                let ag = &mut self.m.agents[*a];
                let created = !ag.exists;
                if got.as_ref().ok().map(|u| *u == Upserted::Created) != Some(created) {
                    return Err(fail(format!(
                        "put_agent answered created = {got:?}, but the agent {} on the roster",
                        if ag.exists { "was" } else { "was not" }
                    )));
                }
                ag.exists = true;
                ag.profile = p.clone();
                ag.excused |=
                    ag.active.len() + usize::from(ag.offer.is_some()) > usize::from(p.max);
                let served = self.m.serve(*a);
                self.note(format!("{op:?} -> ok{}", self.served_note(*a, served)));
            }
            Op::RemoveAgent(a) => {
                let expect = self.m.remove(*a);
                let got = self.store.remove_agent(&aid(*a)).await;
                check_answer("remove_agent", &got, &expect)?;
                self.note(format!("{op:?} -> {}", done(&expect)));
            }
            Op::ReapGateway(gw) => {
                let dropped: Vec<usize> = (0..IDS.len())
                    .filter(|&a| self.m.agents[a].connected && self.m.agents[a].gateway == *gw)
                    .collect();
                for &a in &dropped {
                    self.m.drop_connection(a, false);
                }
                let got = self
                    .store
                    .reap_gateway(&format!("gw-{gw}"), LONG_GRACE)
                    .await
                    .map_err(|e| fail(format!("reap_gateway: {e}")))?;
                if usize::try_from(got).ok() != Some(dropped.len()) {
                    return Err(fail(format!(
                        "reap_gateway dropped {got} connections, the model {dropped:?}"
                    )));
                }
                self.note(format!("{op:?} -> dropped {dropped:?}"));
            }
            Op::Connect { agent, gateway } => {
                let a = agent;
                self.conns += 1;
                let conn = format!("c{}", self.conns);
                let got = self
                    .serving_store()
                    .connect(&aid(*a), &conn, &format!("gw-{gateway}"))
                    .await;
                if !self.m.agents[*a].exists {
                    check_answer("connect", &got, &Err(vec![ErrorCode::AgentNotFound]))?;
                    self.note(format!("{op:?} -> rejected: not on the roster"));
                    return Ok(());
                }
                check_answer("connect", &got, &Ok(()))?;
                let ag = &self.m.agents[*a];
                if !ag.connected && ag.grace == Some(true) {
                    self.m.end_shift(*a);
                }
                let ag = &mut self.m.agents[*a];
                if let Some(old) = ag.conn.take() {
                    ag.old_conns.push(old);
                }
                ag.connected = true;
                ag.conn = Some(conn.clone());
                ag.gateway = *gateway;
                ag.grace = None;
                let served = self.m.serve(*a);
                self.confirm_offers().await?;
                // The reply is what `welcome` shows: status, held tickets, pending offer.
                let reply = got.map_err(|e| fail(format!("connect: {e}")))?;
                let ag = &self.m.agents[*a];
                let held = self.m.held_ids(*a);
                let mut tickets = reply.tickets.clone();
                tickets.sort();
                let offer = ag.offer.map(|o| self.m.offers[o].id.clone());
                if reply.status != ag.status || tickets != held || reply.offer_id != offer {
                    return Err(fail(format!(
                        "connect of {} answered {reply:?}; the model has status {:?}, tickets {held:?}, offer {offer:?}",
                        IDS[*a], ag.status
                    )));
                }
                self.note(format!(
                    "{op:?} -> ok ({conn}){}",
                    self.served_note(*a, served)
                ));
            }
            Op::Disconnect {
                agent,
                stale,
                short_grace,
            } => {
                let a = *agent;
                let ag = &self.m.agents[a];
                let conn = if *stale {
                    ag.old_conns.last().cloned()
                } else {
                    ag.conn.clone()
                }
                .unwrap_or_else(|| "c-never".into());
                let drops = !*stale && ag.connected;
                let grace = if *short_grace {
                    SHORT_GRACE
                } else {
                    LONG_GRACE
                };
                let got = self.store.disconnect(&aid(a), &conn, grace).await;
                check_answer("disconnect", &got, &Ok(()))?;
                if drops {
                    self.m.drop_connection(a, *short_grace);
                    if *short_grace {
                        tokio::time::sleep(PAST_DEADLINE).await;
                    }
                }
                self.note(format!(
                    "{op:?} -> ok ({conn}{})",
                    if drops { ", dropped" } else { ", no effect" }
                ));
            }
            Op::SetStatus(a, want) => {
                if !self.m.agents[*a].connected {
                    self.note(format!("{op:?} -> skipped: not connected"));
                    return Ok(());
                }
                let before = self.m.agents[*a].status;
                let expect = self.m.set_status(*a, *want);
                let got = self
                    .serving_store()
                    .set_status(&aid(*a), want.requested())
                    .await;
                check_answer("set_status", &got, &expect)?;
                if let Ok(StatusNow { status, .. }) = &got {
                    if *status != self.m.agents[*a].status {
                        return Err(fail(format!(
                            "set_status answered {status:?}, the model has {:?}",
                            self.m.agents[*a].status
                        )));
                    }
                }
                if expect.is_ok() && before == AgentStatus::Offline && *want == Want::Available {
                    tokio::time::sleep(NEXT_MILLISECOND).await;
                }
                // Only a change of status frees the agent.
                let changed = expect.is_ok() && before != self.m.agents[*a].status;
                let served = if changed { self.m.serve(*a) } else { None };
                self.note(format!(
                    "{op:?} -> {}{}",
                    done(&expect),
                    self.served_note(*a, served)
                ));
            }
            Op::CreateTicket(spec) => {
                if self.m.tickets.len() >= MAX_TICKETS {
                    self.note(format!("{op:?} -> skipped: enough tickets"));
                    return Ok(());
                }
                let tid = TicketId::generate();
                let got = self
                    .serving_store()
                    .create_ticket(&tid, None, &spec.fields(), PAGE)
                    .await;
                let routed = match got {
                    Ok(CreatedTicket::Created { id, routed, .. }) if id == tid.as_str() => routed,
                    other => return Err(fail(format!("create_ticket answered {other:?}"))),
                };
                self.m.seq += 1;
                self.m.tickets.push(MTicket {
                    id: tid.to_string(),
                    spec: spec.clone(),
                    seq: self.m.seq,
                    status: TicketStatus::Queued,
                    agent: None,
                    offer: None,
                    declined: BTreeSet::new(),
                    offers_made: 0,
                    parked: false,
                });
                // The creation routes the ticket: offered to the best agent, or parked with no
                // eligible agent, in the same call.
                let t = self.m.tickets.len() - 1;
                let short = self.m.short_offers;
                let expect = self.m.route(t, short);
                let got_agent = match &routed {
                    Routed::Offered { agent, .. } => IDS.iter().position(|id| id == agent),
                    _ => None,
                };
                let parked = matches!(routed, Routed::Parked);
                if got_agent != expect || parked != expect.is_none() {
                    return Err(fail(format!(
                        "create_ticket routed the ticket {routed:?}; the model expects {:?}",
                        expect.map(|a| IDS[a])
                    )));
                }
                self.note(format!(
                    "{op:?} -> ok (ticket #{t}{})",
                    match expect {
                        Some(a) => format!(", offered to {}", IDS[a]),
                        None => ", parked".to_owned(),
                    }
                ));
            }
            Op::RouteTicket { ticket, short } => {
                let queued = |t: &MTicket| t.status == TicketStatus::Queued;
                let Some(t) = self.pick_ticket_where(*ticket, queued) else {
                    self.note(format!("{op:?} -> skipped: no tickets"));
                    return Ok(());
                };
                let expect = self.m.best_agent(t);
                let matcher = if *short { &self.short } else { &self.long };
                let got = matcher
                    .route_ticket(&self.m.tickets[t].id)
                    .await
                    .map_err(|e| fail(format!("route_ticket: {e}")))?;
                let got_agent = got
                    .as_deref()
                    .and_then(|g| IDS.iter().position(|id| *id == g));
                if got_agent != expect {
                    let eligible: Vec<&str> =
                        self.m.eligible_agents(t).iter().map(|&a| IDS[a]).collect();
                    let keys: Vec<String> = self
                        .m
                        .eligible_agents(t)
                        .iter()
                        .map(|&a| {
                            format!(
                                "{}: preferred {}, active {}, idle {}, level {}",
                                IDS[a],
                                self.m.tickets[t].spec.preferred == Some(a),
                                self.m.agents[a].active.len(),
                                self.m.agents[a].idle,
                                self.m.summed_level(a, t)
                            )
                        })
                        .collect();
                    return Err(fail(format!(
                        "route_ticket #{t} offered it to {got:?}; the model expects {:?} (ticket {:?}, eligible {eligible:?}: {keys:?})",
                        expect.map(|a| IDS[a]),
                        self.m.tickets[t].status
                    )));
                }
                self.m.route(t, *short);
                self.note(format!(
                    "{op:?} -> ticket #{t} {}",
                    match got_agent {
                        Some(a) => format!("offered to {}", IDS[a]),
                        None if self.m.tickets[t].parked => "parked".to_owned(),
                        None => format!("not routed ({:?})", self.m.tickets[t].status),
                    }
                ));
            }
            Op::OfferTimeout { short } => {
                self.m.short_offers = *short;
                self.note(format!("{op:?}"));
            }
            Op::Accept { agent, offer } | Op::Decline { agent, offer } => {
                let accepting = matches!(op, Op::Accept { .. });
                let Some((a, o)) = self.pick_offer(*agent, *offer) else {
                    self.note(format!("{op:?} -> skipped: no offer"));
                    return Ok(());
                };
                if !self.m.agents[a].connected {
                    self.note(format!("{op:?} -> skipped: {} not connected", IDS[a]));
                    return Ok(());
                }
                let again = accepting && self.m.accepted_again(a, o);
                let expect = if again {
                    Ok(())
                } else {
                    self.m.answerable(a, o)
                };
                let oid = OfferId::try_from(self.m.offers[o].id.as_str()).expect("offer id");
                let mut served = None;
                if again {
                    let got = self.serving_store().accept(&aid(a), &oid).await;
                    check_answer("accept again", &got, &expect)?;
                    let want = &self.m.tickets[self.m.offers[o].ticket].id;
                    if got.as_ref().is_ok_and(|f| &f.ticket_id != want) {
                        return Err(fail(format!(
                            "accepting again answered another ticket than {want}: {got:?}"
                        )));
                    }
                } else if accepting {
                    let got = self.serving_store().accept(&aid(a), &oid).await;
                    check_answer("accept", &got, &expect)?;
                    if let Ok(frame) = &got {
                        let want = &self.m.tickets[self.m.offers[o].ticket].id;
                        if &frame.ticket_id != want {
                            return Err(fail(format!(
                                "accept answered `assigned` for {}, the offer was of {want}",
                                frame.ticket_id
                            )));
                        }
                        self.m.accept(a, o);
                        served = self.m.serve(a);
                        tokio::time::sleep(NEXT_MILLISECOND).await;
                    }
                } else {
                    let got = self.serving_store().decline(&aid(a), &oid, None).await;
                    check_answer("decline", &got, &expect)?;
                    if got.is_ok() {
                        self.m.agents[a].missed = 0;
                        self.m.end_offer(o, OfferState::Declined);
                        served = self.m.serve(a);
                    }
                }
                self.note(format!(
                    "{op:?} -> by {} offer #{o} (of ticket #{} to {}): {}{}",
                    IDS[a],
                    self.m.offers[o].ticket,
                    IDS[self.m.offers[o].agent],
                    done(&expect),
                    self.served_note(a, served)
                ));
            }
            Op::Complete {
                agent,
                ticket,
                holder,
            } => {
                let assigned = |t: &MTicket| *holder && t.status == TicketStatus::Assigned;
                let Some(t) = self.pick_ticket_where(*ticket, assigned) else {
                    self.note(format!("{op:?} -> skipped: no tickets"));
                    return Ok(());
                };
                let a = match (holder, self.m.tickets[t].agent) {
                    (true, Some(h)) => h,
                    _ => *agent,
                };
                if !self.m.agents[a].connected {
                    self.note(format!("{op:?} -> skipped: {} not connected", IDS[a]));
                    return Ok(());
                }
                let expect = self.m.complete(a, t);
                let got = self
                    .serving_store()
                    .complete(&aid(a), &self.ticket_id(t), Outcome::Resolved, None)
                    .await;
                check_answer("complete", &got, &expect)?;
                let served = if expect.is_ok() {
                    self.m.serve(a)
                } else {
                    None
                };
                self.note(format!(
                    "{op:?} -> ticket #{t} by {}: {}{}",
                    IDS[a],
                    done(&expect),
                    self.served_note(a, served)
                ));
            }
            Op::Cancel(ticket) => {
                let Some(t) = self.pick_ticket(*ticket) else {
                    self.note(format!("{op:?} -> skipped: no tickets"));
                    return Ok(());
                };
                let expect = self.m.cancel(t);
                let got = self.serving_store().cancel_ticket(&self.ticket_id(t)).await;
                check_answer("cancel_ticket", &got, &expect)?;
                self.note(format!("{op:?} -> ticket #{t}: {}", done(&expect)));
            }
            Op::ExpireNow => {
                let offers = self.m.expire_offers();
                let expired = self
                    .serving_store()
                    .expire_offers(100, MISSED_BEFORE_AWAY)
                    .await
                    .map_err(|e| fail(format!("expire_offers: {e}")))?;
                let got = expired.lapsed;
                if !expired.failed.is_empty() {
                    return Err(fail(format!("expire_offers failed: {:?}", expired.failed)));
                }
                if usize::try_from(got).ok() != Some(offers) {
                    return Err(fail(format!(
                        "expire_offers lapsed {got} offers, the model {offers}"
                    )));
                }
                let graces = self.m.expire_grace();
                let got = self
                    .store
                    .expire_grace(100)
                    .await
                    .map_err(|e| fail(format!("expire_grace: {e}")))?;
                if !got.failed.is_empty() {
                    return Err(fail(format!("expire_grace failed: {:?}", got.failed)));
                }
                let got = got.due;
                if usize::try_from(got).ok() != Some(graces) {
                    return Err(fail(format!(
                        "expire_grace ended {got} grace periods, the model {graces}"
                    )));
                }
                self.note(format!(
                    "{op:?} -> {offers} offers expired, {graces} grace periods ended"
                ));
            }
        }
        self.confirm_offers().await
    }
}
