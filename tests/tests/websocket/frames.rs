//! Frame hygiene: size (64 KiB, fragmentation), binary frames, UTF-8, JSON and frame content,
//! unknown types, a second `auth`, the bad frame budget, and `ref` echoes.

use e2e::{spawn_app, token, AgentClient, FRAME_WAIT};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{assert_still_open, expect_error, roster, state, welcomed};

/// The most one frame may hold (API.md §6).
const MAX_FRAME: usize = 64 * 1024;

/// A `set_status available` text frame of exactly `size` bytes (padded with an extra field).
fn padded_frame(size: usize) -> String {
    let empty =
        json!({"type": "set_status", "status": "available", "ref": "big", "pad": ""}).to_string();
    assert!(size >= empty.len());
    let frame = json!({
        "type": "set_status",
        "status": "available",
        "ref": "big",
        "pad": "x".repeat(size - empty.len()),
    })
    .to_string();
    assert_eq!(frame.len(), size);
    frame
}

/// A raw text frame with `payload` as is (it need not be UTF-8).
fn text_frame(payload: Vec<u8>, opcode: OpCode, is_final: bool) -> Message {
    Message::Frame(Frame::message(payload, opcode, is_final))
}

// ---------------------------------------------------------------------------------------------
// Frames: size, binary, UTF-8
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_frame_over_64_kib_closes_the_connection_with_1009() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    agent
        .send_raw(Message::Text(padded_frame(MAX_FRAME + 1).into()))
        .await;
    let closed = agent.expect_close().await;
    assert_eq!(closed.code, 1009, "{closed:?}");
    assert_eq!(
        state(&app, "a-1").await["status"],
        "offline",
        "the frame was not acted on"
    );
}

#[tokio::test]
async fn a_frame_of_exactly_64_kib_is_accepted() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    agent
        .send_raw(Message::Text(padded_frame(MAX_FRAME).into()))
        .await;
    let reply = agent.expect("status").await;
    assert_eq!(reply["status"], "available");
    assert_eq!(reply["ref"], "big");
}

#[tokio::test]
async fn a_message_fragmented_into_small_frames_is_reassembled() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    let text = json!({"type": "set_status", "status": "available", "ref": "frag"}).to_string();
    let (head, tail) = text.as_bytes().split_at(10);
    agent
        .send_raw(text_frame(head.to_vec(), OpCode::Data(Data::Text), false))
        .await;
    agent
        .send_raw(text_frame(
            tail.to_vec(),
            OpCode::Data(Data::Continue),
            true,
        ))
        .await;
    let reply = agent.expect("status").await;
    assert_eq!(reply["status"], "available");
    assert_eq!(reply["ref"], "frag");
}

#[tokio::test]
async fn a_fragmented_message_over_64_kib_is_not_acted_on() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    let text = padded_frame(MAX_FRAME + 1024);
    let (head, tail) = text.as_bytes().split_at(text.len() / 2);
    agent
        .send_raw(text_frame(head.to_vec(), OpCode::Data(Data::Text), false))
        .await;
    agent
        .send_raw(text_frame(
            tail.to_vec(),
            OpCode::Data(Data::Continue),
            true,
        ))
        .await;
    // Either an error or a close 1009 is acceptable; what matters is that it is not executed.
    match agent.next(FRAME_WAIT).await {
        Ok(Some(frame)) => {
            assert_eq!(frame["type"], "error", "got {frame}");
            assert_eq!(frame["code"], "malformed_frame", "got {frame}");
        }
        Ok(None) => panic!("no answer to an oversized fragmented message"),
        Err(closed) => assert_eq!(closed.code, 1009, "{closed:?}"),
    }
    assert_eq!(state(&app, "a-1").await["status"], "offline");
}

#[tokio::test]
async fn a_binary_frame_gets_a_binary_frame_error_and_the_connection_stays_open() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    agent
        .send_raw(Message::binary(
            br#"{"type":"set_status","status":"available"}"#.to_vec(),
        ))
        .await;
    expect_error(&mut agent, "binary_frame").await;
    assert_still_open(&mut agent).await;
}

