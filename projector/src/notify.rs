//! Change notices to the query services (core NATS, so they may be lost; the query services
//! also poll the checkpoints).

use serde::Serialize;

/// Documents per notice; a large batch is announced in several notices so each stays far below
/// the NATS payload limit.
const DOCS_PER_NOTICE: usize = 2_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ChangedDoc {
    pub(crate) collection: String,
    pub(crate) id: String,
}

#[derive(Debug, Serialize)]
struct ChangeNotice<'a> {
    position: u64,
    /// The models that reached `position` (those the announcing instance writes).
    models: &'a [&'a str],
    docs: &'a [ChangedDoc],
    registry: bool,
    /// The traces of the commands whose events the flush made visible (at most
    /// [`TRACES_PER_NOTICE`]), so the readers' invalidation joins them.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    traceparents: &'a [String],
}

/// Where change notices go: the NATS connection and the subject the query APIs listen on.
pub(crate) struct NoticeChannel {
    pub(crate) nats: async_nats::Client,
    pub(crate) subject: String,
}

/// Traces named per notice: enough to follow any command of a live batch, bounded for a
/// catch-up that flushes thousands of events at once.
pub(crate) const TRACES_PER_NOTICE: usize = 64;

/// Publishes the changed documents and the new checkpoint of `models`. Failures are logged
/// only: the readers' checkpoint polling is the safety net for lost notices.
pub(crate) async fn publish(
    client: &async_nats::Client,
    subject: &str,
    position: u64,
    models: &[&str],
    docs: &[ChangedDoc],
    registry: bool,
    traceparents: &[String],
) {
    let mut chunks: Vec<&[ChangedDoc]> = docs.chunks(DOCS_PER_NOTICE).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for chunk in chunks {
        let notice = ChangeNotice {
            position,
            models,
            docs: chunk,
            registry,
            traceparents: &traceparents[..traceparents.len().min(TRACES_PER_NOTICE)],
        };
        let payload = match serde_json::to_vec(&notice) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(%error, "change notice not encoded");
                return;
            }
        };
        if let Err(error) = client.publish(subject.to_owned(), payload.into()).await {
            tracing::warn!(%error, "change notice not published");
            return;
        }
    }
}
