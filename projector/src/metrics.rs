//! What the projector reports on `/metrics` and `/v1/checkpoint`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Default)]
pub struct Metrics {
    events_applied: AtomicU64,
    duplicates_skipped: AtomicU64,
    gap_fills: AtomicU64,
    gap_fill_events: AtomicU64,
    replayed_from_bus: AtomicU64,
    replayed_from_store: AtomicU64,
    dead_letters: AtomicU64,
    invalid_messages: AtomicU64,
    batch_failures: AtomicU64,
    flushes: AtomicU64,
    flush_micros_total: AtomicU64,
    flush_micros_last: AtomicU64,
    docs_written: AtomicU64,
    store_tail: AtomicU64,
    models: RwLock<BTreeMap<String, ModelStatus>>,
}

/// One model's live generation and checkpoint.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ModelStatus {
    pub generation: u32,
    pub position: u64,
}

/// The body of `GET /v1/checkpoint`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointView {
    /// Every event at or below it is applied to every live model.
    pub position: u64,
    pub store_tail: u64,
    pub models: BTreeMap<String, ModelStatus>,
}

impl Metrics {
    pub(crate) fn applied(&self, events: usize) {
        add(&self.events_applied, events as u64);
    }

    pub(crate) fn duplicate(&self) {
        add(&self.duplicates_skipped, 1);
    }

    pub(crate) fn gap_filled(&self, events: usize) {
        add(&self.gap_fills, 1);
        add(&self.gap_fill_events, events as u64);
    }

    /// Events a catch-up read, by source.
    pub(crate) fn replayed(&self, read: crate::source::ReadCounts) {
        add(&self.replayed_from_bus, read.bus);
        add(&self.replayed_from_store, read.store);
    }

    pub(crate) fn dead_lettered(&self) {
        add(&self.dead_letters, 1);
    }

    pub(crate) fn invalid_message(&self) {
        add(&self.invalid_messages, 1);
    }

    pub(crate) fn batch_failed(&self) {
        add(&self.batch_failures, 1);
    }

    pub(crate) fn flushed(&self, docs: usize, took: Duration) {
        let micros = took.as_micros().min(u64::MAX as u128) as u64;
        add(&self.flushes, 1);
        add(&self.flush_micros_total, micros);
        self.flush_micros_last.store(micros, Ordering::Relaxed);
        add(&self.docs_written, docs as u64);
    }

    pub(crate) fn set_store_tail(&self, tail: u64) {
        self.store_tail.fetch_max(tail, Ordering::Relaxed);
    }

    pub(crate) fn set_model(&self, model: &str, status: ModelStatus) {
        if let Ok(mut models) = self.models.write() {
            models.insert(model.to_owned(), status);
        }
    }

    pub fn duplicates_skipped(&self) -> u64 {
        self.duplicates_skipped.load(Ordering::Relaxed)
    }

    pub fn dead_letters(&self) -> u64 {
        self.dead_letters.load(Ordering::Relaxed)
    }

    pub fn gap_fills(&self) -> u64 {
        self.gap_fills.load(Ordering::Relaxed)
    }

    pub fn checkpoint(&self) -> CheckpointView {
        let models = self.models.read().map(|m| m.clone()).unwrap_or_default();
        let position = models.values().map(|m| m.position).min().unwrap_or(0);
        CheckpointView {
            position,
            store_tail: self.store_tail.load(Ordering::Relaxed).max(position),
            models,
        }
    }

    /// Prometheus text exposition.
    pub fn to_prometheus(&self) -> String {
        let view = self.checkpoint();
        let mut out = String::new();
        let counters = [
            (
                "simplepro_projector_events_applied_total",
                &self.events_applied,
            ),
            (
                "simplepro_projector_duplicates_skipped_total",
                &self.duplicates_skipped,
            ),
            ("simplepro_projector_gap_fills_total", &self.gap_fills),
            (
                "simplepro_projector_gap_fill_events_total",
                &self.gap_fill_events,
            ),
            (
                "simplepro_projector_replayed_from_bus_total",
                &self.replayed_from_bus,
            ),
            (
                "simplepro_projector_replayed_from_store_total",
                &self.replayed_from_store,
            ),
            ("simplepro_projector_dead_letters_total", &self.dead_letters),
            (
                "simplepro_projector_invalid_messages_total",
                &self.invalid_messages,
            ),
            (
                "simplepro_projector_batch_failures_total",
                &self.batch_failures,
            ),
            ("simplepro_projector_flushes_total", &self.flushes),
            ("simplepro_projector_docs_written_total", &self.docs_written),
        ];
        for (name, value) in counters {
            let _ = writeln!(
                out,
                "# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let total = self.flush_micros_total.load(Ordering::Relaxed) as f64 / 1e6;
        let last = self.flush_micros_last.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "# TYPE simplepro_projector_flush_seconds_total counter\n\
             simplepro_projector_flush_seconds_total {total}\n\
             # TYPE simplepro_projector_last_flush_seconds gauge\n\
             simplepro_projector_last_flush_seconds {last}"
        );
        let _ = writeln!(
            out,
            "# TYPE simplepro_projector_store_tail gauge\nsimplepro_projector_store_tail {}\n\
             # TYPE simplepro_projector_checkpoint gauge\nsimplepro_projector_checkpoint {}",
            view.store_tail, view.position
        );
        let _ = writeln!(out, "# TYPE simplepro_projector_model_checkpoint gauge");
        for (model, status) in &view.models {
            let _ = writeln!(
                out,
                "simplepro_projector_model_checkpoint{{model=\"{model}\",generation=\"{}\"}} {}",
                status.generation, status.position
            );
        }
        let _ = writeln!(out, "# TYPE simplepro_projector_model_lag gauge");
        for (model, status) in &view.models {
            let _ = writeln!(
                out,
                "simplepro_projector_model_lag{{model=\"{model}\"}} {}",
                view.store_tail.saturating_sub(status.position)
            );
        }
        out
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_is_the_lowest_model_position_and_lag_is_measured_from_the_tail() {
        let metrics = Metrics::default();
        metrics.set_model(
            "calendar",
            ModelStatus {
                generation: 2,
                position: 40,
            },
        );
        metrics.set_model(
            "dashboard",
            ModelStatus {
                generation: 1,
                position: 50,
            },
        );
        metrics.set_store_tail(55);
        assert_eq!(metrics.checkpoint().position, 40);
        let text = metrics.to_prometheus();
        assert!(text.contains("simplepro_projector_model_lag{model=\"calendar\"} 15"));
        assert!(text.contains(
            "simplepro_projector_model_checkpoint{model=\"calendar\",generation=\"2\"} 40"
        ));
    }
}
