//! Matching (API.md §5) and the ticket lifecycle (§4), end to end: which agent gets a ticket,
//! when, and what becomes of the ticket when agents decline, miss, drop or leave, or when it is
//! cancelled.
//!
//! The tests are grouped by module: `order` (which agent, which ticket first), `eligibility`,
//! `offers` (declines and timeouts), `drops`, `lifecycle` (cancelling, removing an agent),
//! `routing` (who routes a ticket, and after a dispatcher died), `starvation` (a ticket behind
//! a thousand its agent cannot take), `commands` (what a ticket's life costs in Redis commands), `resilience` (a stale queue entry, a preferred agent free between
//! two calls), `policy` (the store's choice against
//! `dispatcher::policy`, the oracle) and `no_ticket_lost`; the helpers they share are in
//! `support`.

mod commands;
mod drops;
mod eligibility;
mod lifecycle;
mod no_ticket_lost;
mod offers;
mod order;
mod policy;
mod resilience;
mod routing;
mod starvation;
mod support;
