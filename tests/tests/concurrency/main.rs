//! Concurrency: many agents, several dispatcher and gateway instances, one Redis namespace.
//!
//! API.md §5: "A ticket is offered to one agent at a time and is never assigned to two agents,
//! however many dispatcher instances run", and "No ticket is ever lost". These tests drive the
//! real services (and, below them, the matcher and the store) hard and concurrently, and then
//! check those promises from three independent records: the agents' own frames, the tickets as the
//! API shows them, and the namespace's event stream (every transition, in the order Redis made
//! them).
//!
//! The tests are grouped by module: `under_load` (the whole system under load), `racing_matchers`
//! (matching raced from many tasks and two matchers) and `racing_answers` (answers to one offer
//! raced); the helpers they share are in `support`.

mod racing_answers;
mod racing_matchers;
mod support;
mod under_load;
