//! The dispatcher: roster admin, ticket intake, matching, offers and their deadlines.
//!
//! - [`startup`]: `Application::build` binds a listener and starts every loop; `main` is thin.
//! - [`routes`]: the HTTP API (`/v1/agents…`, `/v1/tickets…`), one module per resource.
//! - [`matcher`]: reacts to the namespace's event stream (one consumer group across all
//!   instances), offering freed tickets to the best agent and freed agents the best ticket.
//! - [`policy`]: the pure choice policy of API.md §5.
//! - [`timers`]: offer deadlines, grace periods and silent gateways, all kept in Redis.
//! - [`geofence`]: GeoJSON regions, resolved per agent when its profile is written.
//! - [`export`]: `dispatcher export-shifts`, the streaming payroll export.
//!
//! All state is in Redis and every transition is one function of `shared/src/dispatch.lua`, so
//! any number of dispatchers may run against one namespace.

pub mod export;
pub mod geofence;
pub mod matcher;
pub mod policy;
pub mod routes;
pub mod startup;
pub mod timers;

pub use startup::{Application, StartupError};
