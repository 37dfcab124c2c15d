//! The dispatcher: roster admin, ticket intake, matching, offers and their deadlines.
//!
//! - [`startup`]: `Application::build` binds a listener and starts every loop; `main` is thin.
//! - [`routes`]: the HTTP API (`/v1/agents…`, `/v1/tickets…`), one module per resource.
//! - [`matcher`]: routes tickets that need an agent to the best one (freed agents are offered
//!   the best waiting ticket by the transitions themselves, in Redis).
//! - [`policy`]: the pure choice policy of API.md §5.
//! - [`timers`]: offer deadlines, grace periods, silent gateways and tickets a dead dispatcher
//!   left routing, all kept in Redis.
//! - [`geofence`]: GeoJSON regions, resolved per agent when its profile is written.
//! - [`supervise`]: background loops restarted after failures, with backoff.
//! - [`export`]: `dispatcher export-shifts`, the streaming payroll export.
//! - [`outbound`]: the public events (API.md §9, §10) with their bodies, and `/v1/events`.
//! - [`metrics`]: `GET /metrics`.
//! - [`webhooks`]: webhook endpoints, the fan-out of events to them, and their deliveries.
//!
//! All state is in Redis and every transition is one function of the Lua library in
//! `shared/src/lua/`, so any number of dispatchers may run against one namespace.

pub mod export;
pub mod geofence;
pub mod matcher;
pub mod metrics;
pub mod outbound;
pub mod policy;
pub mod routes;
pub mod startup;
pub mod supervise;
pub mod timers;
pub mod webhooks;

pub use startup::{Application, StartupError};