#[tokio::test]
async fn a_text_frame_with_invalid_utf8_gets_malformed_frame_and_the_connection_stays_open() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    let mut payload = br#"{"type":"set_status","status":"available","x":""#.to_vec();
    payload.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    payload.extend_from_slice(br#""}"#);
    assert!(std::str::from_utf8(&payload).is_err());
    agent
        .send_raw(text_frame(payload, OpCode::Data(Data::Text), true))
        .await;
    expect_error(&mut agent, "malformed_frame").await;
    assert_eq!(
        state(&app, "a-1").await["status"],
        "offline",
        "the frame was not acted on"
    );
    assert_still_open(&mut agent).await;
}

// ---------------------------------------------------------------------------------------------
// Frames: content
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_frame_that_is_not_json_gets_malformed_frame_and_the_connection_stays_open() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    agent
        .send_raw(Message::Text(r#"{"type": "set_status", "status": "#.into()))
        .await;
    expect_error(&mut agent, "malformed_frame").await;
    assert_still_open(&mut agent).await;
}

#[tokio::test]
async fn a_json_frame_that_is_not_an_object_gets_malformed_frame() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    for text in ["[1, 2]", "\"set_status\"", "42", "null"] {
        agent.send_raw(Message::Text(text.into())).await;
        expect_error(&mut agent, "malformed_frame").await;
    }
    assert_still_open(&mut agent).await;
}

#[tokio::test]
async fn a_frame_without_a_type_gets_malformed_frame_naming_type() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    agent
        .send(json!({"status": "available", "ref": "no-type"}))
        .await;
    let e = expect_error(&mut agent, "malformed_frame").await;
    assert!(
        e["message"].as_str().unwrap_or_default().contains("type"),
        "{e}"
    );
    assert_eq!(e["ref"], "no-type");
}

#[tokio::test]
async fn a_frame_of_an_unknown_type_gets_unknown_message_type_and_the_connection_stays_open() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    agent.send(json!({"type": "teleport", "ref": "u1"})).await;
    let e = expect_error(&mut agent, "unknown_message_type").await;
    assert_eq!(e["ref"], "u1");
    assert_still_open(&mut agent).await;
}

#[tokio::test]
async fn a_frame_missing_a_field_gets_malformed_frame_naming_the_field() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    let cases = [
        (json!({"type": "accept", "ref": 1}), "offer_id"),
        (json!({"type": "decline", "ref": 2}), "offer_id"),
        (
            json!({"type": "complete", "outcome": "resolved", "ref": 3}),
            "ticket_id",
        ),
        (
            json!({"type": "complete", "ticket_id": "t-1", "ref": 4}),
            "outcome",
        ),
        (json!({"type": "set_status", "ref": 5}), "status"),
    ];
    for (frame, field) in cases {
        agent.send(frame.clone()).await;
        let e = expect_error(&mut agent, "malformed_frame").await;
        let message = e["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{frame} → {e} should name {field}");
        assert_eq!(e["ref"], frame["ref"], "{e}");
    }
    assert_still_open(&mut agent).await;
}

#[tokio::test]
async fn a_frame_with_an_invalid_field_value_gets_malformed_frame_naming_the_field() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    let cases = [
        (
            json!({"type": "set_status", "status": "sleeping", "ref": "s"}),
            "status",
        ),
        (
            json!({"type": "set_status", "status": "away", "ref": "s2"}),
            "status",
        ),
        (
            json!({"type": "complete", "ticket_id": "t-1", "outcome": "maybe", "ref": "o"}),
            "outcome",
        ),
        (
            json!({"type": "accept", "offer_id": 42, "ref": "n"}),
            "offer_id",
        ),
        (
            json!({"type": "accept", "offer_id": "not an id!", "ref": "i"}),
            "offer_id",
        ),
        (
            json!({"type": "complete", "ticket_id": "x".repeat(65), "outcome": "resolved", "ref": "l"}),
            "ticket_id",
        ),
        (json!({"type": 7, "ref": "t"}), "type"),
    ];
    for (frame, field) in cases {
        agent.send(frame.clone()).await;
        let e = expect_error(&mut agent, "malformed_frame").await;
        let message = e["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{frame} → {e} should name {field}");
        assert_eq!(e["ref"], frame["ref"], "{e}");
    }
    assert_eq!(state(&app, "a-1").await["status"], "offline");
    assert_still_open(&mut agent).await;
}

