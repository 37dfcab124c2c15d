//! The web apps (API.md §12) in a real browser: headless Debian Chromium driven by Playwright
//! (`web/tests/*.mjs`) against the real services: the agents' app on a phone-sized screen, and
//! the operators' console beside an agent at work. Screenshots of each screen are written to
//! `target/screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{spawn_with, token, Options, TestApp};
use serde_json::{json, Value};

const WEB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../web");

fn profile(max_concurrent: u8) -> Value {
    json!({
        "display_name": "Astrid L.",
        "skills": {"refunds": 4},
        "languages": ["sv", "en"],
        "max_concurrent": max_concurrent,
        "location": {"lat": 60.0, "lon": 15.0},
        "timezone": "Europe/Stockholm",
        "hourly_rate_cents": 1650,
        "currency": "EUR"
    })
}

async fn started() -> TestApp {
    for app in ["app", "console"] {
        assert!(
            Path::new(&format!("{WEB}/dist/{app}/index.html")).is_file(),
            "the web apps are not built: ./deploy/test builds them (npm ci && npm run build in web/)"
        );
    }
    spawn_with(Options {
        offer_timeout_secs: 6,
        missed_before_away: 2,
        ..Options::default()
    })
    .await
}

/// Runs `web/tests/<script>` with `vars` and the services' addresses; the script may ask for
/// the gateway's restart (a dropped connection) by creating the file `$SIGNAL_DIR/restart`.
/// Returns the summary it printed.
async fn browser(app: &mut TestApp, script: &str, vars: &[(&str, String)]) -> Value {
    let signals: PathBuf = std::env::temp_dir().join(format!("web-app-{}", app.namespace));
    std::fs::create_dir_all(&signals).expect("a signal folder");
    let restart = signals.join("restart");
    let mut node = Command::new("node");
    node.current_dir(WEB)
        .arg(format!("tests/{script}"))
        .env("APP_URL", &app.gateways[0])
        .env("DISPATCHER_URL", &app.dispatchers[0])
        .env("SIGNAL_DIR", &signals)
        .env(
            "SCREENSHOTS",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../target/screenshots"),
        );
    for (name, value) in vars {
        node.env(name, value);
    }
    let mut run = tokio::task::spawn_blocking(move || e2e::run(node, ""));
    let (ok, printed) = loop {
        tokio::select! {
            done = &mut run => break done.expect("the browser test ran"),
            () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {
                if restart.exists() {
                    app.restart_gateway(0).await;
                    std::fs::remove_file(&restart).expect("signal removed");
                }
            }
        }
    };
    let _ = std::fs::remove_dir_all(&signals);
    assert!(ok, "{script} in the browser:\n{printed}");
    serde_json::from_str(printed.trim()).expect("the summary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_works_a_ticket_end_to_end_in_the_browser() {
    let mut app = started().await;
    app.add_agent("a-web", &profile(1)).await;
    let summary = browser(
        &mut app,
        "agent-app.mjs",
        &[
            ("AGENT_TOKEN", token("agent", "a-web")),
            ("ESCALATION_TOKEN", token("escalation", "engine")),
        ],
    )
    .await;
    assert_eq!(
        summary["screens"].as_array().map(Vec::len),
        Some(7),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_watch_the_pool_and_act_in_the_console() {
    let mut app = started().await;
    app.add_agent("a-con", &profile(2)).await;
    let summary = browser(
        &mut app,
        "console.mjs",
        &[
            ("AGENT_ID", "a-con".to_owned()),
            ("AGENT_TOKEN", token("agent", "a-con")),
            ("ADMIN_TOKEN", token("admin", "ops")),
            ("ESCALATION_TOKEN", token("escalation", "engine")),
        ],
    )
    .await;
    assert_eq!(
        summary["screens"].as_array().map(Vec::len),
        Some(3),
        "{summary}"
    );
    let agent = app
        .send(app.http.get(app.dispatcher("/v1/agents/a-con")), "admin")
        .await;
    assert_eq!(
        agent.body["languages"],
        json!(["sv", "en", "fi"]),
        "{:?}",
        agent.body
    );
    let gone = app
        .send(app.http.get(app.dispatcher("/v1/agents/a-new")), "admin")
        .await;
    assert_eq!(gone.status, 404);
}
