//! Latency histograms (HDR, microseconds) and their JSON summary.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Up to 60 s at 3 significant digits.
pub struct Latency(Histogram<u64>);

impl Latency {
    pub fn new() -> Self {
        // Bounds are constants that hdrhistogram accepts; `new_with_max` only fails for
        // sigfig > 5 or max < 2.
        Self(Histogram::new_with_max(60_000_000, 3).unwrap_or_else(|_| unreachable!()))
    }

    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.0.saturating_record(us);
    }

    pub fn add(&mut self, other: &Latency) {
        // Same bounds on both sides: `add` cannot fail.
        let _ = self.0.add(&other.0);
    }

    fn ms(&self, q: f64) -> f64 {
        round3(self.0.value_at_quantile(q) as f64 / 1000.0)
    }

    /// `{"p50_ms":…, "p99_ms":…, "p999_ms":…, "max_ms":…, "mean_ms":…}`.
    pub fn summary(&self) -> Value {
        if self.0.is_empty() {
            return json!({"p50_ms": null, "p99_ms": null, "p999_ms": null, "max_ms": null, "mean_ms": null});
        }
        json!({
            "p50_ms": self.ms(0.5),
            "p99_ms": self.ms(0.99),
            "p999_ms": self.ms(0.999),
            "max_ms": round3(self.0.max() as f64 / 1000.0),
            "mean_ms": round3(self.0.mean() / 1000.0),
        })
    }
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Error counts by kind (`"400 ResourceNotFoundException"`, `"timeout"`, `"io"`).
#[derive(Default)]
pub struct Errors {
    pub by_kind: BTreeMap<String, u64>,
    pub first: Option<String>,
}

impl Errors {
    pub fn add(&mut self, kind: String, detail: impl FnOnce() -> String) {
        if self.first.is_none() {
            self.first = Some(detail());
        }
        *self.by_kind.entry(kind).or_default() += 1;
    }

    pub fn merge(&mut self, other: Errors) {
        if self.first.is_none() {
            self.first = other.first;
        }
        for (k, v) in other.by_kind {
            *self.by_kind.entry(k).or_default() += v;
        }
    }

    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }

    pub fn to_json(&self) -> Value {
        json!({ "total": self.total(), "by_kind": self.by_kind, "first": self.first })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn summarises_in_milliseconds() {
        let mut l = Latency::new();
        for us in 1..=1000 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        assert!((s["p50_ms"].as_f64().unwrap() - 0.5).abs() < 0.01);
        assert!((s["p99_ms"].as_f64().unwrap() - 0.99).abs() < 0.01);
        let mut e = Errors::default();
        e.add("400".into(), || "first".into());
        e.add("400".into(), || "second".into());
        assert_eq!(e.to_json()["by_kind"]["400"], 2);
        assert_eq!(e.to_json()["first"], "first");
    }
}
