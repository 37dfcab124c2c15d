//! Webhook endpoints and their deliveries in Redis (`src/lua/webhooks.lua` says how they are
//! kept), and the ledger's announcement of an ended shift.

use std::time::Duration;

use redis::AsyncCommands;

use super::reply::{Done, FromReply, Ids};
use super::{Function, Store, StoreError};
use crate::events::StreamId;

/// One delivery to queue: for endpoint `endpoint`, in the order of `order_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The endpoint.
    pub endpoint: String,
    /// What orders it (`t:<ticket>`, `a:<agent>`).
    pub order_key: String,
    /// The event's id (`webhook-id`).
    pub event_id: String,
    /// Its type.
    pub kind: String,
    /// The body, JSON.
    pub body: String,
}

/// A delivery leased to this instance: the head of its order key's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The endpoint.
    pub endpoint: String,
    /// Its order key.
    pub order_key: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The event's id.
    pub event_id: String,
    /// Its type.
    pub kind: String,
    /// The body.
    pub body: String,
}

/// How an attempt ended, for [`Store::webhook_done`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempted {
    /// A 2xx: the next delivery of its order key goes.
    Delivered,
    /// Tried again after the delay.
    Retry(Duration),
    /// The schedule is over: given up, the next one goes.
    GivenUp,
}

/// `ok`, or `stale`: whether the attempt was still the head of its list.
struct Fresh(bool);

impl FromReply for Fresh {
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError> {
        match words.first().map(String::as_str) {
            Some("ok") => Ok(Fresh(true)),
            Some("stale") => Ok(Fresh(false)),
            other => Err(StoreError::Corrupt(format!(
                "{function}: expected ok or stale, got {other:?}"
            ))),
        }
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

impl Store {
    /// Adds endpoint `id` (JSON) unless the namespace has `max` already
    /// (`webhook_limit_reached`).
    pub async fn create_webhook(&self, id: &str, json: &str, max: u32) -> Result<(), StoreError> {
        self.call::<Done>(Function::WebhookCreate, &[id, json, &max.to_string()])
            .await
            .map(drop)
    }

    /// Removes endpoint `id` and what it had to deliver (`webhook_not_found`).
    pub async fn delete_webhook(&self, id: &str) -> Result<(), StoreError> {
        self.call::<Done>(Function::WebhookDelete, &[id])
            .await
            .map(drop)
    }

    /// Every endpoint: id and JSON.
    pub async fn webhooks(&self) -> Result<Vec<(String, String)>, StoreError> {
        let all: Vec<(String, String)> = self.conn().hgetall(self.keys().webhooks()).await?;
        Ok(all)
    }

    /// Endpoint `id`'s JSON.
    pub async fn webhook(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.conn().hget(self.keys().webhooks(), id).await?)
    }

    /// Endpoint `id`'s latest attempts, newest first (JSON).
    pub async fn webhook_log(&self, id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .conn()
            .lrange(self.keys().webhook_log(id), 0, -1)
            .await?)
    }

    /// How many deliveries endpoint `id` has waiting.
    pub async fn webhook_backlog(&self, id: &str) -> Result<u64, StoreError> {
        Ok(self.conn().zcard(self.keys().webhook_pending(id)).await?)
    }

    /// Acknowledges stream entries for consumer group `group` and queues their deliveries
    /// (those of an entry only if this call acknowledged it). Past `max` waiting for one
    /// endpoint its oldest are given up: returned as (endpoint, how many).
    pub async fn webhook_enqueue(
        &self,
        group: &str,
        max: u64,
        entries: &[(StreamId, Vec<NewDelivery>)],
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut args: Vec<String> = vec![group.to_owned(), max.to_string()];
        for (id, deliveries) in entries {
            args.push(id.to_string());
            args.push(deliveries.len().to_string());
            for d in deliveries {
                args.extend([
                    d.endpoint.clone(),
                    d.order_key.clone(),
                    d.event_id.clone(),
                    d.kind.clone(),
                    d.body.clone(),
                ]);
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let Ids(words) = self.call(Function::WebhookEnqueue, &args).await?;
        Ok(words
            .chunks(2)
            .filter_map(|w| Some((w.first()?.clone(), w.get(1)?.parse().ok()?)))
            .collect())
    }

    /// Leases for `lease` the due deliveries of each endpoint, at most its number.
    pub async fn webhook_claim(
        &self,
        lease: Duration,
        wanted: &[(String, u32)],
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut args = vec![millis(lease)];
        for (id, n) in wanted {
            args.push(id.clone());
            args.push(n.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let Ids(words) = self.call(Function::WebhookClaim, &args).await?;
        let mut out = Vec::with_capacity(words.len() / 4);
        for w in words.chunks(4) {
            let [endpoint, order_key, attempts, item] = w else {
                return Err(StoreError::Corrupt("webhook_claim: a short group".into()));
            };
            let mut parts = item.splitn(3, ' ');
            let (Some(event_id), Some(kind), Some(body)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(StoreError::Corrupt(format!(
                    "webhook_claim: a malformed delivery of {endpoint}"
                )));
            };
            out.push(Claimed {
                endpoint: endpoint.clone(),
                order_key: order_key.clone(),
                attempts: attempts.parse().unwrap_or(0),
                event_id: event_id.to_owned(),
                kind: kind.to_owned(),
                body: body.to_owned(),
            });
        }
        Ok(out)
    }

    /// Records how an attempt at `claimed` ended, with its log entry (JSON); `false` if the
    /// delivery was given up or the endpoint removed meanwhile.
    pub async fn webhook_done(
        &self,
        claimed: &Claimed,
        outcome: Attempted,
        log: &str,
    ) -> Result<bool, StoreError> {
        let (word, delay) = match outcome {
            Attempted::Delivered => ("delivered", Duration::ZERO),
            Attempted::Retry(d) => ("retry", d),
            Attempted::GivenUp => ("failed", Duration::ZERO),
        };
        let Fresh(fresh) = self
            .call(
                Function::WebhookDone,
                &[
                    &claimed.endpoint,
                    &claimed.order_key,
                    &claimed.event_id,
                    word,
                    &millis(delay),
                    log,
                ],
            )
            .await?;
        Ok(fresh)
    }

    /// Announces that the ledger stored the end of `shift` (once per shift): `row` is the
    /// shift as API.md §7 shows it, JSON.
    pub async fn shift_recorded(
        &self,
        agent: &str,
        shift: &str,
        row: &str,
    ) -> Result<(), StoreError> {
        self.call::<Done>(Function::ShiftRecorded, &[agent, shift, row])
            .await
            .map(drop)
    }
}
