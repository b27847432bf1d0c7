//! Reading events from the event store, the record: the tail of the global log, and ranges of
//! positions for gap fills, catch-up and rebuilds.

use events::store::{EventBatches, ReadAllOptions};
use events::{EventEnvelope, EventStore, StoreError};

/// Ranges longer than this are read with one streaming cursor instead of point reads (on
/// FerretDB the cursor's `_id > after` filter is a scan, which only pays off for long ranges).
const POINT_READ_LIMIT: u64 = 20_000;
/// Point reads per call to `read_positions`.
const POINT_READ_CHUNK: usize = 500;

/// The highest sequenced position, found by galloping and bisecting with point reads from a
/// position known to exist (or 0). Positions are dense, so "exists" is monotone.
pub(crate) async fn store_tail(store: &EventStore, known: u64) -> Result<u64, StoreError> {
    let exists = |p: u64| async move { Ok::<_, StoreError>(store.event_at(p).await?.is_some()) };
    let mut low = known;
    if !exists(low + 1).await? {
        return Ok(low);
    }
    low += 1;
    let mut step = 1u64;
    let high = loop {
        let probe = low + step;
        if exists(probe).await? {
            low = probe;
            step = step.saturating_mul(2);
        } else {
            break probe;
        }
    };
    // `low` exists, `high` does not.
    let (mut low, mut high) = (low, high);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if exists(middle).await? {
            low = middle;
        } else {
            high = middle;
        }
    }
    Ok(low)
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
        Self::with_point_read_limit(store, after, up_to, chunk, POINT_READ_LIMIT)
    }

    /// Like [`RangeReader::new`], with the range length above which a cursor is used.
    pub(crate) fn with_point_read_limit(
        store: &'a EventStore,
        after: u64,
        up_to: u64,
        chunk: usize,
        point_read_limit: u64,
    ) -> Self {
        let cursor = (up_to.saturating_sub(after) > point_read_limit).then(|| {
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
                let count = (self.up_to - self.last).min(self.chunk.min(POINT_READ_CHUNK) as u64);
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
