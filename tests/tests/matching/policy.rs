//! The choice policy as the store runs it (`Match.route` and `Match.better` in
//! `shared/src/lua/matching.lua`, inside the call that reserves the agent) against its
//! statement in Rust, `dispatcher::policy::choose`, the oracle (API.md §5): on random fleets in
//! the real Redis, the agent a ticket is offered to must be the one `choose` picks among every
//! eligible agent, both when the ticket is created and when it is routed again after a decline.
//!
//! Each case puts 1 to 24 agents on the roster (ids in mixed case and punctuation, so that the
//! last tie-break is checked byte by byte, not by the server's locale), all speaking Swedish,
//! with random levels in three skills and capacity 3. They connect and go available in a random
//! order, quickly enough that some share a millisecond of idle time; some then take one or two
//! tickets meant for them (a preferred-agent ticket, accepted), which makes them more active
//! and restarts their idle time. Then a ticket with random skill levels and a random preferred
//! agent (or none) is posted. The oracle's candidates are read back from the agents' hashes
//! (active, idle_since, skills): every agent is connected, available, below capacity and
//! without an offer by construction, so eligibility comes down to the skills (and, after the
//! decline, to not having declined).
//!
//! `PROPTEST_CASES` sets the number of cases (default 48).

use std::collections::BTreeMap;

use dispatcher::matcher::PAGE;
use dispatcher::policy::{choose, Candidate};
use e2e::REDIS_URL;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};
use shared::domain::{AgentId, OfferId, RequestedStatus, TicketId};
use shared::store::{CreatedTicket, NewTicketFields, Routed, Store};

/// Agent ids whose byte order differs from a dictionary's.
const IDS: [&str; 24] = [
    "B", "a", "A", "b", "_a", "-a", ".a", "a.", "Ab", "aB", "ab", "AB", "z9", "Z0", "9z", "0Z",
    "a-b", "a_b", "a.b", "A-B", "ba", "Ba", "bA", "BA",
];
const SKILLS: [&str; 3] = ["refunds", "disputes", "billing"];

/// One agent: its levels in [`SKILLS`] (0: not a skill of its) and how many tickets it takes
/// before the ticket under test.
#[derive(Debug, Clone)]
struct Agent {
    levels: [u8; 3],
    busy: u8,
}

#[derive(Debug, Clone)]
struct Fleet {
    agents: Vec<Agent>,
    /// The order they go available in (indexes into `agents`).
    order: Vec<usize>,
    /// The ticket's required levels (0: not required).
    need: [u8; 3],
    /// The ticket's preferred agent, if any (an index, possibly of an ineligible agent).
    preferred: Option<usize>,
}

fn fleet() -> impl Strategy<Value = Fleet> {
    let agent =
        (prop::array::uniform3(0u8..4), 0u8..3).prop_map(|(levels, busy)| Agent { levels, busy });
    (1usize..=IDS.len())
        .prop_flat_map(move |n| {
            (
                prop::collection::vec(agent.clone(), n),
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
                prop::array::uniform3(prop::sample::select(vec![0u8, 0, 1, 2, 3])),
                prop::option::weighted(0.3, 0..n),
            )
        })
        .prop_map(|(agents, order, need, preferred)| Fleet {
            agents,
            order,
            need,
            preferred,
        })
}

fn fail(msg: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(msg.to_string())
}

fn skills_json(levels: &[u8; 3]) -> Value {
    let map: serde_json::Map<String, Value> = SKILLS
        .iter()
        .zip(levels)
        .filter(|(_, l)| **l > 0)
        .map(|(s, l)| ((*s).to_owned(), json!(l)))
        .collect();
    Value::Object(map)
}

fn ticket_fields(need: &[u8; 3], preferred: Option<&str>) -> NewTicketFields {
    let mut body = e2e::ticket("sv", skills_json(need), 4);
    if let Some(p) = preferred {
        body["preferred_agent_id"] = json!(p);
    }
    e2e::direct::ticket_fields(&body)
}

fn id(a: usize) -> AgentId {
    AgentId::try_from(IDS[a]).expect("an agent id")
}

