//! The HTTP surface of both services against API.md §1–§4 and `/v1/me` (§7): health, tokens and
//! roles, problem documents, the roster, tickets with idempotency, and the fallbacks.
//!
//! The tests are grouped by module: `health` (health and the fallbacks), `auth`, `bounds` (the
//! limit of every input), `problems`,
//! `roster`, `tickets` and `me`; the helpers they share are in `support`.

mod auth;
mod bounds;
mod health;
mod me;
mod problems;
mod roster;
mod support;
mod tickets;
