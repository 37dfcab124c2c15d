//! `dispatcher [serve]` runs the service; `dispatcher mint-token --role R --sub S [--ttl SECS]`
//! prints an HS256 token signed with `JWT_SECRET`, for development and the README walk-through;
//! `dispatcher export-shifts …` writes the payroll export from PostgreSQL ([`dispatcher::export`]).

use std::process::ExitCode;

use dispatcher::Application;
use http_kit::{run_service, shutdown_signal, Exit};

const USAGE: &str = "usage: dispatcher [serve]
       dispatcher mint-token --role ROLE --sub SUBJECT [--ttl SECONDS]
       dispatcher export-shifts --from RFC3339 --to RFC3339 [--format csv|json] [--output FILE] [--agent-id ID]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("serve") => serve(),
        Some("mint-token") => mint_token(&args[1..]),
        Some("export-shifts") => dispatcher::export::main(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("dispatcher: unknown command {other:?}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn serve() -> ExitCode {
    run_service("dispatcher", |settings| async move {
        let app = Application::build(settings)
            .await
            .map_err(|e| Exit::Startup(e.to_string()))?;
        app.run_until_stopped(shutdown_signal())
            .await
            .map_err(|e| Exit::Runtime(e.to_string()))
    })
}

fn mint_token(args: &[String]) -> ExitCode {
    let (mut role, mut sub, mut ttl) = (None, None, 86_400_i64);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next();
        match (flag.as_str(), value) {
            ("--role", Some(v)) => role = Some(v.clone()),
            ("--sub", Some(v)) => sub = Some(v.clone()),
            ("--ttl", Some(v)) => match v.parse() {
                Ok(n) => ttl = n,
                Err(_) => {
                    eprintln!("dispatcher: --ttl {v:?} is not a number of seconds");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("dispatcher: bad argument {flag:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(role), Some(sub)) = (role, sub) else {
        eprintln!("dispatcher: mint-token needs --role and --sub\n{USAGE}");
        return ExitCode::from(2);
    };
    let Ok(secret) = std::env::var("JWT_SECRET") else {
        eprintln!(
            "dispatcher: JWT_SECRET: mint-token signs with the HS256 secret, which is not set"
        );
        return ExitCode::from(2);
    };
    let audience = std::env::var("JWT_AUDIENCE").unwrap_or_else(|_| "dispatch".into());
    println!(
        "{}",
        shared::auth::mint_hs256(&secret, &sub, &role, &audience, ttl)
    );
    ExitCode::SUCCESS
}
