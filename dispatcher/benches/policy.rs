//! Criterion benchmark of the pure choice policy, `dispatcher::policy::choose`.
//!
//! For each pool size (10 … 100,000 candidates) it builds one vector of random candidates once,
//! from a fixed seed, and measures one `choose` over the whole vector: the cost of the policy's
//! ordering (which the store runs in Lua, `Match.better`, over the first group of the free
//! index), here stretched to sizes far beyond any group so that the linear scan shows.
//!
//! `cargo bench -p dispatcher --bench policy`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dispatcher::policy::{choose, Candidate};

/// The pool sizes measured.
const SIZES: [usize; 5] = [10, 100, 1_000, 10_000, 100_000];

/// A tiny deterministic xorshift64 generator: the same candidates on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` candidates shaped like a real index page: few active tickets, idle times within an hour,
/// summed levels up to 15, and about one in a thousand the ticket's preferred agent.
fn candidates(n: usize, seed: u64) -> Vec<Candidate> {
    let mut rng = XorShift(seed);
    let now_ms: i64 = 1_780_000_000_000;
    (0..n)
        .map(|i| Candidate {
            agent_id: format!("agent-{i:06}-{:04x}", rng.below(0x1_0000)),
            active: rng.below(3) as u32,
            idle_since: now_ms - rng.below(3_600_000) as i64,
            summed_level: rng.below(16) as u32,
            preferred: rng.below(1_000) == 0,
        })
        .collect()
}

fn bench_choose(c: &mut Criterion) {
    let mut group = c.benchmark_group("choose");
    for &n in &SIZES {
        let pool = candidates(n, 0x9E37_79B9_7F4A_7C15 ^ n as u64);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &pool, |b, pool| {
            b.iter(|| choose(black_box(pool.as_slice())).map(|c| c.active))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_choose);
criterion_main!(benches);
