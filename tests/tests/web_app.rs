//! The agents' web app (API.md §12) in a real browser: headless Debian Chromium driven by
//! Playwright (`web/tests/agent-app.mjs`) on a phone-sized screen, against the real services.
//! Screenshots of each screen are written to `target/screenshots/`.

use std::process::Command;

use e2e::{spawn_with, token, Options};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_works_a_ticket_end_to_end_in_the_browser() {
    let web = concat!(env!("CARGO_MANIFEST_DIR"), "/../web");
    assert!(
        std::path::Path::new(&format!("{web}/dist/app/index.html")).is_file(),
        "the agent app is not built: ./deploy/test builds it (npm ci && npm run build in web/)"
    );
    let mut app = spawn_with(Options {
        offer_timeout_secs: 6,
        missed_before_away: 2,
        ..Options::default()
    })
    .await;
    app.add_agent(
        "a-web",
        &json!({
            "display_name": "Astrid L.",
            "skills": {"refunds": 4},
            "languages": ["sv", "en"],
            "max_concurrent": 1,
            "timezone": "Europe/Stockholm",
            "hourly_rate_cents": 1650,
            "currency": "EUR"
        }),
    )
    .await;
    let mut node = Command::new("node");
    node.current_dir(web)
        .arg("tests/agent-app.mjs")
        .env("APP_URL", &app.gateways[0])
        .env("DISPATCHER_URL", &app.dispatchers[0])
        .env("AGENT_TOKEN", token("agent", "a-web"))
        .env("ESCALATION_TOKEN", token("escalation", "engine"))
        .env(
            "SCREENSHOTS",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../target/screenshots"),
        );
    let signals = std::env::temp_dir().join(format!("web-app-{}", app.namespace));
    std::fs::create_dir_all(&signals).expect("a signal folder");
    node.env("SIGNAL_DIR", &signals);
    let restart = signals.join("restart");
    let mut browser = tokio::task::spawn_blocking(move || e2e::run(node, ""));
    // The script asks for the gateway's restart (a dropped connection) by creating `restart`.
    let (ok, printed) = loop {
        tokio::select! {
            done = &mut browser => break done.expect("the browser test ran"),
            () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {
                if restart.exists() {
                    app.restart_gateway(0).await;
                    std::fs::remove_file(&restart).expect("signal removed");
                }
            }
        }
    };
    let _ = std::fs::remove_dir_all(&signals);
    assert!(ok, "the agent app in the browser:\n{printed}");
    let summary: Value = serde_json::from_str(printed.trim()).expect("the summary");
    assert_eq!(
        summary["screens"].as_array().map(Vec::len),
        Some(6),
        "{summary}"
    );
    // What the app did is what the API says happened.
    let agent = app
        .send(app.http.get(app.dispatcher("/v1/agents/a-web")), "admin")
        .await;
    assert_eq!(
        agent.body["state"]["status"], "available",
        "{:?}",
        agent.body
    );
}
