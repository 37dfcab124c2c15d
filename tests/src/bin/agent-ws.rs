//! `agent-ws`: a command-line client for the agent WebSocket (API.md §6).
//!
//! It plays an agent's app from a terminal or a script:
//!
//! ```text
//! agent-ws [--url ws://127.0.0.1:8081/v1/agent/ws] --token JWT [--first-frame]
//! ```
//!
//! - The token goes in an `Authorization: Bearer` header on the handshake, or with
//!   `--first-frame` in a first `{"type":"auth","token":"…"}` frame, as browsers must send it.
//!   Without `--token` the token is read from `AGENT_TOKEN` (which keeps it out of `ps`), and
//!   without `--url` the URL from `AGENT_WS_URL`.
//! - Every text frame the server sends is printed as one line on stdout; a close frame is
//!   printed as `closed: <code> <reason>`.
//! - Every non-blank line read from stdin is sent as one text frame, as is: type JSON such as
//!   `{"type":"set_status","status":"available"}`.
//! - It exits when the server closes the connection (status 0 for codes 1000, 1001 and 1005,
//!   1 for any other code, such as 4001 not authenticated) or when stdin ends (it then closes
//!   the connection itself, printing the frames still in flight, and exits 0).
//! - Any error is printed as one line on stderr and the exit status is 1.
//!
//! Only `ws://` URLs work: the workspace builds tokio-tungstenite without a TLS stack, so for a
//! `wss://` deployment connect through a local tunnel or port-forward.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Where the agent API listens by default (API.md §1 and §6).
const DEFAULT_URL: &str = "ws://127.0.0.1:8081/v1/agent/ws";

/// How long to wait for the server's answer to our close frame once stdin has ended.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How many stdin lines may wait for the socket before the reader thread blocks.
const STDIN_BUFFER: usize = 64;

/// The help text.
const USAGE: &str =
    "usage: agent-ws [--url ws://127.0.0.1:8081/v1/agent/ws] --token JWT [--first-frame]

  --url URL      the agent WebSocket (default: $AGENT_WS_URL, else ws://127.0.0.1:8081/v1/agent/ws)
  --token JWT    an agent token (default: $AGENT_TOKEN)
  --first-frame  send the token in a first {\"type\":\"auth\"} frame instead of a header

Prints every frame received as one line; sends every line of stdin as a text frame.";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    /// The WebSocket URL.
    url: String,
    /// The agent's JWT.
    token: String,
    /// Send the token in an `auth` frame rather than in the handshake.
    first_frame: bool,
}

/// The result of parsing the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    /// Connect with these options.
    Run(Options),
    /// Print the help text and exit.
    Help,
}

/// How a session ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The server sent a close frame with this code.
    Closed(u16),
    /// Stdin ended and we closed the connection.
    StdinEnded,
}

