//! The inbox model: unread counts per user and each user's thread lists.
//!
//! Documents (collections `rm_inbox_g<n>_<kind>`):
//! - `users`, `_id = <user_id>` (tier 0): `{unread, unread_threads, threads}` — totals over
//!   the user's threads, changed with every change of one of the user's thread entries.
//! - `list_dirs` / `list_segments` / `list_buckets` (tiers 2 / 1 / 0): two ordered lists
//!   per user (see `list_index`): `inbox|<user_id>|all` and `inbox|<user_id>|unread`
//!   (threads with unread messages), keyed `<activity_at>|<thread_id>` (newest first), payload the
//!   `ThreadListItem`. `MessagePosted` moves the thread to the top of every participant's
//!   lists; `ThreadRead` changes the reader's entry and unread-list membership.
//! - `user_threads`, `_id = <user_id>_<thread_id>` (tier 3): `{read_up_to, own_after:
//!   [{from, to}]}`: the user's read marker and the user's own message seqs after it (as
//!   ranges; own messages never count as unread). unread = (last_seq − read_up_to) − (own
//!   seqs after read_up_to). `own_after` only grows while the user posts without marking
//!   read (16 bytes per run of own messages). Written when the user joins, reads or posts:
//!   the user's list item is built from it and the thread, before and after the event, so
//!   a message from someone else leaves it as it is.
//! - `threads`, `_id = <thread_id>` (tier 4): `{thread: {thread_id, kind, job_id, title,
//!   participants [{user_id, name}], started_at, last_seq, last_message_at, preview,
//!   last_author_id}}` from `ThreadStarted` and `MessagePosted`. At most 100 participants.
//! - `user_names`, `_id = <user_id>` (tier 5): `{name}` from `UserRegistered`.
//!
//! A message in a thread of `k` participants changes the author's user-thread document, the
//! user documents of the `k − 1` others and `2k` list entries (`k ≤ 100`).

use chrono::{DateTime, Utc};
use domain::ids::{JobId, ThreadId, UserId};
use domain::thread::{ThreadEvent, ThreadKind};
use domain::user::UserEvent;
use domain::values::ThreadTitle;
use serde::{Deserialize, Serialize};

use super::messages::kind_view;
use super::{named_participants, set_name, time_key, At};
use crate::apply::Decoded;
use crate::cache::{DocCache, DocLoader, LoadError, ReadDoc};
use crate::list_index::{ListStore, Membership};
use crate::query::{Participant, ThreadKindView, ThreadListItem};
use crate::Model;

pub(crate) const KINDS: &[&str] = &[
    "users",
    "user_threads",
    "threads",
    "user_names",
    "list_dirs",
    "list_segments",
    "list_buckets",
];

/// Characters of the last message shown in thread lists.
pub(crate) const PREVIEW_CHARS: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct UserDoc {
    pub(crate) unread: i64,
    pub(crate) unread_threads: i64,
    pub(crate) threads: i64,
}

impl ReadDoc for UserDoc {
    const TIER: u8 = 0;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct UserThreadDoc {
    read_up_to: u64,
    own_after: Vec<SeqRange>,
}

impl ReadDoc for UserThreadDoc {
    const TIER: u8 = 3;
}

impl UserThreadDoc {
    /// Own messages after the read marker are remembered so they never count as unread.
    fn note_own_message(&mut self, seq: u64) {
        if seq <= self.read_up_to {
            return;
        }
        match self.own_after.last_mut() {
            Some(run) if run.to + 1 == seq => run.to = seq,
            _ => self.own_after.push(SeqRange { from: seq, to: seq }),
        }
    }

