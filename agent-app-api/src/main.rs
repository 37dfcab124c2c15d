//! `agent-app-api`: runs the agents' WebSocket and REST API until SIGTERM, then drains.

use std::process::ExitCode;

use agent_app_api::Application;
use http_kit::{run_service, shutdown_signal, Exit};

fn main() -> ExitCode {
    run_service("agent-app-api", |settings| async move {
        let app = Application::build(settings)
            .await
            .map_err(|e| Exit::Startup(e.to_string()))?;
        app.run_until_stopped(shutdown_signal())
            .await
            .map_err(|e| Exit::Runtime(e.to_string()))
    })
}
