//! WebSocket connections from chosen source addresses, for both targets' agents.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

use crate::record::{Ctx, Note};

/// A client WebSocket over a plain TCP stream.
pub type Ws = WebSocketStream<TcpStream>;

/// Small buffers: a generator may hold 100,000 connections.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Opens a WebSocket to `url` (at `addr`) from `source`:0, with `headers`.
pub async fn ws_connect(
    url: &str,
    addr: SocketAddr,
    source: Ipv4Addr,
    headers: &[(&'static str, String)],
) -> anyhow::Result<Ws> {
    let socket = if addr.is_ipv4() {
        let s = TcpSocket::new_v4()?;
        s.bind(SocketAddr::new(source.into(), 0))?;
        s
    } else {
        TcpSocket::new_v6()?
    };
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut req = url.into_client_request()?;
    for (name, value) in headers {
        req.headers_mut().insert(*name, value.parse()?);
    }
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(req, stream, Some(ws_config())).await?;
    Ok(ws)
}

/// Opens agent `id`'s WebSocket within 30 s; on failure counts the agent as failed, says
/// why, and gives `None`.
pub async fn connect_agent(
    ctx: &Ctx,
    id: &str,
    url: &str,
    addr: SocketAddr,
    source: Ipv4Addr,
    headers: &[(&'static str, String)],
) -> Option<Ws> {
    let connecting = ws_connect(url, addr, source, headers);
    match tokio::time::timeout(std::time::Duration::from_secs(30), connecting).await {
        Ok(Ok(ws)) => Some(ws),
        Ok(Err(e)) => {
            ctx.note(Note::Failed {
                why: format!("{id} via {source}: {e}"),
            });
            None
        }
        Err(_) => {
            ctx.note(Note::Failed {
                why: format!("{id} via {source}: connect timed out"),
            });
            None
        }
    }
}

/// The agent WebSocket URL of a gateway given as `ws://host:port` or `http://host:port`
/// (a URL with a path of its own is used as it is).
pub fn gateway_ws_url(base: &str) -> String {
    let base = base
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1);
    let after_scheme = base.split_once("://").map_or(base.as_str(), |(_, r)| r);
    match after_scheme.find('/') {
        Some(i) if after_scheme.len() > i + 1 => base.clone(),
        _ => format!("{}/v1/agent/ws", base.trim_end_matches('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            gateway_ws_url("ws://127.0.0.1:8081"),
            "ws://127.0.0.1:8081/v1/agent/ws"
        );
        assert_eq!(
            gateway_ws_url("http://127.0.0.1:8081/"),
            "ws://127.0.0.1:8081/v1/agent/ws"
        );
        assert_eq!(gateway_ws_url("ws://h:1/custom"), "ws://h:1/custom");
    }
}
