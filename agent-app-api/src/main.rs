//! `agent-app-api`: runs the agents' WebSocket and REST API until SIGTERM, then drains.

use std::process::ExitCode;

use agent_app_api::Application;
use shared::config::Settings;

fn main() -> ExitCode {
    shared::telemetry::init();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("agent-app-api: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agent-app-api: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let app = match Application::build(settings).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("agent-app-api: {e}");
                return ExitCode::from(2);
            }
        };
        match app.run_until_stopped(http_kit::shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("agent-app-api: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