/// What the oracle says: the best of every eligible agent, read from the agents' hashes,
/// leaving out those in `barred`.
async fn oracle(
    store: &Store,
    n: usize,
    need: &[u8; 3],
    preferred: Option<usize>,
    barred: &[usize],
) -> Result<Option<String>, TestCaseError> {
    let mut conn = store.conn();
    let mut candidates = Vec::new();
    for a in (0..n).filter(|a| !barred.contains(a)) {
        let (active, idle, skills): (u32, i64, String) = redis::cmd("HMGET")
            .arg(store.keys().agent(IDS[a]))
            .arg(&["active", "idle_since", "skills"])
            .query_async(&mut conn)
            .await
            .map_err(|e| fail(format!("HMGET agent: {e}")))?;
        let have: BTreeMap<&str, u32> = skills
            .split(',')
            .filter_map(|p| p.split_once(':'))
            .map(|(s, l)| (s, l.parse().unwrap_or(0)))
            .collect();
        let mut level = 0;
        let mut eligible = true;
        for (skill, &want) in SKILLS.iter().zip(need) {
            if want == 0 {
                continue;
            }
            let got = have.get(skill).copied().unwrap_or(0);
            eligible &= got >= u32::from(want);
            level += got;
        }
        if eligible {
            candidates.push(Candidate {
                agent_id: IDS[a].to_owned(),
                active,
                idle_since: idle,
                summed_level: level,
                preferred: preferred == Some(a),
            });
        }
    }
    Ok(choose(&candidates).map(|c| c.agent_id.clone()))
}

fn offered_to(routed: &Routed) -> Result<Option<(String, String)>, TestCaseError> {
    match routed {
        Routed::Offered { agent, offer, .. } => Ok(Some((agent.clone(), offer.clone()))),
        Routed::Parked => Ok(None),
        other => Err(fail(format!(
            "a small fleet is routed in one call: {other:?}"
        ))),
    }
}

async fn run_case(store: &Store, f: &Fleet) -> Result<(), TestCaseError> {
    let n = f.agents.len();
    for (a, agent) in f.agents.iter().enumerate() {
        let profile = e2e::profile(&["sv"], skills_json(&agent.levels), 3);
        e2e::direct::online_agent(store, IDS[a], &profile, false).await;
    }
    for &a in &f.order {
        store
            .set_status(&id(a), RequestedStatus::Available)
            .await
            .map_err(|e| fail(format!("set_status: {e}")))?;
    }
    // Some agents take tickets meant for them, in the order they went available.
    for &a in &f.order {
        for _ in 0..f.agents[a].busy {
            let tid = TicketId::generate();
            let created = store
                .create_ticket(&tid, None, &ticket_fields(&[0; 3], Some(IDS[a])), PAGE)
                .await
                .map_err(|e| fail(format!("create_ticket: {e}")))?;
            let CreatedTicket::Created { routed, .. } = created else {
                return Err(fail("a new ticket id creates a ticket"));
            };
            match offered_to(&routed)? {
                Some((agent, offer)) if agent == IDS[a] => {
                    let offer = OfferId::try_from(offer.as_str()).expect("an offer id");
                    store
                        .accept(&id(a), &offer)
                        .await
                        .map_err(|e| fail(format!("accept: {e}")))?;
                }
                other => {
                    return Err(fail(format!(
                        "a ticket preferring the free agent {} went to {other:?}",
                        IDS[a]
                    )))
                }
            }
        }
    }

    let expected = oracle(store, n, &f.need, f.preferred, &[]).await?;
    let tid = TicketId::generate();
    let created = store
        .create_ticket(
            &tid,
            None,
            &ticket_fields(&f.need, f.preferred.map(|p| IDS[p])),
            PAGE,
        )
        .await
        .map_err(|e| fail(format!("create_ticket: {e}")))?;
    let CreatedTicket::Created { routed, .. } = created else {
        return Err(fail("a new ticket id creates a ticket"));
    };
    let got = offered_to(&routed)?;
    prop_assert_eq!(
        got.as_ref().map(|(a, _)| a.clone()),
        expected,
        "the creation's choice against the oracle's"
    );
    let Some((first, offer)) = got else {
        return Ok(());
    };

    // Declined: the ticket goes to the best of the others.
    let first = IDS.iter().position(|i| *i == first).expect("one of ours");
    let offer = OfferId::try_from(offer.as_str()).expect("an offer id");
    store
        .decline(&id(first), &offer, None)
        .await
        .map_err(|e| fail(format!("decline: {e}")))?;
    let expected = oracle(store, n, &f.need, f.preferred, &[first]).await?;
    let routed = store
        .route_ticket(tid.as_str(), 0, PAGE)
        .await
        .map_err(|e| fail(format!("route_ticket: {e}")))?;
    prop_assert_eq!(
        offered_to(&routed)?.map(|(a, _)| a),
        expected,
        "the choice after {} declined, against the oracle's",
        IDS[first]
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: e2e::direct::proptest_cases(48),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_store_chooses_the_agent_the_policy_chooses(f in fleet()) {
        e2e::direct::proptest_runtime().block_on(async {
            let namespace = e2e::fresh_namespace();
            let store = Store::open(REDIS_URL, &namespace).expect("a Redis URL");
            store.load_library().await.expect("the library loads");
            let result = run_case(&store, &f).await;
            e2e::delete_namespace_keys(&mut store.conn(), &namespace).await;
            result
        })?;
    }
}
