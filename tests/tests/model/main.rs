//! A model-based property test of the dispatch state machine (`shared/src/lua/`).
//!
//! proptest generates random sequences of operations over a small world (three agents with
//! generated languages, skills, region and capacity; up to six tickets). Each operation is applied
//! both to the real store (a fresh namespace of the real Redis per case, through the typed
//! [`Store`] calls and the real [`Matcher`]) and to a plain reference model written from API.md §5
//! and §6. After every step the observable state is compared (each ticket's status, agent and
//! offer count; each agent's status, connection, active tickets and pending offer; each offer's
//! fate) and the contract's invariants are checked on what the store holds:
//!
//! - a ticket is offered to at most one agent, and an offered ticket has exactly one pending offer;
//! - an agent has at most one pending offer;
//! - an agent holds no more tickets than `max_concurrent` (unless an operator lowered it since);
//! - every ticket is queued, offered, assigned, completed or cancelled, and a queued one waits in
//!   exactly one place, routing or parked in its language's queue (so no ticket is lost);
//! - a parked ticket waits only while no free agent is eligible for it (no lost wake-up);
//! - an assigned ticket is in exactly its agent's active set, and an agent holds only tickets
//!   assigned to it;
//! - the indexes hold exactly what they should: a parked ticket is in its language's queue and in
//!   its class's queue, every class listed has waiting tickets and the class queues of a
//!   language hold its queue; an agent is in the free index of each of its languages exactly
//!   while it is free.
//!
//! A quarter of the cases start with 300 tickets per language that nobody can take (a skill no
//! agent has) waiting ahead at priority 9, so the model's tickets are found behind more than
//! any one page of the queue.
//!
//! The model predicts exactly which agent the matcher picks for a ticket (preferred, fewest
//! active, longest idle, higher summed level, id), which tickets are parked for want of an
//! eligible agent, and which waiting ticket a transition that frees an agent offers it in the
//! same step (highest priority, oldest); it does not read those choices back (only the ids of the
//! offers the store made).
//!
//! Time is made deterministic: offers meant to lapse are made with a 1 ms timeout and the test
//! then sleeps past it; operations that stamp an agent's idle time are followed by a short sleep,
//! so Redis's millisecond clock orders them as the model's logical clock does.
//!
//! Where API.md is silent the model follows what the store documents: `offline` sends the held
//! tickets back to the queue; `break` keeps a pending offer (it can still be accepted); idle time
//! restarts at an assignment or at going available out of `offline` (not out of `break`); a
//! ticket cancelled while assigned keeps its `agent_id`; `break` out of `offline` is refused.
//! Agent-initiated operations (`set_status`, `accept`, `decline`, `complete`) are only sent while
//! the agent is connected, as only its WebSocket sends them.
//!
//! `PROPTEST_CASES` sets the number of cases (default 128); `MODEL_TRACE=1` prints every case's
//! steps. Failures are not persisted to a regressions file: the shrunk sequence is in the message.
//!
//! Modules: `world` (the generated world and operations), `reference` (the reference model),
//! `case` (a case against the real store), `step` (applying one operation to both) and `check`
//! (comparing them and checking the invariants).

mod case;
mod check;
mod reference;
mod step;
mod world;

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::case::{fail, Case};
use crate::world::{op, profile, Op, Profile};

/// The agents' ids, in ascending order (the policy's last tie-break).
pub(crate) const IDS: [&str; 3] = ["a0", "a1", "a2"];
pub(crate) const MAX_TICKETS: usize = 6;
/// In some cases, this many tickets nobody can take wait ahead of the model's, at priority 9,
/// in each language: beyond any page a scan of the queue might read at once.
pub(crate) const BALLAST: usize = 300;
pub(crate) const MISSED_BEFORE_AWAY: u32 = 2;
pub(crate) const LONG_OFFER: Duration = Duration::from_secs(60);
pub(crate) const SHORT_OFFER: Duration = Duration::from_millis(1);
pub(crate) const LONG_GRACE: Duration = Duration::from_secs(60);
pub(crate) const SHORT_GRACE: Duration = Duration::from_millis(1);
/// Sleep after making something with a 1 ms deadline, so that the deadline has surely passed.
pub(crate) const PAST_DEADLINE: Duration = Duration::from_millis(3);
/// Sleep after stamping an agent's idle time, so that the next stamp is a later millisecond.
pub(crate) const NEXT_MILLISECOND: Duration = Duration::from_millis(2);

async fn run_case(
    profiles: &[Profile; 3],
    online: &[bool; 3],
    ballast: bool,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let mut case = Case::new(profiles, online, ballast).await?;
    let mut result = case.check().await;
    for (i, op) in ops.iter().enumerate() {
        if result.is_err() {
            break;
        }
        result = match case.step(op).await {
            Ok(()) => case.check().await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            result = Err(fail(format!(
                "step {i} ({op:?}) went wrong: {e}\nsteps run:\n{}",
                case.trace
            )));
        }
    }
    if std::env::var_os("MODEL_TRACE").is_some() {
        eprintln!("case:\n{}", case.trace);
    }
    case.cleanup().await;
    result
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: e2e::direct::proptest_cases(128),
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_store_behaves_like_the_model(
        profiles in (profile(), profile(), profile()).prop_map(|(a, b, c)| [a, b, c]),
        online in (prop::bool::weighted(0.8), prop::bool::weighted(0.8), prop::bool::weighted(0.8))
            .prop_map(|(a, b, c)| [a, b, c]),
        ballast in prop::bool::weighted(0.25),
        ops in prop::collection::vec(op(), 1..30),
    ) {
        e2e::direct::proptest_runtime().block_on(run_case(&profiles, &online, ballast, &ops))?;
    }
}
