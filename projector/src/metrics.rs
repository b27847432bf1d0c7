//! What the projector reports on `/metrics` and `/v1/checkpoint`, through the service's
//! `platform::metrics` registry.
//!
//! The projection loop counts into plain atomics and records histograms through handles
//! registered once; counters and gauges are handed to the registry when `/metrics` is
//! rendered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{Counter, Histogram};
use platform::metrics::MetricsRegistry;
use serde::Serialize;

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
    docs_written: AtomicU64,
    fenced_writes: AtomicU64,
    store_tail: AtomicU64,
    /// What the held models' document caches weigh, as of the last flush.
    doc_cache_bytes: AtomicU64,
    /// When the newest applied event was recorded (ms since the epoch; 0 before any).
    last_applied_recorded_ms: AtomicI64,
    /// A replay (catch-up or rebuild) in progress: the position it reached and its target.
    replay_position: AtomicU64,
    replay_target: AtomicU64,
    models: RwLock<BTreeMap<String, ModelStatus>>,
    histograms: Histograms,
    applied_by_model: BTreeMap<&'static str, Counter>,
    written_by_kind: WrittenByKind,
    registry: Arc<MetricsRegistry>,
}

struct Histograms {
    flush_duration: Histogram,
    flush_docs: Histogram,
    apply_duration: Histogram,
    visible_lag: Histogram,
}

/// Counter names with their help, in the order of [`Metrics::counter_values`].
const COUNTERS: [(&str, &str); 12] = [
    (
        "simplepro_projector_events_applied_total",
        "Events applied to every live read model.",
    ),
    (
        "simplepro_projector_duplicates_skipped_total",
        "Deliveries skipped because their position was already applied.",
    ),
    (
        "simplepro_projector_gap_fills_total",
        "Missing ranges read from the event store instead of JetStream.",
    ),
    (
        "simplepro_projector_gap_fill_events_total",
        "Events read from the event store to fill gaps.",
    ),
    (
        "simplepro_projector_replayed_from_bus_total",
        "Events of catch-ups read from JetStream's copy of the log.",
    ),
    (
        "simplepro_projector_replayed_from_store_total",
        "Events of catch-ups read from the event store.",
    ),
    (
        "simplepro_projector_dead_letters_total",
        "Events a model could not apply, written to the dead letters.",
    ),
    (
        "simplepro_projector_invalid_messages_total",
        "JetStream messages that were not events of the store, acknowledged and dropped.",
    ),
    (
        "simplepro_projector_batch_failures_total",
        "Batches that failed and made the projector reload from its checkpoints.",
    ),
    (
        "simplepro_projector_flushes_total",
        "Flushes of changed documents and checkpoints.",
    ),
    (
        "simplepro_projector_docs_written_total",
        "Read-model documents written.",
    ),
    (
        "simplepro_projector_fenced_writes_total",
        "Read-model documents not written because a later owner of the model stored a newer \
         version (this instance had lost its lease).",
    ),
];

const APPLIED_BY_MODEL: &str = "simplepro_projector_model_events_applied_total";
const WRITTEN_BY_KIND: &str = "simplepro_projector_model_docs_written_total";
const FLUSH_DURATION: &str = "simplepro_projector_flush_duration_seconds";
const FLUSH_DOCS: &str = "simplepro_projector_flush_docs_size";
const APPLY_DURATION: &str = "simplepro_projector_apply_duration_seconds";
const VISIBLE_LAG: &str = "simplepro_projector_visible_lag_seconds";

