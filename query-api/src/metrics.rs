//! The query API's series on `/metrics`, through the service's `platform::metrics` registry.
//!
//! The read path counts into plain atomics (a relaxed add is all a cache hit costs); the
//! counters are handed to the registry when `/metrics` is rendered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use platform::metrics::MetricsRegistry;

pub struct Metrics {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Misses that joined a load another request had already started.
    pub coalesced_loads: AtomicU64,
    /// Documents dropped by the cache for its size or their age (not by invalidation).
    pub evictions: AtomicU64,
    /// Views encoded from their documents, and views answered from the rendered-view cache.
    pub views_rendered: AtomicU64,
    pub views_reused: AtomicU64,
    /// Documents dropped because a change notice named them.
    pub invalidated_docs: AtomicU64,
    /// Whole-model or whole-cache drops (registry change, checkpoint moved without a notice).
    pub invalidated_models: AtomicU64,
    pub change_notices: AtomicU64,
    pub undecodable_notices: AtomicU64,
    pub consistency_waits: AtomicU64,
    pub consistency_timeouts: AtomicU64,
    pub mongodb_reads: AtomicU64,
    /// Server-sent event messages sent, streams refused (429), and announcements a slow
    /// stream skipped.
    pub live_updates: AtomicU64,
    pub live_refused: AtomicU64,
    pub live_lagged: AtomicU64,
    registry: Arc<MetricsRegistry>,
}

/// Sizes read from the document cache when metrics are rendered.
pub struct CacheGauges {
    pub entries: u64,
    pub weighted_bytes: u64,
    pub max_bytes: u64,
}

/// Counter names with their help, in the order of [`Metrics::counters`].
const COUNTERS: [(&str, &str); 16] = [
    (
        "simplepro_query_api_cache_hits_total",
        "Document reads answered from the cache.",
    ),
    (
        "simplepro_query_api_cache_misses_total",
        "Document reads that went to MongoDB.",
    ),
    (
        "simplepro_query_api_cache_coalesced_loads_total",
        "Document misses that waited for a load another request had started.",
    ),
    (
        "simplepro_query_api_cache_evictions_total",
        "Documents the cache dropped for its capacity or their time to live.",
    ),
    (
        "simplepro_query_api_views_rendered_total",
        "Views and list pages encoded from their documents.",
    ),
    (
        "simplepro_query_api_views_reused_total",
        "Views and list pages answered from the cache of rendered answers.",
    ),
    (
        "simplepro_query_api_cache_invalidated_docs_total",
        "Cached documents dropped by change notices.",
    ),
    (
        "simplepro_query_api_cache_invalidated_models_total",
        "Whole models dropped from the cache (registry change or unannounced checkpoint move).",
    ),
    (
        "simplepro_query_api_change_notices_total",
        "Change notices received from the projector.",
    ),
    (
        "simplepro_query_api_change_notices_undecodable_total",
        "Change notices that could not be decoded (answered by dropping the whole cache).",
    ),
    (
        "simplepro_query_api_mongodb_reads_total",
        "Point reads sent to MongoDB.",
    ),
    (
        "simplepro_query_api_consistency_waits_total",
        "Requests that waited for min_position.",
    ),
    (
        "simplepro_query_api_consistency_timeouts_total",
        "Requests answered 503 because min_position did not arrive in time.",
    ),
    (
        "simplepro_query_api_live_updates_total",
        "Server-sent event messages sent (a view that changed).",
    ),
    (
        "simplepro_query_api_live_refused_total",
        "Server-sent event streams refused with 429 (per-user or overall limit).",
    ),
    (
        "simplepro_query_api_live_lagged_total",
        "Change announcements slow streams skipped (they sent the latest view instead).",
    ),
];

/// Gauge names with their help, in the order of the values [`Metrics::render`] sets.
const GAUGES: [(&str, &str); 6] = [
    (
        "simplepro_query_api_cache_hit_ratio",
        "Hits over hits plus misses since start.",
    ),
    (
        "simplepro_query_api_cache_entries",
        "Documents (and known absences) in the cache.",
    ),
    (
        "simplepro_query_api_cache_weighted_size_bytes",
        "Approximate bytes held by the cache (documents and rendered views).",
    ),
    (
        "simplepro_query_api_cache_max_bytes",
        "Configured cache capacity in bytes.",
    ),
    (
        "simplepro_query_api_read_model_position",
        "Checkpoint position the service knows the read models have reached.",
    ),
    (
        "simplepro_query_api_live_streams",
        "Server-sent event streams open now.",
    ),
];

impl Default for Metrics {
    fn default() -> Self {
        let registry = MetricsRegistry::new("query-api");
        registry.register(|| {
            for (name, help) in COUNTERS {
                metrics::describe_counter!(name, help);
            }
            for (name, help) in GAUGES {
                metrics::describe_gauge!(name, help);
            }
        });
        let zero = || AtomicU64::new(0);
        Metrics {
            cache_hits: zero(),
            cache_misses: zero(),
            coalesced_loads: zero(),
            evictions: zero(),
            views_rendered: zero(),
            views_reused: zero(),
            invalidated_docs: zero(),
            invalidated_models: zero(),
            change_notices: zero(),
            undecodable_notices: zero(),
            consistency_waits: zero(),
            consistency_timeouts: zero(),
            mongodb_reads: zero(),
            live_updates: zero(),
            live_refused: zero(),
            live_lagged: zero(),
            registry,
        }
    }
}

impl Metrics {
    /// The registry of this instance (for the request-latency layer).
    pub fn registry(&self) -> Arc<MetricsRegistry> {
        self.registry.clone()
    }

    fn counters(&self) -> [&AtomicU64; 16] {
        [
            &self.cache_hits,
            &self.cache_misses,
            &self.coalesced_loads,
            &self.evictions,
            &self.views_rendered,
            &self.views_reused,
            &self.invalidated_docs,
            &self.invalidated_models,
            &self.change_notices,
            &self.undecodable_notices,
            &self.mongodb_reads,
            &self.consistency_waits,
            &self.consistency_timeouts,
            &self.live_updates,
            &self.live_refused,
            &self.live_lagged,
        ]
    }

    /// The Prometheus text of every series, with the cache's sizes, the known position and
    /// the streams open.
    pub fn render(&self, cache: &CacheGauges, position: u64, live_streams: usize) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (hits, misses) = (load(&self.cache_hits), load(&self.cache_misses));
        let ratio = if hits + misses == 0 {
            0.0
        } else {
            hits as f64 / (hits + misses) as f64
        };
        let gauges = [
            ratio,
            cache.entries as f64,
            cache.weighted_bytes as f64,
            cache.max_bytes as f64,
            position as f64,
            live_streams as f64,
        ];
        self.registry.register(|| {
            for ((name, _), value) in COUNTERS.iter().zip(self.counters()) {
                metrics::counter!(*name).absolute(load(value));
            }
            for ((name, _), value) in GAUGES.iter().zip(gauges) {
                metrics::gauge!(*name).set(value);
            }
        });
        self.registry.render()
    }
}
