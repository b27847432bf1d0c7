//! The durable JetStream pull consumer and the deliveries it yields.
//!
//! Each projector instance has its own consumer (named after the instance): every instance
//! sees every event and applies it to the models it holds. The consumer is durable (it
//! survives restarts; what was not acknowledged comes again), is deleted by the server once
//! its instance has not pulled for `inactive` (an instance gone for good), acknowledges
//! explicitly (only after the effects are written), bounds what is out at once
//! (`max_ack_pending`) and backs off between redeliveries. It is a fast path only: the event
//! store is the record, and anything JetStream loses is read from there.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{Config as PullConfig, Stream as PullStream};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::message::Acker;
use events::{Bus, EventEnvelope};
use futures::StreamExt;

/// One message from JetStream: the event it carries (if it decodes) and its acknowledgement.
pub(crate) struct Delivery {
    pub(crate) event: Option<EventEnvelope>,
    pub(crate) acker: Acker,
}

impl Delivery {
    pub(crate) fn position(&self) -> Option<u64> {
        self.event.as_ref().and_then(|e| e.position)
    }
}

/// Acknowledges a message; a lost ack only means a redelivery, which is skipped as a duplicate.
pub(crate) async fn ack(acker: &Acker) {
    if let Err(error) = acker.ack().await {
        tracing::debug!(%error, "acknowledgement not sent");
    }
}

/// Creates (or finds) the durable consumer on the events stream.
pub(crate) async fn durable(
    bus: &Bus,
    durable_name: &str,
    max_ack_pending: i64,
    inactive: Duration,
) -> Result<PullConsumer, String> {
    let stream = bus.ensure_stream().await.map_err(|e| e.to_string())?;
    stream
        .get_or_create_consumer(
            durable_name,
            PullConfig {
                durable_name: Some(durable_name.to_owned()),
                description: Some("SimplePro read-model projector".into()),
                // From the stream's start: what the catch-up at start already applied comes as
                // duplicates (acknowledged and skipped), and nothing published between that
                // catch-up and the consumer's creation waits for a gap fill.
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                // Redeliveries of a message the projector holds too long back off; the store
                // fills any gap long before the last of them.
                backoff: vec![
                    Duration::from_secs(30),
                    Duration::from_secs(60),
                    Duration::from_secs(120),
                ],
                max_deliver: 10,
                max_ack_pending: max_ack_pending.max(1),
                inactive_threshold: inactive,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())
}

/// Continuous pulls of up to `batch` messages at a time.
pub(crate) async fn messages(consumer: &PullConsumer, batch: usize) -> Result<PullStream, String> {
    consumer
        .stream()
        .max_messages_per_batch(batch.max(1))
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| e.to_string())
}

/// Waits for the first message (up to `idle`), then collects more until `max` or `wait`
/// after the first. Returns `Err` when the stream broke and must be re-created. Only
/// messages of the store named `store` carry an event (see [`decode`]).
pub(crate) async fn next_batch(
    stream: &mut PullStream,
    store: &str,
    max: usize,
    wait: Duration,
    idle: Duration,
) -> Result<Vec<Delivery>, String> {
    let mut deliveries = Vec::new();
    let first = match tokio::time::timeout(idle, stream.next()).await {
        Err(_) => return Ok(deliveries),
        Ok(None) => return Err("the JetStream message stream ended".into()),
        Ok(Some(Err(error))) => return Err(error.to_string()),
        Ok(Some(Ok(message))) => message,
    };
    deliveries.push(decode(first, store));
    let deadline = tokio::time::Instant::now() + wait;
    while deliveries.len() < max {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => break,
            Ok(None) => break,
            Ok(Some(Err(error))) => {
                tracing::warn!(%error, "JetStream pull failed");
                break;
            }
            Ok(Some(Ok(message))) => deliveries.push(decode(message, store)),
        }
    }
    Ok(deliveries)
}

/// The event a message carries, if it is one of the store named `store`: the stream may
/// also hold events of a store whose database was dropped and filled again, at the same
/// positions as this store's, and messages published by hand. Either is acknowledged and
/// dropped; the store serves what it holds at those positions.
fn decode(message: async_nats::jetstream::Message, store: &str) -> Delivery {
    let (message, acker) = message.split();
    if !events::bus::is_from_store(message.headers.as_ref(), store) {
        tracing::debug!(subject = %message.subject, "message of another event store, or of none, on the events stream");
        return Delivery { event: None, acker };
    }
    let event = match serde_json::from_slice::<EventEnvelope>(&message.payload) {
        Ok(event) if event.position.is_some() => Some(event),
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(subject = %message.subject, %error, "undecodable message on the events stream");
            None
        }
    };
    Delivery { event, acker }
}