impl Ending {
    /// The process exit status this ending deserves.
    fn exit_code(self) -> ExitCode {
        match self {
            Self::StdinEnded | Self::Closed(1000 | 1001 | 1005) => ExitCode::SUCCESS,
            Self::Closed(_) => ExitCode::FAILURE,
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let command = parse_args(std::env::args().skip(1), |name| std::env::var(name).ok());
    match command {
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Run(options)) => match run(options).await {
            Ok(ending) => ending.exit_code(),
            Err(e) => {
                eprintln!("agent-ws: {}", one_line(&format!("{e:#}")));
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("agent-ws: {e} (try --help)");
            ExitCode::FAILURE
        }
    }
}

/// Parses the arguments (without the program name); `env` supplies the fallbacks.
fn parse_args(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, String> {
    let mut url = None;
    let mut token = None;
    let mut first_frame = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--first-frame" if inline.is_none() => first_frame = true,
            "--url" | "--token" => {
                let value = match inline {
                    Some(value) => value,
                    None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
                };
                if name == "--url" {
                    url = Some(value);
                } else {
                    token = Some(value);
                }
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let present = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let token = present(token)
        .or_else(|| present(env("AGENT_TOKEN")))
        .ok_or("no token: pass --token JWT or set AGENT_TOKEN")?;
    let url = present(url)
        .or_else(|| present(env("AGENT_WS_URL")))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    Ok(Command::Run(Options {
        url,
        token: token.trim().to_owned(),
        first_frame,
    }))
}

/// Connects, then relays frames to stdout and stdin lines to the server until either side ends.
async fn run(options: Options) -> anyhow::Result<Ending> {
    let mut request = options
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| ws_error(&format!("invalid WebSocket URL {:?}", options.url), &e))?;
    if !options.first_frame {
        let bearer = HeaderValue::from_str(&format!("Bearer {}", options.token))
            .context("the token cannot be sent in an HTTP header")?;
        request.headers_mut().insert(AUTHORIZATION, bearer);
    }
    let (socket, _response) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| handshake_error(&options.url, e))?;
    let (mut sink, mut frames) = socket.split();

    if options.first_frame {
        let auth = serde_json::json!({ "type": "auth", "token": options.token }).to_string();
        sink.send(Message::text(auth))
            .await
            .map_err(|e| ws_error("sending the auth frame", &e))?;
    }

    let mut lines = spawn_stdin_reader();
    // Set once stdin has ended and our close frame is on its way.
    let mut closing_since: Option<Instant> = None;
    loop {
        let close_deadline = closing_since.map(|t| t + CLOSE_WAIT);
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(Message::Text(text))) => print_line(&text)?,
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = match &frame {
                        Some(CloseFrame { code, reason }) => (u16::from(*code), reason.as_str()),
                        None => (u16::from(CloseCode::Status), ""),
                    };
                    print_line(format!("closed: {code} {reason}").trim_end())?;
                    // Flush the close reply tungstenite queued; the session is over either way.
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
                    return Ok(Ending::Closed(code));
                }
                Some(Ok(Message::Binary(bytes))) => {
                    eprintln!("agent-ws: ignored a binary frame of {} bytes", bytes.len());
                }
                // Pings are answered by tungstenite itself; pongs and raw frames need nothing.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(e)) => return Err(ws_error("reading from the server", &e)),
                None if closing_since.is_some() => return Ok(Ending::StdinEnded),
                None => bail!("the server dropped the connection without a close frame"),
            },
            line = lines.recv(), if closing_since.is_none() => match line {
                Some(Ok(line)) => {
                    let line = line.trim_end_matches('\r');
                    if !line.trim().is_empty() {
                        sink.send(Message::text(line))
                            .await
                            .map_err(|e| ws_error("sending a frame", &e))?;
                    }
                }
                Some(Err(e)) => return Err(e).context("reading stdin"),
                None => {
                    let bye = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                    sink.send(Message::Close(Some(bye)))
                        .await
                        .map_err(|e| ws_error("closing the connection", &e))?;
                    closing_since = Some(Instant::now());
                }
            },
            () = sleep_until_or_forever(close_deadline) => return Ok(Ending::StdinEnded),
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_or_forever(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Reads stdin on a plain thread (blocking reads have no place on the runtime) and hands the
/// lines over a bounded channel; the channel closes when stdin ends or fails.
fn spawn_stdin_reader() -> mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = mpsc::channel(STDIN_BUFFER);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let failed = line.is_err();
            // A send error means the session is over and nobody needs more lines.
            if tx.blocking_send(line).is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// Writes `text` to stdout as exactly one line, flushed at once so pipes see it immediately.
fn print_line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", one_line(text))
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

/// Folds line breaks into spaces; in JSON they can only be whitespace, so frames stay valid.
fn one_line(text: &str) -> String {
    text.replace("\r\n", " ").replace(['\n', '\r'], " ")
}

/// Turns a failed handshake into an error that says what the server answered.
fn handshake_error(url: &str, error: WsError) -> anyhow::Error {
    match error {
        WsError::Http(response) => {
            let detail = response
                .body()
                .as_deref()
                .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
                .and_then(|problem| {
                    let code = problem.get("code")?.as_str()?.to_owned();
                    let detail = problem.get("detail").and_then(|d| d.as_str()).unwrap_or("");
                    Some(format!(" ({code}: {detail})"))
                })
                .unwrap_or_default();
            anyhow::anyhow!(
                "the server refused the WebSocket handshake at {url}: {}{detail}",
                response.status()
            )
        }
        other => ws_error(&format!("cannot connect to {url}"), &other),
    }
}

/// A WebSocket error as one message. tungstenite's errors already print their cause, so they
/// are not chained (which would print it twice).
fn ws_error(what: &str, error: &WsError) -> anyhow::Error {
    anyhow::anyhow!("{what}: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Command, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse_args(args.iter().map(|a| (*a).to_owned()), move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    fn options(url: &str, token: &str, first_frame: bool) -> Command {
        Command::Run(Options {
            url: url.to_owned(),
            token: token.to_owned(),
            first_frame,
        })
    }

    #[test]
    fn a_token_alone_connects_to_the_default_url_with_a_header() {
        assert_eq!(
            parse(&["--token", "t0k"], &[]),
            Ok(options(DEFAULT_URL, "t0k", false))
        );
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        assert_eq!(
            parse(
                &["--url=ws://h:1/v1/agent/ws", "--token=a=b", "--first-frame"],
                &[]
            ),
            Ok(options("ws://h:1/v1/agent/ws", "a=b", true))
        );
        assert_eq!(
            parse(
                &["--first-frame", "--url", "ws://x/ws", "--token", "t"],
                &[]
            ),
            Ok(options("ws://x/ws", "t", true))
        );
    }

    #[test]
    fn the_environment_fills_in_what_the_command_line_leaves_out() {
        let env = [("AGENT_TOKEN", "from-env"), ("AGENT_WS_URL", "ws://env/ws")];
        assert_eq!(
            parse(&[], &env),
            Ok(options("ws://env/ws", "from-env", false))
        );
        assert_eq!(
            parse(&["--token", "flag"], &env),
            Ok(options("ws://env/ws", "flag", false))
        );
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert!(parse(&[], &[]).is_err());
        assert!(parse(&["--token"], &[]).is_err());
        assert!(parse(&["--token", " "], &[]).is_err());
        assert!(parse(&["--token", "t", "--bogus"], &[]).is_err());
        assert!(parse(&["--token", "t", "--first-frame=yes"], &[]).is_err());
        assert_eq!(parse(&["--help"], &[]), Ok(Command::Help));
    }

    #[test]
    fn frames_are_printed_on_one_line() {
        assert_eq!(one_line("{\"a\":\n 1,\r\n\"b\":2}"), "{\"a\":  1, \"b\":2}");
    }

    #[test]
    fn only_normal_closes_exit_successfully() {
        assert_eq!(Ending::Closed(1000).exit_code(), ExitCode::SUCCESS);
        assert_eq!(Ending::StdinEnded.exit_code(), ExitCode::SUCCESS);
        assert_eq!(Ending::Closed(4001).exit_code(), ExitCode::FAILURE);
    }
}
