//! Counters of the write path, readable in logs and on `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct StoreMetrics {
    appended_events: AtomicU64,
    sequenced_events: AtomicU64,
    published_events: AtomicU64,
    /// Outbox entries found at the relay's last pass: commits not yet acknowledged by JetStream.
    outbox_pending: AtomicU64,
    publish_failures: AtomicU64,
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

impl StoreMetrics {
    pub(crate) fn appended(&self, events: usize) {
        self.appended_events
            .fetch_add(events as u64, Ordering::Relaxed);
    }

    pub(crate) fn sequenced(&self, events: usize) {
        self.sequenced_events
            .fetch_add(events as u64, Ordering::Relaxed);
    }

    pub(crate) fn published(&self, events: usize) {
        self.published_events
            .fetch_add(events as u64, Ordering::Relaxed);
    }

    pub(crate) fn publish_failed(&self) {
        self.publish_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_outbox_pending(&self, entries: usize) {
        self.outbox_pending.store(entries as u64, Ordering::Relaxed);
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

impl StoreMetricsSnapshot {
    /// Prometheus text exposition of the counters.
    pub fn to_prometheus(&self) -> String {
        format!(
            "# TYPE simplepro_events_appended_total counter\nsimplepro_events_appended_total {}\n\
             # TYPE simplepro_events_sequenced_total counter\nsimplepro_events_sequenced_total {}\n\
             # TYPE simplepro_events_published_total counter\nsimplepro_events_published_total {}\n\
             # TYPE simplepro_outbox_pending gauge\nsimplepro_outbox_pending {}\n\
             # TYPE simplepro_publish_failures_total counter\nsimplepro_publish_failures_total {}\n",
            self.appended_events,
            self.sequenced_events,
            self.published_events,
            self.outbox_pending,
            self.publish_failures
        )
    }
}