/// Gauge names with their help.
const GAUGES: [(&str, &str); 10] = [
    (
        "simplepro_projector_store_tail",
        "Last position of the event store the projector knows of.",
    ),
    (
        "simplepro_projector_checkpoint",
        "Position every live read model has reached.",
    ),
    (
        "simplepro_projector_lag_events",
        "Events in the store not yet applied to every live model.",
    ),
    (
        "simplepro_projector_lag_seconds",
        "Age of the newest applied event while events remain to apply; 0 when caught up.",
    ),
    (
        "simplepro_projector_model_checkpoint",
        "Position each live read model has persisted, by model and generation.",
    ),
    (
        "simplepro_projector_model_lag_events",
        "Events in the store not yet applied to the model (0 for a model another instance \
         projects).",
    ),
    (
        "simplepro_projector_model_held",
        "1 while this instance projects the model (holds its lease), else 0.",
    ),
    (
        "simplepro_projector_doc_cache_bytes",
        "Encoded size of the documents the held models keep cached between batches (bounded \
         by --cache-mib a model).",
    ),
    (
        "simplepro_projector_replay_position",
        "Position a catch-up or rebuild in progress has reached (0 when none runs).",
    ),
    (
        "simplepro_projector_replay_remaining_events",
        "Events a catch-up or rebuild in progress has still to read (0 when none runs).",
    ),
];

/// Names every series with its help (inside the registry).
fn describe_series() {
    for (name, help) in COUNTERS {
        metrics::describe_counter!(name, help);
    }
    for (name, help) in GAUGES {
        metrics::describe_gauge!(name, help);
    }
    metrics::describe_counter!(APPLIED_BY_MODEL, "Events applied, by read model.");
    metrics::describe_counter!(
        WRITTEN_BY_KIND,
        "Read-model documents written, by read model and kind of document (its collection)."
    );
    metrics::describe_histogram!(
        FLUSH_DURATION,
        metrics::Unit::Seconds,
        "Time from the first event applied after a flush to the end of the next flush."
    );
    metrics::describe_histogram!(FLUSH_DOCS, "Documents written per flush.");
    metrics::describe_histogram!(
        APPLY_DURATION,
        metrics::Unit::Seconds,
        "Time to apply one batch of events to every live model, in memory."
    );
    metrics::describe_histogram!(
        VISIBLE_LAG,
        metrics::Unit::Seconds,
        "Time from an event's recording to the flush that made it readable (live deliveries)."
    );
}

/// The handles the projection loop records through (inside the registry): the histograms,
/// the applied counter of each model and the written counter of each kind of document.
fn series_handles() -> (Histograms, BTreeMap<&'static str, Counter>, WrittenByKind) {
    let histograms = Histograms {
        flush_duration: metrics::histogram!(FLUSH_DURATION),
        flush_docs: metrics::histogram!(FLUSH_DOCS),
        apply_duration: metrics::histogram!(APPLY_DURATION),
        visible_lag: metrics::histogram!(VISIBLE_LAG),
    };
    let applied_by_model = read_models::Model::ALL
        .iter()
        .map(|model| {
            let name = model.as_str();
            (name, metrics::counter!(APPLIED_BY_MODEL, "model" => name))
        })
        .collect();
    let written_by_kind = read_models::Model::ALL
        .iter()
        .flat_map(|&model| {
            model.kinds().iter().map(move |&kind| {
                let counter = metrics::counter!(
                    WRITTEN_BY_KIND,
                    "model" => model.as_str(),
                    "kind" => kind
                );
                ((model, kind), counter)
            })
        })
        .collect();
    (histograms, applied_by_model, written_by_kind)
}