    fn note_read(&mut self, up_to_seq: u64) {
        self.read_up_to = self.read_up_to.max(up_to_seq);
        let read = self.read_up_to;
        self.own_after.retain(|r| r.to > read);
        if let Some(first) = self.own_after.first_mut() {
            first.from = first.from.max(read + 1);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct SeqRange {
    from: u64,
    to: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ThreadDoc {
    thread: Option<ThreadState>,
}

impl ReadDoc for ThreadDoc {
    const TIER: u8 = 4;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ThreadState {
    thread_id: ThreadId,
    kind: ThreadKindView,
    job_id: Option<JobId>,
    title: Option<String>,
    participants: Vec<Participant>,
    #[serde(with = "crate::instant")]
    started_at: DateTime<Utc>,
    last_seq: u64,
    #[serde(with = "crate::instant::optional")]
    last_message_at: Option<DateTime<Utc>>,
    preview: Option<String>,
    last_author_id: Option<UserId>,
}

impl ThreadState {
    fn started(
        thread_id: ThreadId,
        kind: &ThreadKind,
        title: Option<&ThreadTitle>,
        started_at: DateTime<Utc>,
        participants: Vec<Participant>,
    ) -> Self {
        let (kind, job_id) = kind_view(kind);
        ThreadState {
            thread_id,
            kind,
            job_id,
            title: title.map(|t| t.as_str().to_owned()),
            participants,
            started_at,
            last_seq: 0,
            last_message_at: None,
            preview: None,
            last_author_id: None,
        }
    }

    /// An earlier message delivered again leaves the last message as it is.
    fn note_message(&mut self, seq: u64, author: UserId, at: DateTime<Utc>, preview: String) {
        if seq >= self.last_seq {
            self.last_seq = seq;
            self.last_message_at = Some(at);
            self.preview = Some(preview);
            self.last_author_id = Some(author);
        }
    }
}

/// `inbox|<user>|all` or `inbox|<user>|unread`.
pub(crate) fn list_name(user: UserId, unread_only: bool) -> String {
    let which = if unread_only { "unread" } else { "all" };
    format!("inbox|{user}|{which}")
}

pub(crate) fn list_key(item: &ThreadListItem) -> String {
    format!("{}|{}", time_key(item.activity_at), item.thread_id)
}

pub(crate) fn preview(body: &str) -> String {
    body.chars().take(PREVIEW_CHARS).collect()
}

fn memberships(user: UserId, item: &ThreadListItem) -> Vec<Membership> {
    let key = list_key(item);
    let mut lists = vec![Membership {
        list: list_name(user, false),
        key: key.clone(),
    }];
    if item.unread > 0 {
        lists.push(Membership {
            list: list_name(user, true),
            key,
        });
    }
    lists
}

fn own_count(ranges: &[SeqRange]) -> u64 {
    ranges.iter().map(|r| r.to - r.from + 1).sum()
}

fn build_item(thread: &ThreadState, user: UserId, ut: &UserThreadDoc) -> ThreadListItem {
    let participants = match thread.kind {
        ThreadKindView::Direct => thread
            .participants
            .iter()
            .filter(|p| p.user_id != user)
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    let unread = thread
        .last_seq
        .saturating_sub(ut.read_up_to)
        .saturating_sub(own_count(&ut.own_after));
    ThreadListItem {
        thread_id: thread.thread_id,
        kind: thread.kind,
        job_id: thread.job_id,
        title: thread.title.clone(),
        participants,
        unread,
        last_seq: thread.last_seq,
        last_message_at: thread.last_message_at,
        preview: thread.preview.clone(),
        last_author_id: thread.last_author_id,
        activity_at: thread.last_message_at.unwrap_or(thread.started_at),
    }
}

struct Collections {
    users: String,
    user_threads: String,
    threads: String,
    names: String,
    lists: ListStore,
}

pub(crate) async fn apply(
    at: &At<'_>,
    cache: &mut DocCache,
    loader: &impl DocLoader,
    event: &Decoded,
) -> Result<(), LoadError> {
    let c = Collections {
        users: at.collection(Model::Inbox, "users"),
        user_threads: at.collection(Model::Inbox, "user_threads"),
        threads: at.collection(Model::Inbox, "threads"),
        names: at.collection(Model::Inbox, "user_names"),
        lists: ListStore::named(|kind| at.collection(Model::Inbox, kind)),
    };
    let p = at.position;
    match event {
        Decoded::User(id, UserEvent::UserRegistered { display_name, .. }) => {
            set_name(
                cache,
                loader,
                &c.names,
                &id.to_string(),
                p,
                display_name.as_str(),
            )
            .await?;
        }
        Decoded::Thread(thread_id, thread_event) => {
            apply_thread(cache, loader, &c, p, *thread_id, thread_event).await?;
        }
        _ => {}
    }
    Ok(())
}

async fn apply_thread(
    cache: &mut DocCache,
    loader: &impl DocLoader,
    c: &Collections,
    p: u64,
    thread_id: ThreadId,
    event: &ThreadEvent,
) -> Result<(), LoadError> {
    let id = thread_id.to_string();
    match event {
        ThreadEvent::ThreadStarted {
            kind,
            participants,
            title,
            started_at,
            ..
        } => {
            let named = named_participants(cache, loader, &c.names, participants).await?;
            let state = ThreadState::started(thread_id, kind, title.as_ref(), *started_at, named);
            cache
                .update::<ThreadDoc>(loader, &c.threads, &id, p, |doc| {
                    doc.thread = Some(state.clone())
                })
                .await?;
            let change = Change::same(&state);
            for user in participants {
                refresh(cache, loader, c, p, &change, *user, |_| {}).await?;
            }
        }
        ThreadEvent::MessagePosted {
            seq,
            author,
            body,
            posted_at,
            ..
        } => {
            let Some(before) = thread_state(cache, loader, c, &id).await? else {
                return Ok(());
            };
            let text = preview(body.as_str());
            cache
                .update_existing::<ThreadDoc>(loader, &c.threads, &id, p, |doc| {
                    if let Some(t) = &mut doc.thread {
                        t.note_message(*seq, *author, *posted_at, text);
                    }
                })
                .await?;
            let Some(after) = thread_state(cache, loader, c, &id).await? else {
                return Ok(());
            };
            let change = Change {
                before: &before,
                after: &after,
            };
            for user in after.participants.iter().map(|p| p.user_id) {
                let own = user == *author;
                refresh(cache, loader, c, p, &change, user, |ut| {
                    if own {
                        ut.note_own_message(*seq);
                    }
                })
                .await?;
            }
        }
        ThreadEvent::ThreadRead {
            user, up_to_seq, ..
        } => {
            let Some(thread) = thread_state(cache, loader, c, &id).await? else {
                return Ok(());
            };
            refresh(cache, loader, c, p, &Change::same(&thread), *user, |ut| {
                ut.note_read(*up_to_seq)
            })
            .await?;
        }
    }
    Ok(())
}

/// The thread as its document holds it now.
async fn thread_state(
    cache: &mut DocCache,
    loader: &impl DocLoader,
    c: &Collections,
    thread_id: &str,
) -> Result<Option<ThreadState>, LoadError> {
    Ok(cache
        .get::<ThreadDoc>(loader, &c.threads, thread_id)
        .await?
        .and_then(|doc| doc.thread.clone()))
}

/// A thread before and after the event being applied: its participants' list items were
/// built from `before`, and are built from `after` now.
struct Change<'a> {
    before: &'a ThreadState,
    after: &'a ThreadState,
}

impl<'a> Change<'a> {
    /// An event that leaves the thread as it is (a start: nobody has an item yet; a read).
    fn same(thread: &'a ThreadState) -> Self {
        Change {
            before: thread,
            after: thread,
        }
    }
}

/// Applies `change_user` to one user's view of a thread (a read marker, an own message)
/// and carries it and the thread's `change` into the user's totals and lists. The user's
/// previous item is built from `change.before` and the user's document as it was, so the
/// document is written only when the user's own view changed (or the user joins).
async fn refresh(
    cache: &mut DocCache,
    loader: &impl DocLoader,
    c: &Collections,
    p: u64,
    change: &Change<'_>,
    user: UserId,
    change_user: impl FnOnce(&mut UserThreadDoc),
) -> Result<(), LoadError> {
    let id = format!("{user}_{}", change.after.thread_id);
    let old = cache
        .get_cloned::<UserThreadDoc>(loader, &c.user_threads, &id)
        .await?;
    let mut new = old.clone().unwrap_or_default();
    change_user(&mut new);
    if old.as_ref() != Some(&new) {
        let stored = new.clone();
        cache
            .update::<UserThreadDoc>(loader, &c.user_threads, &id, p, |doc| *doc = stored)
            .await?;
    }
    let old_item = old.map(|ut| build_item(change.before, user, &ut));
    let item = build_item(change.after, user, &new);
    let unread = |item: Option<&ThreadListItem>| item.map_or(0, |i| i.unread) as i64;
    let (before, after) = (unread(old_item.as_ref()), unread(Some(&item)));
    let joined = i64::from(old_item.is_none());
    let unread_threads = i64::from(after > 0) - i64::from(before > 0);
    if joined != 0 || before != after {
        cache
            .update::<UserDoc>(loader, &c.users, &user.to_string(), p, |doc| {
                doc.threads += joined;
                doc.unread += after - before;
                doc.unread_threads += unread_threads;
            })
            .await?;
    }
    let old_lists = old_item
        .as_ref()
        .map(|i| memberships(user, i))
        .unwrap_or_default();
    let new_lists: Vec<(Membership, ThreadListItem)> = memberships(user, &item)
        .into_iter()
        .map(|m| (m, item.clone()))
        .collect();
    c.lists.sync(cache, loader, p, &old_lists, &new_lists).await
}
