//! What loadgen reads from the dispatch platform's event stream in Redis: the assignments it
//! recorded.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::record::Ctx;

/// Reads the event stream in pages: per ticket id, the agents of its `ticket_assigned` events.
pub async fn assigned_events(ctx: &Ctx) -> anyhow::Result<(HashMap<String, Vec<String>>, usize)> {
    let client = redis::Client::open(ctx.args.redis.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let key = shared::keys::Keys::new(&ctx.args.namespace).events();
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut start = "-".to_owned();
    let mut read = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    for _page in 0..10_000 {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&key)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await?;
        let Some(last) = reply.ids.last().map(|e| e.id.clone()) else {
            break;
        };
        read += reply.ids.len();
        for e in reply.ids {
            let get = |k: &str| {
                e.map
                    .get(k)
                    .cloned()
                    .and_then(|v| redis::from_redis_value::<String>(v).ok())
            };
            if get("type").as_deref() != Some("ticket_assigned") {
                continue;
            }
            let (Some(ticket), agent) = (get("ticket"), get("agent")) else {
                continue;
            };
            out.entry(ticket)
                .or_default()
                .push(agent.unwrap_or_default());
        }
        start = format!("({last}");
        if Instant::now() > deadline {
            anyhow::bail!("the event stream took over 120 s to read ({read} events)");
        }
    }
    Ok((out, read))
}