/// The written counter of each model's kinds of documents.
type WrittenByKind = BTreeMap<(read_models::Model, &'static str), Counter>;

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
    /// The projector's series, registered in `registry` (which serves `/metrics`).
    pub fn new(registry: Arc<MetricsRegistry>) -> Arc<Self> {
        let (histograms, applied_by_model, written_by_kind) = registry.register(|| {
            describe_series();
            series_handles()
        });
        let zero = || AtomicU64::new(0);
        let metrics = Arc::new(Metrics {
            events_applied: zero(),
            duplicates_skipped: zero(),
            gap_fills: zero(),
            gap_fill_events: zero(),
            replayed_from_bus: zero(),
            replayed_from_store: zero(),
            dead_letters: zero(),
            invalid_messages: zero(),
            batch_failures: zero(),
            flushes: zero(),
            docs_written: zero(),
            fenced_writes: zero(),
            store_tail: zero(),
            doc_cache_bytes: zero(),
            last_applied_recorded_ms: AtomicI64::new(0),
            replay_position: zero(),
            replay_target: zero(),
            models: RwLock::new(BTreeMap::new()),
            histograms,
            applied_by_model,
            written_by_kind,
            registry,
        });
        let collected = Arc::downgrade(&metrics);
        metrics.registry.on_render(move || {
            if let Some(metrics) = collected.upgrade() {
                metrics.collect();
            }
        });
        metrics
    }

    /// The registry these series live in.
    pub fn registry(&self) -> &Arc<MetricsRegistry> {
        &self.registry
    }

    /// The Prometheus text of every series of the service.
    pub fn render(&self) -> String {
        self.registry.render()
    }

    /// Sets the counters and gauges from the atomics (runs inside the registry).
    fn collect(&self) {
        for ((name, _), value) in COUNTERS.iter().zip(self.counter_values()) {
            metrics::counter!(*name).absolute(value);
        }
        let view = self.checkpoint();
        metrics::gauge!("simplepro_projector_store_tail").set(view.store_tail as f64);
        metrics::gauge!("simplepro_projector_checkpoint").set(view.position as f64);
        let behind = view.store_tail.saturating_sub(view.position);
        metrics::gauge!("simplepro_projector_lag_events").set(behind as f64);
        metrics::gauge!("simplepro_projector_lag_seconds").set(self.lag_seconds(behind));
        for (model, status) in &view.models {
            metrics::gauge!(
                "simplepro_projector_model_checkpoint",
                "model" => model.clone(),
                "generation" => status.generation.to_string()
            )
            .set(status.position as f64);
            metrics::gauge!("simplepro_projector_model_lag_events", "model" => model.clone())
                .set(view.store_tail.saturating_sub(status.position) as f64);
        }
        // A model given to another instance owes nothing here: its series would otherwise
        // keep the last values.
        for model in read_models::Model::ALL.map(read_models::Model::as_str) {
            let held = view.models.contains_key(model);
            let value = if held { 1.0 } else { 0.0 };
            metrics::gauge!("simplepro_projector_model_held", "model" => model).set(value);
            if !held {
                metrics::gauge!("simplepro_projector_model_lag_events", "model" => model).set(0.0);
            }
        }
        let (reached, target) = (
            self.replay_position.load(Ordering::Relaxed),
            self.replay_target.load(Ordering::Relaxed),
        );
        metrics::gauge!("simplepro_projector_replay_position").set(reached as f64);
        metrics::gauge!("simplepro_projector_doc_cache_bytes")
            .set(self.doc_cache_bytes.load(Ordering::Relaxed) as f64);
        metrics::gauge!("simplepro_projector_replay_remaining_events")
            .set(target.saturating_sub(reached) as f64);
    }

    fn counter_values(&self) -> [u64; 12] {
        [
            &self.events_applied,
            &self.duplicates_skipped,
            &self.gap_fills,
            &self.gap_fill_events,
            &self.replayed_from_bus,
            &self.replayed_from_store,
            &self.dead_letters,
            &self.invalid_messages,
            &self.batch_failures,
            &self.flushes,
            &self.docs_written,
            &self.fenced_writes,
        ]
        .map(|counter| counter.load(Ordering::Relaxed))
    }

    /// How old the newest applied event is while `behind` events remain to apply.
    fn lag_seconds(&self, behind: u64) -> f64 {
        let recorded = self.last_applied_recorded_ms.load(Ordering::Relaxed);
        if behind == 0 || recorded == 0 {
            return 0.0;
        }
        (Utc::now().timestamp_millis() - recorded).max(0) as f64 / 1000.0
    }

    /// `events` applied to every live model in `took`; the newest was recorded at `newest`.
    pub(crate) fn applied(&self, events: usize, took: Duration, newest: Option<DateTime<Utc>>) {
        add(&self.events_applied, events as u64);
        self.histograms.apply_duration.record(took.as_secs_f64());
        if let Some(recorded) = newest {
            self.last_applied_recorded_ms
                .fetch_max(recorded.timestamp_millis(), Ordering::Relaxed);
        }
    }

    /// `events` applied to `model` (a model behind the others applies more of a catch-up).
    pub(crate) fn applied_to(&self, model: &str, events: u64) {
        if let Some(counter) = self.applied_by_model.get(model) {
            counter.increment(events);
        }
    }

    /// Events made readable by a flush, as their recording times.
    pub(crate) fn visible(&self, recorded: &[DateTime<Utc>]) {
        let now = Utc::now();
        for at in recorded {
            let lag = (now - *at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
            self.histograms.visible_lag.record(lag);
        }
    }

    /// A replay is under way: it has reached `position` of `target` (both 0 when it ends).
    pub(crate) fn replay_progress(&self, position: u64, target: u64) {
        self.replay_position.store(position, Ordering::Relaxed);
        self.replay_target.store(target, Ordering::Relaxed);
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

    pub(crate) fn fenced(&self, docs: usize) {
        add(&self.fenced_writes, docs as u64);
    }

    /// A flush that wrote the documents of `collections` (a name per document) in `took`.
    pub(crate) fn flushed<'a>(
        &self,
        collections: impl ExactSizeIterator<Item = &'a str>,
        took: Duration,
    ) {
        let docs = collections.len();
        add(&self.flushes, 1);
        add(&self.docs_written, docs as u64);
        for name in collections {
            let counter = read_models::names::model_and_kind(name)
                .and_then(|(model, kind)| self.written_by_kind.get(&(model, kind)));
            if let Some(counter) = counter {
                counter.increment(1);
            }
        }
        self.histograms.flush_duration.record(took.as_secs_f64());
        self.histograms.flush_docs.record(docs as f64);
    }

    pub(crate) fn set_store_tail(&self, tail: u64) {
        self.store_tail.fetch_max(tail, Ordering::Relaxed);
    }

    pub(crate) fn set_doc_cache_bytes(&self, bytes: usize) {
        self.doc_cache_bytes.store(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_model(&self, model: &str, status: ModelStatus) {
        if let Ok(mut models) = self.models.write() {
            models.insert(model.to_owned(), status);
        }
    }

    /// Forgets a model this instance no longer projects.
    pub(crate) fn remove_model(&self, model: &str) {
        if let Ok(mut models) = self.models.write() {
            models.remove(model);
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
        let tail = self.store_tail.load(Ordering::Relaxed);
        // An instance that holds no model has nothing to catch up with.
        let position = models.values().map(|m| m.position).min().unwrap_or(tail);
        CheckpointView {
            position,
            store_tail: tail.max(position),
            models,
        }
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
        let metrics = Metrics::new(MetricsRegistry::new("projector"));
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
        let text = metrics.render();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("Prometheus text");
        let gauge = |name: &str, label: (&str, &str)| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
                .map(|s| match s.value {
                    prometheus_parse::Value::Gauge(v) => v,
                    _ => f64::NAN,
                })
        };
        assert_eq!(
            gauge(
                "simplepro_projector_model_lag_events",
                ("model", "calendar")
            ),
            Some(15.0)
        );
        assert_eq!(
            gauge("simplepro_projector_model_checkpoint", ("generation", "2")),
            Some(40.0)
        );
        assert_eq!(
            gauge("simplepro_projector_lag_events", ("service", "projector")),
            Some(15.0)
        );
        assert!(text.contains("# HELP simplepro_projector_lag_seconds "));
        assert_eq!(
            gauge("simplepro_projector_model_held", ("model", "calendar")),
            Some(1.0)
        );

        // Given to another instance: not held, and no lag of its own here.
        metrics.remove_model("calendar");
        let text = metrics.render();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("Prometheus text");
        let gauge = |name: &str, model: &str| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name && s.labels.get("model") == Some(model))
                .map(|s| match s.value {
                    prometheus_parse::Value::Gauge(v) => v,
                    _ => f64::NAN,
                })
        };
        assert_eq!(
            gauge("simplepro_projector_model_held", "calendar"),
            Some(0.0)
        );
        assert_eq!(
            gauge("simplepro_projector_model_lag_events", "calendar"),
            Some(0.0)
        );
        assert_eq!(
            gauge("simplepro_projector_model_held", "dashboard"),
            Some(1.0)
        );
        assert_eq!(metrics.checkpoint().position, 50);
    }
}
