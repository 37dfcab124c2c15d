//! The choice policy of API.md §5, as a pure function.
//!
//! Among eligible agents the best is: the preferred agent; then fewest active tickets; then
//! longest since its last assignment (or since it went available); then the higher summed level
//! on the ticket's skills; then `agent_id` ascending.
//!
//! The policy runs inside Redis, in the call that reserves the agent (`Match.route` and
//! `Match.better` in `shared/src/lua/matching.lua`), so that a match is one atomic call. This
//! is its statement in Rust, the oracle: `tests/tests/matching/policy.rs` compares the agent
//! the store picks with [`choose`] over every eligible agent, on random fleets in the real Redis.

use std::cmp::Ordering;

/// An eligible agent, with what the policy orders by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The agent.
    pub agent_id: String,
    /// Tickets it holds.
    pub active: u32,
    /// Its last assignment (or going available), ms.
    pub idle_since: i64,
    /// Its summed level over the ticket's skills.
    pub summed_level: u32,
    /// Whether it is the ticket's preferred agent.
    pub preferred: bool,
}

/// Orders two candidates: `Less` means `a` is the better choice.
pub fn compare(a: &Candidate, b: &Candidate) -> Ordering {
    b.preferred
        .cmp(&a.preferred)
        .then(a.active.cmp(&b.active))
        .then(a.idle_since.cmp(&b.idle_since))
        .then(b.summed_level.cmp(&a.summed_level))
        .then(a.agent_id.cmp(&b.agent_id))
}

/// The best candidate, if any.
pub fn choose(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates.iter().min_by(|a, b| compare(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(id: &str, active: u32, idle_since: i64, level: u32, preferred: bool) -> Candidate {
        Candidate {
            agent_id: id.into(),
            active,
            idle_since,
            summed_level: level,
            preferred,
        }
    }

    #[test]
    fn the_preferred_agent_wins_over_everything() {
        let all = [c("a", 0, 0, 9, false), c("z", 3, 99, 0, true)];
        assert_eq!(choose(&all).map(|c| c.agent_id.as_str()), Some("z"));
    }

    #[test]
    fn then_fewest_active_tickets() {
        let all = [c("a", 2, 0, 9, false), c("b", 1, 50, 0, false)];
        assert_eq!(choose(&all).map(|c| c.agent_id.as_str()), Some("b"));
    }

    #[test]
    fn then_longest_idle() {
        let all = [c("a", 1, 200, 9, false), c("b", 1, 100, 0, false)];
        assert_eq!(choose(&all).map(|c| c.agent_id.as_str()), Some("b"));
    }

    #[test]
    fn then_higher_summed_level() {
        let all = [c("a", 1, 100, 3, false), c("b", 1, 100, 7, false)];
        assert_eq!(choose(&all).map(|c| c.agent_id.as_str()), Some("b"));
    }

    #[test]
    fn then_agent_id_ascending() {
        let all = [c("b", 1, 100, 3, false), c("a", 1, 100, 3, false)];
        assert_eq!(choose(&all).map(|c| c.agent_id.as_str()), Some("a"));
    }

    #[test]
    fn nobody_to_choose_from() {
        assert!(choose(&[]).is_none());
    }

    fn candidate() -> impl Strategy<Value = Candidate> {
        (
            "[a-e]{1,2}",
            0u32..4,
            0i64..5,
            0u32..6,
            prop::bool::weighted(0.1),
        )
            .prop_map(|(id, active, idle, level, pref)| c(&id, active, idle, level, pref))
    }

    proptest! {
        #[test]
        fn the_choice_is_no_worse_than_any_candidate(all in prop::collection::vec(candidate(), 1..40)) {
            let best = choose(&all).expect("non-empty");
            for other in &all {
                prop_assert_ne!(compare(other, best), Ordering::Less);
            }
        }

        #[test]
        fn the_choice_does_not_depend_on_input_order(mut all in prop::collection::vec(candidate(), 1..40)) {
            let first = choose(&all).cloned();
            all.reverse();
            let reversed = choose(&all).cloned();
            let key = |c: &Option<Candidate>| c.as_ref().map(|c| (c.preferred, c.active, c.idle_since, c.summed_level, c.agent_id.clone()));
            prop_assert_eq!(key(&first), key(&reversed));
        }
    }
}
