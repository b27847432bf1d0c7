//! Reading events from the event store, the record: the tail of the global log, and ranges of
//! positions for gap fills, catch-up and rebuilds (long ones from JetStream's copy, checked
//! position by position, as far as it holds them; the rest by
//! [`EventStore::read_positions`], which reads positions in the way the backend serves
//! best).

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::DeliverPolicy;
use events::{Bus, EventEnvelope, EventStore, StoreError};
use futures::StreamExt;

/// The highest sequenced position as far as the relay's sequencer has recorded it (never below
/// `known`, a position known to exist). Probing the log for its tail would cost a scan of the
/// search of point reads; the sequencer's hint costs one small point read.
pub(crate) async fn store_tail(store: &EventStore, known: u64) -> Result<u64, StoreError> {
    Ok(events::relay::sequenced_tail(store).await?.max(known))
}

/// How long the stream may stay silent before the rest of a range is read from the store
/// (the relay publishes what the log holds a moment after the log holds it).
const BUS_IDLE: Duration = Duration::from_secs(1);

/// Where a [`RangeReader`] reads next (chosen by what is left of the range when there is
/// none yet, or when the stream stopped serving it).
enum Source {
    /// An ordered consumer on the JetStream stream.
    Bus(Box<Ordered>),
    /// Pages of positions from the store.
    Store,
}

/// Reads positions `after + 1 ..= up_to` in order, in chunks. A long range is read from the
/// JetStream stream as long as it serves the positions one after the other, and from the
/// store (the record) from the first position it lacks, a page at a time. Ends (without
/// error) where the log ends.
pub(crate) struct RangeReader<'a> {
    store: &'a EventStore,
    bus: Option<&'a Bus>,
    bus_min: u64,
    last: u64,
    up_to: u64,
    chunk: usize,
    source: Option<Source>,
    done: bool,
    read: ReadCounts,
}

/// Events a [`RangeReader`] served from each source.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReadCounts {
    pub(crate) bus: u64,
    pub(crate) store: u64,
}

impl<'a> RangeReader<'a> {
    /// Reads from the store only; see [`RangeReader::with_bus`].
    pub(crate) fn new(store: &'a EventStore, after: u64, up_to: u64, chunk: usize) -> Self {
        RangeReader {
            store,
            bus: None,
            bus_min: u64::MAX,
            last: after,
            up_to,
            chunk: chunk.max(1),
            source: None,
            done: up_to <= after,
            read: ReadCounts::default(),
        }
    }

    /// Reads the range from JetStream first when at least `min` events are left: FerretDB
    /// serves the log at 6,500-10,000 events/s at best (by page, `bench history` at M and
    /// L), while JetStream sends them from its files (M: 110,630 events in 1.6 s). Shorter
    /// ranges, like the gap fills of live projection whose events JetStream has not
    /// delivered, go straight to the store.
    pub(crate) fn with_bus(mut self, bus: Option<&'a Bus>, min: u64) -> Self {
        self.bus = bus;
        self.bus_min = min.max(1);
        self
    }

    /// Events served so far, by source.
    pub(crate) fn read(&self) -> ReadCounts {
        self.read
    }

    /// The next chunk, dense and following the previous one; `None` at the end.
    pub(crate) async fn next(&mut self) -> Option<Result<Vec<EventEnvelope>, StoreError>> {
        if self.done {
            return None;
        }
        let (result, from_bus) = self.read_chunk().await;
        let batch = match result.and_then(|batch| check_dense(self.last, batch)) {
            Ok(batch) => batch,
            Err(error) => {
                self.done = true;
                return Some(Err(error));
            }
        };
        self.advance_past(batch, from_bus)
    }

    /// Events following `last` from the current source (opened when there is none, changed
    /// to the store when the stream stops serving), and whether the stream served them.
    async fn read_chunk(&mut self) -> (Result<Vec<EventEnvelope>, StoreError>, bool) {
        loop {
            let source = match self.source.take() {
                Some(source) => source,
                None => {
                    let bus = self.bus.filter(|_| self.up_to - self.last >= self.bus_min);
                    open(bus, self.last).await
                }
            };
            let (last, up_to) = (self.last, self.up_to);
            match self.source.insert(source) {
                Source::Bus(messages) => {
                    let store = self.store.identity();
                    let served = from_bus(messages, store, last, up_to, self.chunk).await;
                    let reached = served.last().and_then(|e| e.position).unwrap_or(last);
                    if served.len() < self.chunk && reached < up_to {
                        // The stream stopped serving the range: the store serves the rest.
                        self.source = None;
                        self.bus = None;
                    }
                    if !served.is_empty() {
                        return (Ok(served), true);
                    }
                }
                Source::Store => {
                    let count = (up_to - last).min(self.chunk as u64);
                    return (self.store.read_positions(last, count as usize).await, false);
                }
            }
        }
    }

