//! Prometheus counters of the query API, rendered as text on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
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
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

/// Sizes read from the document cache when metrics are rendered.
pub struct CacheGauges {
    pub entries: u64,
    pub weighted_bytes: u64,
    pub max_bytes: u64,
}

impl Metrics {
    pub fn count_request(&self, route: &str, status: u16) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry((route.to_owned(), status)).or_default() += 1;
        }
    }

    pub fn render(&self, cache: &CacheGauges, position: u64) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let hits = load(&self.cache_hits);
        let misses = load(&self.cache_misses);
        let ratio = if hits + misses == 0 {
            0.0
        } else {
            hits as f64 / (hits + misses) as f64
        };
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "query_api_cache_hits_total",
            "counter",
            "Document reads answered from the cache.",
            hits.to_string(),
        );
        metric(
            "query_api_cache_misses_total",
            "counter",
            "Document reads that went to MongoDB.",
            misses.to_string(),
        );
        metric(
            "query_api_cache_hit_ratio",
            "gauge",
            "Hits over hits plus misses since start.",
            format!("{ratio:.4}"),
        );
        metric(
            "query_api_views_rendered_total",
            "counter",
            "Views and list pages encoded from their documents.",
            load(&self.views_rendered).to_string(),
        );
        metric(
            "query_api_views_reused_total",
            "counter",
            "Views and list pages answered from the cache of rendered answers.",
            load(&self.views_reused).to_string(),
        );
        metric(
            "query_api_cache_entries",
            "gauge",
            "Documents (and known absences) in the cache.",
            cache.entries.to_string(),
        );
        metric(
            "query_api_cache_weighted_size_bytes",
            "gauge",
            "Approximate bytes held by the cache (documents and rendered views).",
            cache.weighted_bytes.to_string(),
        );
        metric(
            "query_api_cache_max_bytes",
            "gauge",
            "Configured cache capacity in bytes.",
            cache.max_bytes.to_string(),
        );
        metric(
            "query_api_cache_invalidated_docs_total",
            "counter",
            "Cached documents dropped by change notices.",
            load(&self.invalidated_docs).to_string(),
        );
        metric(
            "query_api_cache_invalidated_models_total",
            "counter",
            "Whole models dropped from the cache (registry change or unannounced checkpoint move).",
            load(&self.invalidated_models).to_string(),
        );
        metric(
            "query_api_change_notices_total",
            "counter",
            "Change notices received from the projector.",
            load(&self.change_notices).to_string(),
        );
        metric(
            "query_api_change_notices_undecodable_total",
            "counter",
            "Change notices that could not be decoded (answered by dropping the whole cache).",
            load(&self.undecodable_notices).to_string(),
        );
        metric(
            "query_api_mongodb_reads_total",
            "counter",
            "Point reads sent to MongoDB.",
            load(&self.mongodb_reads).to_string(),
        );
        metric(
            "query_api_consistency_waits_total",
            "counter",
            "Requests that waited for min_position.",
            load(&self.consistency_waits).to_string(),
        );
        metric(
            "query_api_consistency_timeouts_total",
            "counter",
            "Requests answered 503 because min_position did not arrive in time.",
            load(&self.consistency_timeouts).to_string(),
        );
        metric(
            "query_api_read_model_position",
            "gauge",
            "Checkpoint position the service knows the read models have reached.",
            position.to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP query_api_requests_total HTTP requests by route and status.\n# TYPE query_api_requests_total counter"
        );
        if let Ok(requests) = self.requests.lock() {
            for ((route, status), count) in requests.iter() {
                let route = route.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(
                    out,
                    "query_api_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        out
    }
}
