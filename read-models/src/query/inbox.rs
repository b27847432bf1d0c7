//! Unread counts and a user's thread lists.

use domain::ids::UserId;

use super::{
    read, CursorKey, DocSource, Generations, Page, PageRequest, QueryError, ThreadListItem,
    UnreadCountView,
};
use crate::list_index::{read_page, ListStore, PageSpec};
use crate::models::inbox::{list_name, UserDoc};
use crate::Model;

/// The user's unread totals: one point read.
pub async fn unread_count(
    src: &impl DocSource,
    gens: &Generations,
    user: UserId,
) -> Result<UnreadCountView, QueryError> {
    let collection = gens.collection(Model::Inbox, "users");
    let doc = read::<UserDoc>(src, &collection, &user.to_string())
        .await?
        .unwrap_or_default();
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(UnreadCountView {
        user_id: user,
        unread: count(doc.unread),
        unread_threads: count(doc.unread_threads),
        threads: count(doc.threads),
    })
}

/// The user's threads, most recent activity first; `unread_only` keeps those with unread
/// messages. The cursor is the list key of the last item.
pub async fn user_threads(
    src: &impl DocSource,
    gens: &Generations,
    user: UserId,
    unread_only: bool,
    page: PageRequest,
) -> Result<Page<ThreadListItem>, QueryError> {
    let before = page.after.as_ref().map(key_cursor).transpose()?;
    let store = ListStore::named(|kind| gens.collection(Model::Inbox, kind));
    let spec = PageSpec {
        before,
        floor: None,
        limit: page.clamped_limit(),
        keep: &|_: &ThreadListItem| true,
        budget: usize::MAX,
    };
    let list = list_name(user, unread_only);
    let result = read_page(src, &store, &list, spec).await?;
    Ok(Page {
        items: result.items.into_iter().map(|e| e.item).collect(),
        next: result.next.map(|k| CursorKey(serde_json::Value::String(k))),
        total: result.total,
    })
}

/// A list cursor: the key string of the last entry.
pub(crate) fn key_cursor(cursor: &CursorKey) -> Result<String, QueryError> {
    cursor
        .0
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| QueryError::InvalidCursor("expected a list position".into()))
}
