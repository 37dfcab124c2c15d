//! What both dispatch services share.
//!
//! - [`domain`]: validated values (ids, skills, languages, priority, location…), agent profiles
//!   and tickets, parsed on deserialisation so handlers never see invalid input.
//! - [`protocol`]: the agent WebSocket's `ClientMessage`/`ServerMessage` and the internal
//!   [`protocol::Push`] the Redis functions publish for the gateways.
//! - [`error`]: the one table of error codes with their HTTP statuses.
//! - [`auth`]: JWT claims and verification.
//! - [`config`]: the typed configuration read from the environment.
//! - [`keys`]: the Redis key schema; [`store`]: the Redis store, whose state transitions are
//!   the functions of the Lua library in `src/lua/` (joined by `build.rs`), each one atomic,
//!   each replying a typed result and appending to the event stream, whose entries
//!   [`events`] parses.
//! - [`telemetry`]: tracing setup; [`metrics`]: the Prometheus series and their exposition.

pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod keys;
pub mod metrics;
pub mod protocol;
pub mod schema;
pub mod store;
pub mod telemetry;
