//! The bounds of the agent WebSocket (API.md §6): a decline reason of at most 200 characters and
//! a note of at most 2,000, 10 frames a second with bursts of 20 (then `rate_limited`, and the
//! frame is not acted on), and a client that stops reading is disconnected within 30 s, as if
//! its connection had dropped.

use std::time::{Duration, Instant};

use e2e::{profile, spawn_with, ticket, Options};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{expect_error, state, welcomed};

#[tokio::test]
async fn a_decline_reason_over_200_characters_is_refused_and_the_offer_stays() {
    let app = spawn_with(Options::default()).await;
    let mut agent = welcomed(&app, "l-1").await;
    agent.set_status("available").await;
    let id = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    let offer = agent.expect("offer").await;
    agent
        .send(json!({"type": "decline", "offer_id": offer["offer_id"], "reason": "r".repeat(201), "ref": 1}))
        .await;
    let e = expect_error(&mut agent, "malformed_frame").await;
    assert!(
        e["message"].as_str().is_some_and(|m| m.contains("reason")),
        "{e}"
    );
    assert_eq!(e["ref"], 1);
    assert_eq!(app.get_ticket(&id).await.body["status"], "offered");
    // 200 characters (not bytes) are fine.
    agent
        .send(json!({"type": "decline", "offer_id": offer["offer_id"], "reason": "ö".repeat(200)}))
        .await;
    app.wait_ticket_status(&id, "queued").await;
}

#[tokio::test]
async fn a_note_over_2000_characters_is_refused_and_the_ticket_stays_assigned() {
    let app = spawn_with(Options::default()).await;
    let mut agent = welcomed(&app, "l-2").await;
    agent.set_status("available").await;
    let id = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    agent.accept_next().await;
    agent
        .send(json!({"type": "complete", "ticket_id": id, "outcome": "resolved", "note": "n".repeat(2001)}))
        .await;
    let e = expect_error(&mut agent, "malformed_frame").await;
    assert!(
        e["message"].as_str().is_some_and(|m| m.contains("note")),
        "{e}"
    );
    assert_eq!(app.get_ticket(&id).await.body["status"], "assigned");
    agent
        .send(json!({"type": "complete", "ticket_id": id, "outcome": "resolved", "note": "n".repeat(2000)}))
        .await;
    app.wait_ticket_status(&id, "completed").await;
}

#[tokio::test]
async fn frames_over_10_a_second_get_rate_limited_and_change_nothing() {
    let app = spawn_with(Options::default()).await;
    let mut agent = welcomed(&app, "l-3").await;
    agent.set_status("available").await;
    let wants = ["break", "available"];
    for i in 0..100 {
        agent
            .send_now(json!({"type": "set_status", "status": wants[i % 2], "ref": i}))
            .await;
    }
    let (mut admitted, mut limited) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let frame = agent
            .next(e2e::FRAME_WAIT)
            .await
            .expect("open")
            .expect("a reply");
        let r = frame["ref"].as_u64().expect("every reply echoes its ref") as usize;
        match frame["type"].as_str() {
            Some("status") => admitted.push(r),
            Some("error") => {
                assert_eq!(frame["code"], "rate_limited", "{frame}");
                limited.push(r);
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    // The `set_status` before the flood took one frame of the burst of 20.
    assert!(
        (19..=29).contains(&admitted.len()),
        "the rest of the burst (and what refilled meanwhile) is acted on: {} of 100",
        admitted.len()
    );
    assert_eq!(
        admitted[..19],
        (0..19).collect::<Vec<_>>()[..],
        "the burst comes first"
    );
    assert_eq!(admitted.len() + limited.len(), 100);
    // Only the frames acted on changed the status: it is what the last of them asked.
    let last = *admitted.iter().max().expect("some admitted");
    assert_eq!(state(&app, "l-3").await["status"], wants[last % 2]);
    // After a second's pause the client may send again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    agent
        .send(json!({"type": "set_status", "status": "available", "ref": "after"}))
        .await;
    assert_eq!(agent.expect("status").await["ref"], "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_does_not_slow_other_agents_offers() {
    let app = spawn_with(Options::default()).await;
    let mut flooder = welcomed(&app, "l-flood").await;
    flooder.set_status("available").await;
    flooder.set_status("break").await;
    let (mut tx, mut rx) = flooder.into_ws().split();
    let flood = tokio::spawn(async move {
        let frame = json!({"type": "set_status", "status": "break"}).to_string();
        let until = Instant::now() + Duration::from_secs(3);
        let mut sent = 0u32;
        while Instant::now() < until {
            if tx.send(Message::Text(frame.clone().into())).await.is_err() {
                break;
            }
            sent += 1;
            if sent.is_multiple_of(64) {
                tokio::task::yield_now().await;
            }
        }
        sent
    });
    let drain = tokio::spawn(async move {
        let mut limited = 0u32;
        while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(2), rx.next()).await
        {
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).expect("JSON");
                if v["code"] == "rate_limited" {
                    limited += 1;
                }
            }
        }
        limited
    });
    let mut worker = app
        .available_agent("l-worker", &profile(&["sv"], json!({}), 1))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let id = app.new_ticket(&ticket("sv", json!({}), 5)).await;
        let offer = worker.expect("offer").await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(offer["ticket_id"], id.as_str());
        worker
            .send(json!({"type": "decline", "offer_id": offer["offer_id"]}))
            .await;
    }
    let sent = flood.await.expect("the flood ran");
    let limited = drain.await.expect("the drain ran");
    assert!(sent > 100, "the flood sent {sent} frames");
    assert!(limited > 0, "the flood was limited ({limited} of {sent})");
    assert!(
        slowest < Duration::from_secs(1),
        "another agent's offer took {slowest:?} during the flood"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_within_30_s_and_its_shift_ends_as_a_drop() {
    let app = spawn_with(Options {
        grace_secs: 1,
        ..Options::default()
    })
    .await;
    let mut agent = welcomed(&app, "l-deaf").await;
    agent.set_status("available").await;
    let shift = state(&app, "l-deaf").await["shift_id"]
        .as_str()
        .expect("on shift")
        .to_owned();
    // From now on the client reads nothing: the server's pings go unanswered.
    let ws = agent.into_ws();
    let stopped = Instant::now();
    let mut dropped = None;
    while stopped.elapsed() < Duration::from_secs(40) {
        if state(&app, "l-deaf").await["connected"] == false {
            dropped = Some(stopped.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let dropped = dropped.expect("the client was never disconnected");
    assert!(
        dropped <= Duration::from_secs(31),
        "dropped after {dropped:?}"
    );
    // As a drop: the grace period (1 s) runs out and the shift ends, at the drop.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ended = loop {
        let found = app.events().await.into_iter().find(|e| {
            e.get("type").map(String::as_str) == Some("shift_ended")
                && e.get("shift") == Some(&shift)
        });
        match found {
            Some(e) => break e,
            None if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None => panic!("the shift never ended"),
        }
    };
    assert_eq!(ended["reason"], "disconnected", "{ended:?}");
    assert_eq!(state(&app, "l-deaf").await["status"], "offline");
    drop(ws);
}
