//! agent-app-api: what the agents' apps talk to.
//!
//! - [`ws`]: the agent WebSocket (`/v1/agent/ws`): authentication by header or first frame,
//!   Origin check, `welcome`, and the frames of API.md §6; each connection is one task.
//! - [`hub`]: the actor owning this instance's live connections; pushes reach agents through it.
//! - [`push`]: the Redis pub/sub subscription feeding the hub, and this instance's heartbeat.
//! - [`me`]: `GET /v1/me`.
//! - [`docs`]: `GET /openapi.json` and `GET /asyncapi.json`.
//! - [`startup`]: `Application::build`, as in the dispatcher.
//!
//! Agent actions (accept, decline, complete, set_status) are functions of the shared Redis
//! library, so it does not matter which instance an agent is connected to. One live connection
//! per agent across all instances: `connect` records the newest and tells the holder of the
//! older one, wherever it is, to close it with 4009.

pub mod docs;
pub mod hub;
pub mod me;
pub mod push;
pub mod startup;
pub mod ws;

pub use startup::{Application, StartupError};
