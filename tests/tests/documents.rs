//! The documents of API.md §11, checked by independent tools against the running services:
//! `/openapi.json` of both services validated by openapi-spec-validator and the services fuzzed
//! against them by schemathesis (no 5xx, every status, content type, header and body as the
//! document says); `/asyncapi.json` validated by @asyncapi/parser (what `asyncapi validate`
//! runs), its messages those of the contract.

use std::collections::BTreeSet;

use e2e::{profile, spawn_app, ticket, token, AgentClient, TestApp};
use serde_json::{json, Value};

async fn document(app: &TestApp, url: &str) -> Value {
    let answer = e2e::fetch(app.http.get(url)).await;
    assert_eq!(answer.status, 200, "{url}: {:?}", answer.body);
    answer.body
}

/// What schemathesis checks of every response: API.md §2's "no request ever gets a 500" and
/// §11's "matches its behaviour, error responses included".
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance";

/// Fuzzes the service at `base` against its own document with `bearer`, in a thread of its own
/// (schemathesis is a blocking subprocess; the services go on serving meanwhile).
async fn fuzz(base: &str, bearer: String, exclude: &[&str]) {
    let mut st = e2e::venv_program("st");
    st.args(["run", &format!("{base}/openapi.json")])
        .args(["--checks", CHECKS])
        .args(["--header", &format!("Authorization: Bearer {bearer}")])
        .args(["--max-examples", "25", "--workers", "1", "--no-color"])
        .args(["--request-timeout", "20", "--warnings", "off"])
        .current_dir(std::env::temp_dir());
    for path in exclude {
        st.args(["--exclude-path", path]);
    }
    let (ok, printed) = tokio::task::spawn_blocking(move || e2e::run(st, ""))
        .await
        .expect("schemathesis ran");
    assert!(
        ok,
        "schemathesis found the service and its document apart:\n{printed}"
    );
    assert!(printed.contains("passed"), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_documents_are_valid_and_the_services_keep_to_them() {
    let app = spawn_app().await;
    let dispatcher = document(&app, &app.dispatcher("/openapi.json")).await;
    let gateway = document(&app, &app.gateway("/openapi.json")).await;
    for (name, doc) in [("dispatcher", &dispatcher), ("agent-app-api", &gateway)] {
        let (ok, printed) = e2e::python("validate_openapi.py", &doc.to_string());
        assert!(ok, "{name}'s OpenAPI document is invalid:\n{printed}");
        // Every authenticated operation lists its error responses as problem documents.
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("operations") {
                if op["security"].as_array().is_none_or(Vec::is_empty) {
                    continue;
                }
                for status in ["401", "403", "503"] {
                    let content = &op["responses"][status]["content"];
                    assert!(
                        content["application/problem+json"]["schema"].is_object(),
                        "{name} {method} {path}: no problem document for {status}"
                    );
                }
            }
        }
    }
    let paths = |doc: &Value| -> BTreeSet<String> {
        doc["paths"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    };
    for path in [
        "/v1/agents",
        "/v1/agents/{agent_id}",
        "/v1/tickets",
        "/v1/tickets/{ticket_id}",
        "/v1/queues",
        "/v1/payroll/shifts",
        "/v1/webhooks",
        "/v1/webhooks/{webhook_id}",
        "/v1/webhooks/{webhook_id}/deliveries",
        "/v1/events",
        "/metrics",
        "/healthz",
        "/readyz",
        "/openapi.json",
    ] {
        assert!(paths(&dispatcher).contains(path), "dispatcher: {path}");
    }
    for path in ["/v1/me", "/v1/me/shifts", "/v1/agent/ws", "/asyncapi.json"] {
        assert!(paths(&gateway).contains(path), "agent-app-api: {path}");
    }

    // The live events stream never ends, so it is not fuzzed; its errors are in the document.
    fuzz(
        &app.dispatchers[0],
        token("admin", "fuzzer"),
        &["/v1/events"],
    )
    .await;
    let me = app
        .send(
            app.http
                .put(app.dispatcher("/v1/agents/fuzz-agent"))
                .json(&profile(&["en"], json!({}), 1)),
            "admin",
        )
        .await;
    assert_eq!(me.status, 201);
    fuzz(&app.gateways[0], token("agent", "fuzz-agent"), &[]).await;
}

#[tokio::test]
async fn the_asyncapi_document_is_valid_and_has_the_contracts_frames() {
    let app = spawn_app().await;
    let doc = document(&app, &app.gateway("/asyncapi.json")).await;
    let (ok, printed) = e2e::node("validate_asyncapi.mjs", &doc.to_string());
    assert!(ok, "the AsyncAPI document is invalid:\n{printed}");
    let read: Value = serde_json::from_str(printed.trim()).expect("what the parser read");
    assert_eq!(read["channels"], serde_json::json!(["/v1/agent/ws"]));
    let names = |direction: &str| -> BTreeSet<String> {
        doc["components"]["messages"]
            .as_object()
            .expect("messages")
            .keys()
            .filter_map(|k| k.strip_prefix(&format!("{direction}.")).map(str::to_owned))
            .collect()
    };
    // API.md §6's two tables.
    let contract = |types: &[&str]| types.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(
        names("client"),
        contract(&["accept", "auth", "complete", "decline", "set_status"])
    );
    assert_eq!(
        names("server"),
        contract(&[
            "assigned",
            "error",
            "offer",
            "offer_revoked",
            "status",
            "ticket_cancelled",
            "welcome"
        ])
    );

    // Frames as the gateway writes them, and as a client sends them, fit their messages.
    let mut frames = Vec::new();
    let mut server = |frame: Value| frames.push(json!({"direction": "server", "frame": frame}));
    app.add_agent("a-1", &profile(&["sv"], json!({"refunds": 3}), 1))
        .await;
    let mut agent = AgentClient::connect(&app.gateways[0], "a-1").await;
    server(agent.expect("welcome").await);
    server(agent.set_status("available").await);
    let first = app
        .new_ticket(&ticket("sv", json!({"refunds": 2}), 7))
        .await;
    let offer = agent.expect("offer").await;
    server(offer.clone());
    agent
        .send(json!({"type": "accept", "offer_id": offer["offer_id"], "ref": 1}))
        .await;
    server(agent.expect("assigned").await);
    agent
        .send(json!({"type": "accept", "offer_id": "o-none", "ref": "x"}))
        .await;
    server(agent.expect("error").await);
    assert_eq!(app.cancel_ticket(&first).await.status, 200);
    server(agent.expect("ticket_cancelled").await);
    app.new_ticket(&ticket("sv", json!({}), 5)).await;
    let lapsing = agent.expect("offer").await;
    app.cancel_ticket(lapsing["ticket_id"].as_str().expect("ticket_id"))
        .await;
    server(agent.expect("offer_revoked").await);
    let mut again = AgentClient::connect(&app.gateways[0], "a-1").await;
    server(again.expect("welcome").await);
    let client = [
        json!({"type": "auth", "token": "t"}),
        json!({"type": "set_status", "status": "break", "ref": 2}),
        json!({"type": "decline", "offer_id": "o-1", "reason": "busy"}),
        json!({"type": "complete", "ticket_id": "t-1", "outcome": "resolved", "note": "ok"}),
    ];
    frames.extend(
        client
            .into_iter()
            .map(|frame| json!({"direction": "client", "frame": frame})),
    );
    assert_eq!(frames.len(), 12);
    let input = json!({"document": doc, "frames": frames}).to_string();
    let (ok, printed) = e2e::python("validate_frames.py", &input);
    assert!(
        ok,
        "frames that do not fit the AsyncAPI document:\n{printed}"
    );
    // And the check can fail: a frame missing a required field does not fit.
    let broken = json!({"document": doc, "frames": [
        {"direction": "server", "frame": {"type": "offer", "offer_id": "o-1"}}
    ]});
    assert!(!e2e::python("validate_frames.py", &broken.to_string()).0);
}