#[tokio::test]
async fn a_second_auth_frame_gets_unexpected_auth_and_the_connection_stays_open() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    agent
        .send(json!({"type": "auth", "token": token("agent", "a-1"), "ref": "again"}))
        .await;
    let e = expect_error(&mut agent, "unexpected_auth").await;
    assert_eq!(e["ref"], "again");
    assert_still_open(&mut agent).await;
}

#[tokio::test]
async fn a_second_auth_frame_after_first_frame_authentication_gets_unexpected_auth() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    let mut agent = AgentClient::connect_bare(&app.gateways[0], "a-1").await;
    agent
        .send(json!({"type": "auth", "token": token("agent", "a-1")}))
        .await;
    agent.expect("welcome").await;
    agent
        .send(json!({"type": "auth", "token": token("agent", "a-1"), "ref": "again"}))
        .await;
    let e = expect_error(&mut agent, "unexpected_auth").await;
    assert_eq!(e["ref"], "again");
}

#[tokio::test]
async fn the_21st_bad_frame_within_a_minute_closes_the_connection_with_4008() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    let bad: [Message; 4] = [
        Message::Text("not json".into()),
        Message::Text(json!({"type": "teleport"}).to_string().into()),
        Message::Text(json!({"type": "accept"}).to_string().into()),
        Message::binary(vec![1, 2, 3]),
    ];
    for i in 0..20 {
        agent.send_raw(bad[i % bad.len()].clone()).await;
        let frame = agent.expect("error").await;
        assert_ne!(
            frame["code"],
            Value::Null,
            "bad frame {} answered: {frame}",
            i + 1
        );
    }
    agent.send_raw(Message::Text("still not json".into())).await;
    let closed = agent.expect_close().await;
    assert_eq!(closed.code, 4008, "{closed:?}");
}

#[tokio::test]
async fn well_formed_frames_that_are_refused_do_not_count_as_bad_frames() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    for i in 0..25 {
        agent
            .send(json!({"type": "accept", "offer_id": format!("o-unknown-{i}")}))
            .await;
        expect_error(&mut agent, "offer_not_found").await;
    }
    assert_still_open(&mut agent).await;
}

// ---------------------------------------------------------------------------------------------
// ref echoes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_reply_echoes_the_ref_as_sent_whatever_its_json_type() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    for reference in [json!("r-1"), json!(17), json!({"n": [1, 2]}), json!(null)] {
        agent
            .send(json!({"type": "set_status", "status": "available", "ref": reference}))
            .await;
        let reply = agent.expect("status").await;
        assert_eq!(reply.get("ref"), Some(&reference), "{reply}");
    }
}

#[tokio::test]
async fn a_reply_to_a_frame_without_ref_carries_no_ref() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    agent
        .send(json!({"type": "set_status", "status": "available"}))
        .await;
    let reply = agent.expect("status").await;
    assert!(reply.get("ref").is_none(), "{reply}");
}

#[tokio::test]
async fn error_replies_echo_the_ref() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    let cases = [
        (
            json!({"type": "accept", "offer_id": "o-nope", "ref": "e1"}),
            "offer_not_found",
        ),
        (
            json!({"type": "decline", "offer_id": "o-nope", "ref": "e2"}),
            "offer_not_found",
        ),
        (
            json!({"type": "complete", "ticket_id": "t-nope", "outcome": "resolved", "ref": "e3"}),
            "ticket_not_found",
        ),
        (
            json!({"type": "set_status", "status": "break", "ref": "e4"}),
            "invalid_status_transition",
        ),
        (
            json!({"type": "whatever", "ref": "e5"}),
            "unknown_message_type",
        ),
        (json!({"type": "accept", "ref": "e6"}), "malformed_frame"),
    ];
    for (frame, code) in cases {
        agent.send(frame.clone()).await;
        let e = expect_error(&mut agent, code).await;
        assert_eq!(e["ref"], frame["ref"], "{frame} → {e}");
    }
}
