//! The agent WebSocket (API.md §6), end to end: the handshake (header and first-frame
//! authentication, `Origin`), frame hygiene (size, binary, UTF-8, JSON, unknown types, the bad
//! frame budget, `ref` echoes), offers and tickets that are not the agent's, status changes, one
//! live connection per agent (on one gateway and across two), `welcome` and its restoration after
//! a reconnect, removal from the roster, and `GET /v1/me`.
//!
//! The tests are grouped by module: `handshake`, `frames`, `limits` (reason and note lengths,
//! the rate limit, a client that stops reading: the one test that waits for the 20-second ping),
//! `ownership`, `connections` and `session`; the helpers they share are in `support`.

mod connections;
mod frames;
mod handshake;
mod limits;
mod ownership;
mod session;
mod support;
