//! Thread headers and messages, newest first.

use domain::ids::ThreadId;

use super::{
    read, CursorKey, DocSource, Generations, MessageItem, Page, PageRequest, QueryError, ThreadMeta,
};
use crate::models::messages::{page_id, page_of, PageDoc, ThreadDoc};
use crate::Model;

/// The thread's header (participants, kind, title, last seq); `None` if it does not exist.
pub async fn thread_meta(
    src: &impl DocSource,
    gens: &Generations,
    thread: ThreadId,
) -> Result<Option<ThreadMeta>, QueryError> {
    let collection = gens.collection(Model::Messages, "threads");
    let doc = read::<ThreadDoc>(src, &collection, &thread.to_string()).await?;
    Ok(doc.and_then(|d| d.meta))
}

/// The thread's messages, newest first. The cursor is the seq of the last message returned;
/// a page of up to 50 messages costs the thread read plus one or two page reads.
pub async fn thread_messages(
    src: &impl DocSource,
    gens: &Generations,
    thread: ThreadId,
    page: PageRequest,
) -> Result<Page<MessageItem>, QueryError> {
    let limit = page.clamped_limit() as u64;
    let Some(meta) = thread_meta(src, gens, thread).await? else {
        return Ok(Page {
            items: Vec::new(),
            next: None,
            total: Some(0),
        });
    };
    // Messages are numbered 1..=last_seq without gaps; read down from the seq below the cursor.
    let start = match &page.after {
        None => meta.last_seq,
        Some(cursor) => cursor_seq(cursor)?.saturating_sub(1).min(meta.last_seq),
    };
    let stop = start.saturating_sub(limit);
    let pages = gens.collection(Model::Messages, "pages");
    let mut items = Vec::new();
    if start > 0 {
        let (first_page, last_page) = (page_of(start), page_of(stop + 1));
        for n in (last_page..=first_page).rev() {
            let id = page_id(thread, n);
            let Some(doc) = read::<PageDoc>(src, &pages, &id).await? else {
                continue;
            };
            items.extend(
                doc.messages
                    .into_iter()
                    .rev()
                    .filter(|m| m.seq <= start && m.seq > stop),
            );
        }
    }
    // The cursor names the lowest seq this page covered, present or not.
    let next = (stop > 0).then(|| CursorKey(serde_json::json!(stop + 1)));
    Ok(Page {
        items,
        next,
        total: Some(meta.last_seq),
    })
}

fn cursor_seq(cursor: &CursorKey) -> Result<u64, QueryError> {
    cursor
        .0
        .as_u64()
        .filter(|seq| *seq > 0)
        .ok_or_else(|| QueryError::InvalidCursor("expected a message sequence number".into()))
}
