//! Measurements of the write path: counters readable in logs ([`StoreMetrics::snapshot`]) and,
//! once a service has called [`StoreMetrics::export_to`], the same counters with append and
//! publish latencies as `metrics` series of that service's recorder.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Unit};

use crate::store::docs::OutboxDoc;

#[derive(Debug, Default)]
pub struct StoreMetrics {
    appended_events: AtomicU64,
    sequenced_events: AtomicU64,
    published_events: AtomicU64,
    /// Outbox entries found at the relay's last pass: commits not yet acknowledged by JetStream.
    outbox_pending: AtomicU64,
    publish_failures: AtomicU64,
    exported: OnceLock<Exported>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreMetricsSnapshot {
    pub appended_events: u64,
    pub sequenced_events: u64,
    pub published_events: u64,
    pub outbox_pending: u64,
    pub publish_failures: u64,
}

/// The series names, for dashboards and the tests that check them.
pub mod names {
    pub const APPENDED: &str = "simplepro_events_appended_total";
    pub const SEQUENCED: &str = "simplepro_events_sequenced_total";
    pub const PUBLISHED: &str = "simplepro_events_published_total";
    pub const PUBLISH_FAILURES: &str = "simplepro_publish_failures_total";
    pub const OUTBOX_PENDING: &str = "simplepro_outbox_pending";
    pub const OUTBOX_OLDEST_AGE: &str = "simplepro_outbox_oldest_age_seconds";
    pub const APPEND_DURATION: &str = "simplepro_events_append_duration_seconds";
    pub const APPEND_GROUP: &str = "simplepro_events_append_group_size";
    pub const PUBLISH_DURATION: &str = "simplepro_events_publish_duration_seconds";
}

/// Handles registered on one service's recorder.
struct Exported {
    appended: Counter,
    sequenced: Counter,
    published: Counter,
    publish_failures: Counter,
    outbox_pending: Gauge,
    outbox_oldest_age: Gauge,
    append_duration: Histogram,
    append_group: Histogram,
    publish_duration: Histogram,
}

impl fmt::Debug for Exported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exported")
    }
}

impl Exported {
    fn register() -> Self {
        use metrics::{
            counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
        };
        describe_counter!(
            names::APPENDED,
            "Events appended to the store by this process."
        );
        describe_counter!(
            names::SEQUENCED,
            "Events given a global position by the relay."
        );
        describe_counter!(names::PUBLISHED, "Events acknowledged by JetStream.");
        describe_counter!(
            names::PUBLISH_FAILURES,
            "Relay publishes to JetStream that failed."
        );
        describe_gauge!(
            names::OUTBOX_PENDING,
            "Outbox entries found at the relay's last pass (at most one batch)."
        );
        describe_gauge!(
            names::OUTBOX_OLDEST_AGE,
            Unit::Seconds,
            "Age of the oldest outbox entry at the relay's last pass; 0 when empty."
        );
        describe_histogram!(
            names::APPEND_DURATION,
            Unit::Seconds,
            "Latency of EventStore::append, whatever its outcome."
        );
        describe_histogram!(names::APPEND_GROUP, "Events per successful append.");
        describe_histogram!(
            names::PUBLISH_DURATION,
            Unit::Seconds,
            "Latency of one relay publish to JetStream, acknowledgements included."
        );
        Exported {
            appended: counter!(names::APPENDED),
            sequenced: counter!(names::SEQUENCED),
            published: counter!(names::PUBLISHED),
            publish_failures: counter!(names::PUBLISH_FAILURES),
            outbox_pending: gauge!(names::OUTBOX_PENDING),
            outbox_oldest_age: gauge!(names::OUTBOX_OLDEST_AGE),
            append_duration: histogram!(names::APPEND_DURATION),
            append_group: histogram!(names::APPEND_GROUP),
            publish_duration: histogram!(names::PUBLISH_DURATION),
        }
    }
}

/// Records the latency of one append when dropped, so every outcome is measured.
pub(crate) struct AppendTimer<'a> {
    metrics: &'a StoreMetrics,
    started: Instant,
}

impl Drop for AppendTimer<'_> {
    fn drop(&mut self) {
        if let Some(exported) = self.metrics.exported.get() {
            exported
                .append_duration
                .record(self.started.elapsed().as_secs_f64());
        }
    }
}

impl StoreMetrics {
    /// Registers the series on `recorder` (a service's registry); only the first call counts.
    /// Counts from before it stay in [`snapshot`](Self::snapshot) only.
    pub fn export_to(&self, recorder: &dyn metrics::Recorder) {
        self.exported
            .get_or_init(|| metrics::with_local_recorder(recorder, Exported::register));
    }

    fn exported(&self, record: impl FnOnce(&Exported)) {
        if let Some(exported) = self.exported.get() {
            record(exported);
        }
    }

    pub(crate) fn time_append(&self) -> AppendTimer<'_> {
        AppendTimer {
            metrics: self,
            started: Instant::now(),
        }
    }

    pub(crate) fn appended(&self, events: usize) {
        self.appended_events
            .fetch_add(events as u64, Ordering::Relaxed);
        self.exported(|e| {
            e.appended.increment(events as u64);
            e.append_group.record(events as f64);
        });
    }

    pub(crate) fn sequenced(&self, events: usize) {
        self.sequenced_events
            .fetch_add(events as u64, Ordering::Relaxed);
        self.exported(|e| e.sequenced.increment(events as u64));
    }

    pub(crate) fn published(&self, events: usize, took: Duration) {
        self.published_events
            .fetch_add(events as u64, Ordering::Relaxed);
        self.exported(|e| {
            e.published.increment(events as u64);
            e.publish_duration.record(took.as_secs_f64());
        });
    }

    pub(crate) fn publish_failed(&self) {
        self.publish_failures.fetch_add(1, Ordering::Relaxed);
        self.exported(|e| e.publish_failures.increment(1));
    }

    /// The outbox entries one relay pass found.
    pub(crate) fn outbox_seen(&self, entries: &[OutboxDoc]) {
        self.outbox_pending
            .store(entries.len() as u64, Ordering::Relaxed);
        let now = chrono::Utc::now().timestamp_millis();
        let oldest = entries
            .iter()
            .map(|e| e.created_at.timestamp_millis())
            .min();
        let age = oldest.map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
        self.exported(|e| {
            e.outbox_pending.set(entries.len() as f64);
            e.outbox_oldest_age.set(age);
        });
    }

    pub fn snapshot(&self) -> StoreMetricsSnapshot {
        StoreMetricsSnapshot {
            appended_events: self.appended_events.load(Ordering::Relaxed),
            sequenced_events: self.sequenced_events.load(Ordering::Relaxed),
            published_events: self.published_events.load(Ordering::Relaxed),
            outbox_pending: self.outbox_pending.load(Ordering::Relaxed),
            publish_failures: self.publish_failures.load(Ordering::Relaxed),
        }
    }
}
