//! The state each stream was left in by this process's last append to it, so that the next
//! command to the stream decides without reading the store (on FerretDB every point read
//! scans a partition). Like the head hint it may be behind: another process may have appended
//! since. The same guard makes that harmless: an append from a stale head collides with the
//! next commit's `_id`, and an answer without an append is given only from a current load
//! (see `execute`). Bounded by the encoded size of the states it holds.

use std::sync::Arc;

use domain::Aggregate;
use events::store::StreamHead;
use events::StreamId;
use moka::future::Cache;

/// Per entry, besides the encoded state: the key (a stream name, about 48 bytes on the
/// heap), the head (its stream's two names and its commit id, about 130), the `Arc`'d entry
/// itself (about 130) and the cache's own bookkeeping (hash slot, queue nodes: about 150).
/// An estimate from the types' sizes and the allocator's rounding. With 192 here and the
/// encoding's spare capacity kept, the soak measured about twice the weight in resident
/// memory (BENCHMARKS.md, "Soak").
const ENTRY_OVERHEAD: usize = 512;

struct Recent {
    head: StreamHead,
    schema: u32,
    /// The state as JSON, exactly as long as it is: its length is what the entry weighs,
    /// where a `Vec` grown while encoding may hold up to twice that.
    state: Box<[u8]>,
}

#[derive(Clone)]
pub(crate) struct RecentStates {
    /// `None` when no memory is given to it.
    cache: Option<Cache<String, Arc<Recent>>>,
}

impl RecentStates {
    /// Holds at most about `max_bytes` of states; 0 holds none.
    pub(crate) fn new(max_bytes: u64) -> Self {
        let cache = (max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &String, recent: &Arc<Recent>| {
                    u32::try_from(key.len() + recent.state.len() + ENTRY_OVERHEAD)
                        .unwrap_or(u32::MAX)
                })
                .build()
        });
        RecentStates { cache }
    }

    /// What the states held weigh now, in bytes: at most the bound given to [`Self::new`].
    pub(crate) async fn weighted_bytes(&self) -> u64 {
        let Some(cache) = &self.cache else {
            return 0;
        };
        // The cache counts inserts and evictions in its housekeeping, which runs now and then.
        cache.run_pending_tasks().await;
        cache.weighted_size()
    }

    /// The state and head this process last appended for `stream`, when it is of `A`'s
    /// current snapshot schema and still decodes.
    pub(crate) async fn get<A: Aggregate>(
        &self,
        stream: &StreamId,
    ) -> Option<(A::State, StreamHead)> {
        let cache = self.cache.as_ref()?;
        let key = stream.to_string();
        let recent = cache.get(&key).await?;
        if recent.schema == A::SNAPSHOT_VERSION {
            if let Ok(state) = serde_json::from_slice::<A::State>(&recent.state) {
                return Some((state, recent.head.clone()));
            }
        }
        cache.invalidate(&key).await;
        None
    }

    /// Keeps `state` as the state of the stream at `head`, which an append just wrote.
    pub(crate) async fn remember<A: Aggregate>(&self, head: StreamHead, state: &A::State) {
        let Some(cache) = &self.cache else {
            return;
        };
        let key = head.stream().to_string();
        match serde_json::to_vec(state) {
            Ok(state) => {
                let recent = Recent {
                    head,
                    schema: A::SNAPSHOT_VERSION,
                    state: state.into_boxed_slice(),
                };
                cache.insert(key, Arc::new(recent)).await;
            }
            Err(_) => cache.invalidate(&key).await,
        }
    }

    /// Drops what is kept for `stream`: an append from it conflicted, or its outcome is
    /// unknown.
    pub(crate) async fn forget(&self, stream: &StreamId) {
        if let Some(cache) = &self.cache {
            cache.invalidate(&stream.to_string()).await;
        }
    }
}