    /// Counts a dense `batch` to its source and moves past it; an empty one ends the range.
    fn advance_past(
        &mut self,
        batch: Vec<EventEnvelope>,
        from_bus: bool,
    ) -> Option<Result<Vec<EventEnvelope>, StoreError>> {
        match batch.last().and_then(|e| e.position) {
            None => {
                self.done = true;
                None
            }
            Some(end) => {
                let served = end - self.last;
                if from_bus {
                    self.read.bus += served;
                } else {
                    self.read.store += served;
                }
                self.last = end;
                self.done = end >= self.up_to;
                Some(Ok(batch))
            }
        }
    }
}

/// The source for the rest of a range after `after`: JetStream when given and it can serve
/// the range, else the store. Not a method: a `&RangeReader` held across its awaits would
/// make the reader's futures need `Sync`, which the stream's consumer is not.
async fn open(bus: Option<&Bus>, after: u64) -> Source {
    if let Some(bus) = bus {
        match open_bus(bus, after).await {
            Ok(messages) => return Source::Bus(Box::new(messages)),
            Err(error) => {
                tracing::debug!(%error, "JetStream cannot serve the range; reading the store")
            }
        }
    }
    Source::Store
}

/// An ordered consumer on the events stream from about where position `after + 1` is.
/// Stream sequences are not positions (a republish after the duplicate window is a second
/// message; a stream created after the store lacks the start), so the message at the guessed
/// sequence is read once to correct the guess; earlier positions it serves are skipped.
async fn open_bus(bus: &Bus, after: u64) -> Result<Ordered, String> {
    let mut stream = bus
        .jetstream()
        .get_stream(&bus.config().stream_name)
        .await
        .map_err(|e| e.to_string())?;
    let state = stream
        .info()
        .await
        .map_err(|e| e.to_string())?
        .state
        .clone();
    if state.messages == 0 {
        return Err("the stream is empty".into());
    }
    let wanted = after + 1;
    let guess = wanted.clamp(state.first_sequence, state.last_sequence);
    let start = match stream.get_raw_message(guess).await {
        Ok(message) => match position_of(&message.payload) {
            Some(found) if found > wanted => guess
                .saturating_sub(found - wanted)
                .max(state.first_sequence),
            _ => guess,
        },
        Err(_) => guess,
    };
    stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?
        .messages()
        .await
        .map_err(|e| e.to_string())
}

fn position_of(payload: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Positioned {
        position: Option<u64>,
    }
    serde_json::from_slice::<Positioned>(payload)
        .ok()
        .and_then(|p| p.position)
}

/// Up to `chunk` events following `last` (at most to `up_to`) from the stream, skipping
/// positions already served and messages that are not events of the store named `store`
/// (see [`events::bus::STORE_HEADER`]); fewer when the stream ends, stays silent for
/// [`BUS_IDLE`], breaks, or skips a position (a message JetStream lost, or one it holds
/// later).
async fn from_bus(
    messages: &mut Ordered,
    store: &str,
    mut last: u64,
    up_to: u64,
    chunk: usize,
) -> Vec<EventEnvelope> {
    let mut served = Vec::new();
    while served.len() < chunk && last < up_to {
        let message = match tokio::time::timeout(BUS_IDLE, messages.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => {
                tracing::debug!(%error, "JetStream stopped serving the range");
                break;
            }
            Ok(None) | Err(_) => break,
        };
        if !events::bus::is_from_store(message.headers.as_ref(), store) {
            continue;
        }
        let Ok(event) = serde_json::from_slice::<EventEnvelope>(&message.payload) else {
            break;
        };
        match event.position {
            Some(position) if position <= last => continue,
            Some(position) if position == last + 1 => {
                last = position;
                served.push(event);
            }
            _ => break,
        }
    }
    served
}

/// Refuses a range whose positions do not follow `after` one by one: applying it would skip an
/// event.
fn check_dense(after: u64, batch: Vec<EventEnvelope>) -> Result<Vec<EventEnvelope>, StoreError> {
    let dense = batch
        .iter()
        .zip(after + 1..)
        .all(|(event, expected)| event.position == Some(expected));
    if dense {
        Ok(batch)
    } else {
        Err(StoreError::Corrupt(
            "the event log is not dense where the projector reads it".into(),
        ))
    }
}
