//! The JetStream side: one stream, a subject per aggregate, every event published with its
//! event id as `Nats-Msg-Id` so JetStream drops republished duplicates inside its window.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;

use crate::envelope::EventEnvelope;

/// The W3C trace-context header an event's message carries when its command had a trace.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The header naming the event store an event's message comes from (its
/// [`crate::EventStore::identity`]). The stream outlives a store whose database is dropped and
/// filled again, and the new store's positions repeat the old one's: a consumer tells the two
/// apart by this header alone.
pub const STORE_HEADER: &str = "SimplePro-Store";

/// Whether a message's headers name `store` as the store its event comes from. A message
/// without the header (published by hand, or before the header existed) is not known to be:
/// a consumer reads such events from the store instead.
pub fn is_from_store(headers: Option<&HeaderMap>, store: &str) -> bool {
    headers
        .and_then(|headers| headers.get(STORE_HEADER))
        .is_some_and(|value| value.as_str() == store)
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
    #[error("JetStream stream setup failed: {0}")]
    Stream(String),
    #[error("publish failed: {0}")]
    Publish(String),
    #[error("cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Names of the JetStream stream and subjects; configurable so that tests and several
/// deployments can share one NATS server.
#[derive(Debug, Clone)]
pub struct BusConfig {
    pub stream_name: String,
    /// Events go to `<subject_prefix>.<aggregate_type>.<aggregate_id>`.
    pub subject_prefix: String,
    pub duplicate_window: Duration,
    /// Replicas of the stream (1 locally, 3 on a NATS cluster).
    pub replicas: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            stream_name: "SIMPLEPRO_EVENTS".into(),
            subject_prefix: "simplepro.events".into(),
            duplicate_window: Duration::from_secs(120),
            replicas: 1,
        }
    }
}

/// Connects to NATS without failing when the server is not up yet: the client keeps trying in
/// the background, so appends (which only need MongoDB) work while NATS is down.
/// Connects to the NATS servers `url` lists, comma-separated (`nats://n1:4222,nats://n2:4222`):
/// async-nats reads one string as one address, so the list is split here.
pub async fn connect_nats(url: &str, name: &str) -> Result<async_nats::Client, BusError> {
    let servers = url
        .split(',')
        .map(str::trim)
        .filter(|server| !server.is_empty())
        .map(|server| {
            server
                .parse::<async_nats::ServerAddr>()
                .map_err(|e| BusError::Connect(format!("NATS server `{server}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .connect(servers)
        .await
        .map_err(|e| BusError::Connect(e.to_string()))
}

#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    config: BusConfig,
}

impl Bus {
    pub fn new(client: async_nats::Client, config: BusConfig) -> Self {
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(Duration::from_secs(3));
        Bus {
            client,
            jetstream,
            config,
        }
    }

    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Creates the stream if it does not exist (file storage, the duplicate window).
    pub async fn ensure_stream(&self) -> Result<stream::Stream, BusError> {
        self.jetstream
            .get_or_create_stream(stream::Config {
                name: self.config.stream_name.clone(),
                subjects: vec![format!("{}.>", self.config.subject_prefix)],
                storage: stream::StorageType::File,
                duplicate_window: self.config.duplicate_window,
                num_replicas: self.config.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::Stream(e.to_string()))
    }

    pub fn subject(&self, aggregate_type: &str, aggregate_id: &str) -> String {
        format!(
            "{}.{aggregate_type}.{aggregate_id}",
            self.config.subject_prefix
        )
    }

    /// Publishes events of the store named `store` ([`STORE_HEADER`]) in the given order and
    /// waits for every acknowledgement. The publishes are pipelined on one connection, so
    /// JetStream stores them in this order.
    pub async fn publish(&self, store: &str, envelopes: &[EventEnvelope]) -> Result<(), BusError> {
        let mut acks = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", envelope.event_id.to_string().as_str());
            headers.insert(STORE_HEADER, store);
            // The command's trace travels with the message too, for consumers that read
            // headers rather than the envelope (tracing-aware NATS tools, other services).
            if let Some(traceparent) = envelope.traceparent.as_deref() {
                headers.insert(TRACEPARENT_HEADER, traceparent);
            }
            let payload = serde_json::to_vec(envelope)?;
            let ack = self
                .jetstream
                .publish_with_headers(
                    self.subject(&envelope.aggregate_type, &envelope.aggregate_id),
                    headers,
                    payload.into(),
                )
                .await
                .map_err(|e| BusError::Publish(e.to_string()))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(|e| BusError::Publish(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_of_a_store_only_when_its_header_names_that_store() {
        let mut ours = HeaderMap::new();
        ours.insert(STORE_HEADER, "store-a");
        assert!(is_from_store(Some(&ours), "store-a"));
        assert!(!is_from_store(Some(&ours), "store-b"));
        let mut unnamed = HeaderMap::new();
        unnamed.insert("Nats-Msg-Id", "some-id");
        assert!(!is_from_store(Some(&unnamed), "store-a"));
        assert!(!is_from_store(None, "store-a"));
    }
}
