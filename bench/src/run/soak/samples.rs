//! What the soak watches while the load runs: each service's resident memory, the command
//! API's outbox and the projector's lag, read from `/proc` and the services' `/metrics`; and,
//! beside the projector's own gauge, how far its checkpoint is behind the store's tail.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::measure::{memory, projection};
use crate::services::Service;

/// Outbox entries the relay found on its last pass (commits not yet in JetStream).
pub(super) const OUTBOX_PENDING: &str = events::metrics::names::OUTBOX_PENDING;
/// Age of the oldest of them, in seconds.
pub(super) const OUTBOX_OLDEST_AGE: &str = events::metrics::names::OUTBOX_OLDEST_AGE;
/// Events in the stream the projector has not applied yet.
pub(super) const PROJECTOR_LAG: &str = "simplepro_projector_lag_events";
/// What the command API's recent states weigh (bounded by `SIMPLEPRO_STATE_CACHE_MIB`).
pub(super) const COMMAND_STATE_CACHE: &str = "simplepro_command_api_state_cache_bytes";
/// What the projector's models keep cached between batches (bounded by `--cache-mib` a model).
pub(super) const PROJECTOR_DOC_CACHE: &str = "simplepro_projector_doc_cache_bytes";
/// What the query API's document cache weighs (bounded by `SIMPLEPRO_CACHE_MAX_BYTES`).
pub(super) const QUERY_CACHE: &str = "simplepro_query_api_cache_weighted_size_bytes";

const MIB: f64 = 1024.0 * 1024.0;

/// One look at the services, `seconds` after the load started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample {
    pub seconds: f64,
    /// Resident memory (VmRSS) by service name.
    pub rss_mib: BTreeMap<String, f64>,
    /// What each service's bounded cache holds, by service name, as its `/metrics` says:
    /// memory that grows until the cache is full, which is not a leak.
    #[serde(default)]
    pub cache_mib: BTreeMap<String, f64>,
    /// `None` where `/metrics` did not answer or lacked the series.
    pub outbox_pending: Option<f64>,
    pub outbox_oldest_age_seconds: Option<f64>,
    pub projector_lag_events: Option<f64>,
    /// The store's tail (the sequencer's hint) minus the projector's checkpoint, read from
    /// outside: the gauge counts from the tail the projector last polled, which it refreshes
    /// on an interval.
    #[serde(default)]
    pub projector_behind_store_events: Option<f64>,
}

/// The value of a series in a Prometheus text exposition, summed over its label sets.
pub(super) fn gauge(exposition: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            // `name{labels} value` or `name value`; not a longer name that starts with this one.
            let rest = match rest.chars().next()? {
                '{' => &rest[rest.find('}')? + 1..],
                ' ' => rest,
                _ => return None,
            };
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The services to watch and where their metrics are.
pub(super) struct Watched<'a> {
    pub services: Vec<&'a Service>,
    pub command: &'a Service,
    pub projector: &'a Service,
    pub query: &'a Service,
    pub store: &'a events::EventStore,
    pub client: reqwest::Client,
    pub token: &'a str,
}

impl Watched<'_> {
    /// A sample at `interval` from now on, and one at `duration`, the end of the load.
    pub(super) async fn every(&self, interval: Duration, duration: Duration) -> Vec<Sample> {
        let started = Instant::now();
        let mut samples = Vec::new();
        let mut next = Duration::ZERO;
        loop {
            tokio::time::sleep_until((started + next).into()).await;
            samples.push(self.sample(next).await);
            if next >= duration {
                return samples;
            }
            next = (next + interval).min(duration);
        }
    }

    async fn sample(&self, at: Duration) -> Sample {
        let command = self.metrics(self.command).await;
        let projector = self.metrics(self.projector).await;
        let query = self.metrics(self.query).await;
        let cache_mib = [
            (self.command, gauge(&command, COMMAND_STATE_CACHE)),
            (self.projector, gauge(&projector, PROJECTOR_DOC_CACHE)),
            (self.query, gauge(&query, QUERY_CACHE)),
        ]
        .into_iter()
        .filter_map(|(service, bytes)| Some((service.name.clone(), bytes? / MIB)))
        .collect();
        let rss_mib = memory::sample(&self.services)
            .into_iter()
            .map(|rss| (rss.service, rss.rss_mib))
            .collect();
        Sample {
            seconds: at.as_secs_f64(),
            rss_mib,
            cache_mib,
            outbox_pending: gauge(&command, OUTBOX_PENDING),
            outbox_oldest_age_seconds: gauge(&command, OUTBOX_OLDEST_AGE),
            projector_lag_events: gauge(&projector, PROJECTOR_LAG),
            projector_behind_store_events: self.behind_store().await,
        }
    }

    async fn behind_store(&self) -> Option<f64> {
        // The checkpoint first: read after the tail, it could pass it.
        let projector = self.projector.url();
        let checkpoint = projection::checkpoint(&self.client, &projector, self.token).await;
        let tail = events::relay::sequenced_tail(self.store).await;
        match (checkpoint, tail) {
            (Ok(checkpoint), Ok(tail)) => Some(tail.saturating_sub(checkpoint) as f64),
            _ => None,
        }
    }

    /// The service's `/metrics` page; empty when it does not answer (its series are then
    /// missing from the sample, not zero).
    async fn metrics(&self, service: &Service) -> String {
        let page = async {
            self.client
                .get(format!("{}/metrics", service.url()))
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        };
        page.await.unwrap_or_else(|error| {
            tracing::warn!(service = %service.name, %error, "metrics not read");
            String::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "\
# HELP simplepro_outbox_pending Outbox entries found at the relay's last pass.
# TYPE simplepro_outbox_pending gauge
simplepro_outbox_pending 12
simplepro_outbox_pending_total 99
simplepro_outbox_oldest_age_seconds{service=\"command-api\"} 0.25
simplepro_projector_lag_events{service=\"projector\",model=\"a\"} 3
simplepro_projector_lag_events{service=\"projector\",model=\"b\"} 4 1700000000000
";

    #[test]
    fn a_gauge_is_read_with_or_without_labels_and_summed_over_them() {
        assert_eq!(gauge(PAGE, OUTBOX_PENDING), Some(12.0));
        assert_eq!(gauge(PAGE, OUTBOX_OLDEST_AGE), Some(0.25));
        assert_eq!(gauge(PAGE, PROJECTOR_LAG), Some(7.0));
    }

    #[test]
    fn a_missing_gauge_is_none_not_zero() {
        assert_eq!(gauge(PAGE, "simplepro_outbox"), None);
        assert_eq!(gauge("", OUTBOX_PENDING), None);
    }
}
