//! The counters `/metrics` shows, in Prometheus' text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The latency histogram's upper bounds, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0];

/// What the webhook counts.
#[derive(Default)]
pub struct Metrics {
    reviews: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    /// Registry lookups made (cache misses).
    pub registry_lookups: AtomicU64,
    /// Decisions taken from the cache.
    pub cache_hits: AtomicU64,
}

impl Metrics {
    /// One review answered by `endpoint` with `verdict`, in `took`.
    pub fn review(&self, endpoint: &'static str, verdict: &'static str, took: Duration) {
        let mut reviews = self.reviews.lock().unwrap_or_else(|e| e.into_inner());
        *reviews.entry((endpoint, verdict)).or_default() += 1;
        drop(reviews);
        let seconds = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The text `/metrics` serves.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP modelgate_admission_reviews_total Admission reviews answered, by endpoint and verdict.\n");
        out.push_str("# TYPE modelgate_admission_reviews_total counter\n");
        let reviews = self.reviews.lock().unwrap_or_else(|e| e.into_inner());
        for ((endpoint, verdict), n) in reviews.iter() {
            let _ = writeln!(
                out,
                "modelgate_admission_reviews_total{{endpoint=\"{endpoint}\",verdict=\"{verdict}\"}} {n}"
            );
        }
        drop(reviews);
        out.push_str("# HELP modelgate_admission_review_seconds Time to answer a review.\n");
        out.push_str("# TYPE modelgate_admission_review_seconds histogram\n");
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "modelgate_admission_review_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "modelgate_admission_review_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "modelgate_admission_review_seconds_sum {sum}");
        let _ = writeln!(out, "modelgate_admission_review_seconds_count {count}");
        for (name, help, value) in [
            (
                "modelgate_admission_registry_lookups_total",
                "Registry lookups made for a signature check.",
                &self.registry_lookups,
            ),
            (
                "modelgate_admission_cache_hits_total",
                "Signature checks answered from the cache.",
                &self.cache_hits,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}
