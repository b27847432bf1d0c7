//! Reading events from the event store, the record: the tail of the global log, and ranges of
//! positions for gap fills, catch-up and rebuilds.

use events::store::{EventBatches, ReadAllOptions};
use events::{EventEnvelope, EventStore, StoreError};

/// Ranges longer than this are read with one streaming cursor instead of point reads. On
/// FerretDB both scan the whole log (a point read in SQL, the cursor's `_id > after` filter in
/// FerretDB itself, which costs about two point reads), so only a few point reads pay off; on
/// MongoDB either is an index walk.
const POINT_READ_LIMIT: u64 = 8;

/// The highest sequenced position as far as the relay's sequencer has recorded it (never below
/// `known`, a position known to exist). Probing the log for its tail would cost a scan of the
/// whole log per probe on FerretDB; the sequencer's hint costs one small point read.
pub(crate) async fn store_tail(store: &EventStore, known: u64) -> Result<u64, StoreError> {
    Ok(events::relay::sequenced_tail(store).await?.max(known))
}

/// Reads positions `after + 1 ..= up_to` in order, in chunks: point reads for short ranges,
/// one streaming cursor for long ones. Ends (without error) where the log ends.
pub(crate) struct RangeReader<'a> {
    store: &'a EventStore,
    last: u64,
    up_to: u64,
    chunk: usize,
    cursor: Option<EventBatches>,
    done: bool,
}

impl<'a> RangeReader<'a> {
    pub(crate) fn new(store: &'a EventStore, after: u64, up_to: u64, chunk: usize) -> Self {
        let cursor = (up_to.saturating_sub(after) > POINT_READ_LIMIT).then(|| {
            store.read_all(ReadAllOptions {
                after_position: after,
                batch_size: chunk.max(1),
            })
        });
        RangeReader {
            store,
            last: after,
            up_to,
            chunk: chunk.max(1),
            cursor,
            done: up_to <= after,
        }
    }

    /// The next chunk, dense and following the previous one; `None` at the end.
    pub(crate) async fn next(&mut self) -> Option<Result<Vec<EventEnvelope>, StoreError>> {
        if self.done {
            return None;
        }
        let result = match &mut self.cursor {
            Some(cursor) => loop {
                match cursor.next().await {
                    None => break Ok(Vec::new()),
                    Some(Err(error)) => break Err(error),
                    Some(Ok(mut batch)) => {
                        let (last, up_to) = (self.last, self.up_to);
                        batch.retain(|e| e.position.is_some_and(|p| p > last && p <= up_to));
                        if !batch.is_empty() {
                            break Ok(batch);
                        }
                    }
                }
            },
            None => {
                let count = (self.up_to - self.last).min(self.chunk as u64);
                self.store.read_positions(self.last, count as usize).await
            }
        };
        let batch = match result.and_then(|batch| check_dense(self.last, batch)) {
            Ok(batch) => batch,
            Err(error) => {
                self.done = true;
                return Some(Err(error));
            }
        };
        match batch.last().and_then(|e| e.position) {
            None => {
                self.done = true;
                None
            }
            Some(end) => {
                self.last = end;
                self.done = end >= self.up_to;
                Some(Ok(batch))
            }
        }
    }
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
