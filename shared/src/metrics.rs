//! Prometheus metrics (API.md §11), in the process's default registry: each service registers
//! its series here and serves [`render`] at `/metrics`.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{Encoder, HistogramOpts, HistogramVec, Opts, TextEncoder};

/// Registers `metric` in the default registry (once: a second registration of the same name
/// is ignored) and returns it.
pub fn registered<M: prometheus::core::Collector + Clone + 'static>(metric: M) -> M {
    let _ = prometheus::default_registry().register(Box::new(metric.clone()));
    metric
}

/// A counter family, registered.
pub fn counter(name: &str, help: &str, labels: &[&str]) -> prometheus::IntCounterVec {
    registered(
        prometheus::IntCounterVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| panic!("metric {name}: {e}")),
    )
}

/// A gauge family, registered.
pub fn gauge(name: &str, help: &str, labels: &[&str]) -> prometheus::IntGaugeVec {
    registered(
        prometheus::IntGaugeVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| panic!("metric {name}: {e}")),
    )
}

/// A histogram family with `buckets` (seconds), registered.
pub fn histogram(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    registered(
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
            .unwrap_or_else(|e| panic!("metric {name}: {e}")),
    )
}

/// Every Redis function call's duration, by function.
pub static REDIS_CALLS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "dispatch_redis_call_seconds",
        "Duration of calls to the Redis function library, by function",
        &["function"],
        vec![
            0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ],
    )
});

/// Records a Redis call of `function` that took `took`.
pub fn redis_call(function: &str, took: Duration) {
    REDIS_CALLS
        .with_label_values(&[function])
        .observe(took.as_secs_f64());
}

/// The text exposition of every registered metric.
pub fn render() -> (String, &'static str) {
    let encoder = TextEncoder::new();
    let mut out = Vec::new();
    if let Err(e) = encoder.encode(&prometheus::gather(), &mut out) {
        tracing::error!(error = %e, "metrics could not be encoded");
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        "text/plain; version=0.0.4; charset=utf-8",
    )
}
