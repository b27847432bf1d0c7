//! End-to-end checks of the document pipeline against the reference fold: random valid
//! histories applied through `apply` + cache + flush into an in-memory store (with random
//! flush points, cache sizes, failing loads and crashes in the middle of a flush), then
//! every query function compared with the reference.

mod cache;
mod history;
mod pipeline;
mod queries;
mod views;

use std::future::Future;

use crate::query::{Page, PageRequest, QueryError};

/// Runs an async test body on a fresh current-thread runtime.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("test runtime")
        .block_on(future)
}

/// Follows `next` cursors from the first page to the last, `limit` items at a time, and
/// checks the reported total.
pub(crate) async fn all_pages<T, F, Fut>(limit: usize, mut page: F) -> Vec<T>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>, QueryError>>,
{
    let mut items = Vec::new();
    let mut after = None;
    let mut total = None;
    for _ in 0..100_000 {
        let result = page(PageRequest { limit, after })
            .await
            .expect("query succeeds");
        assert!(result.items.len() <= limit, "page longer than its limit");
        if total.is_none() {
            total = result.total;
        }
        items.extend(result.items);
        match result.next {
            Some(next) => after = Some(next),
            None => {
                if let Some(total) = total {
                    assert_eq!(total, items.len() as u64, "reported total");
                }
                return items;
            }
        }
    }
    panic!("paging did not end");
}
