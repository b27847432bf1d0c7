//! The messages model: every thread's messages in pages of 50, and each thread's header.
//!
//! Documents (collections `rm_messages_g<n>_<kind>`):
//! - `pages`, `_id = <thread_id>_<n>` (tier 0): `{thread_id, page: n, messages: [{seq,
//!   message_id, author_id, author_name, body, posted_at}]}` holding the messages with seq in
//!   `n*50+1 ..= n*50+50`, by seq. Written by
//!   `MessagePosted`. Bodies are at most 10,000 characters, so a page stays under 2 MB.
//! - `threads`, `_id = <thread_id>` (tier 3): `{meta: {thread_id, kind, job_id, title,
//!   participants: [{user_id, name}], last_seq, started_by, started_at}}`. Written by
//!   `ThreadStarted`, `last_seq` by `MessagePosted`. At most 100 participants.
//! - `user_names`, `_id = <user_id>` (tier 5): `{name}` from `UserRegistered`.
//!
//! Names are copied when the thread starts or the message is posted; a user registered
//! after taking part shows with an empty name (the command API only lets registered users
//! take part).

use domain::ids::ThreadId;
use domain::thread::{ThreadEvent, ThreadKind};
use domain::user::UserEvent;
use serde::{Deserialize, Serialize};

use super::{name_of, named_participants, set_name, At};
use crate::apply::Decoded;
use crate::cache::{DocCache, DocLoader, LoadError, ReadDoc};
use crate::query::{MessageItem, ThreadKindView, ThreadMeta};
use crate::Model;

pub(crate) const KINDS: &[&str] = &["pages", "threads", "user_names"];

/// Messages per page document.
pub(crate) const PAGE_SIZE: u64 = 50;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PageDoc {
    pub(crate) thread_id: String,
    pub(crate) page: i64,
    pub(crate) messages: Vec<MessageItem>,
}

impl ReadDoc for PageDoc {
    const TIER: u8 = 0;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ThreadDoc {
    pub(crate) meta: Option<ThreadMeta>,
}

impl ReadDoc for ThreadDoc {
    const TIER: u8 = 3;
}

/// The page holding `seq` (seqs start at 1).
pub(crate) fn page_of(seq: u64) -> u64 {
    seq.saturating_sub(1) / PAGE_SIZE
}

pub(crate) fn page_id(thread: ThreadId, page: u64) -> String {
    format!("{thread}_{page}")
}

pub(crate) fn kind_view(kind: &ThreadKind) -> (ThreadKindView, Option<domain::ids::JobId>) {
    match kind {
        ThreadKind::Direct => (ThreadKindView::Direct, None),
        ThreadKind::Group => (ThreadKindView::Group, None),
        ThreadKind::Job { job_id } => (ThreadKindView::Job, Some(*job_id)),
    }
}

pub(crate) async fn apply(
    at: &At<'_>,
    cache: &mut DocCache,
    loader: &impl DocLoader,
    event: &Decoded,
) -> Result<(), LoadError> {
    let names = at.collection(Model::Messages, "user_names");
    match event {
        Decoded::User(user_id, UserEvent::UserRegistered { display_name, .. }) => {
            let id = user_id.to_string();
            set_name(
                cache,
                loader,
                &names,
                &id,
                at.position,
                display_name.as_str(),
            )
            .await?;
        }
        Decoded::Thread(thread_id, thread_event) => {
            apply_thread(at, cache, loader, &names, *thread_id, thread_event).await?;
        }
        _ => {}
    }
    Ok(())
}

async fn apply_thread(
    at: &At<'_>,
    cache: &mut DocCache,
    loader: &impl DocLoader,
    names: &str,
    thread_id: ThreadId,
    event: &ThreadEvent,
) -> Result<(), LoadError> {
    let threads = at.collection(Model::Messages, "threads");
    let thread_key = thread_id.to_string();
    match event {
        ThreadEvent::ThreadStarted {
            kind,
            participants,
            title,
            started_by,
            started_at,
            ..
        } => {
            let named = named_participants(cache, loader, names, participants).await?;
            let (kind, job_id) = kind_view(kind);
            let meta = ThreadMeta {
                thread_id,
                kind,
                job_id,
                title: title.as_ref().map(|t| t.as_str().to_owned()),
                participants: named,
                last_seq: 0,
                started_by: *started_by,
                started_at: *started_at,
            };
            cache
                .update::<ThreadDoc>(loader, &threads, &thread_key, at.position, |doc| {
                    doc.meta = Some(meta);
                })
                .await?;
        }
        ThreadEvent::MessagePosted {
            message_id,
            seq,
            author,
            body,
            posted_at,
        } => {
            raise_last_seq(at, cache, loader, &threads, &thread_key, *seq).await?;
            let message = MessageItem {
                seq: *seq,
                message_id: *message_id,
                author_id: *author,
                author_name: name_of(cache, loader, names, &author.to_string()).await?,
                body: body.as_str().to_owned(),
                posted_at: *posted_at,
            };
            add_to_page(at, cache, loader, thread_id, message).await?;
        }
        ThreadEvent::ThreadRead { .. } => {}
    }
    Ok(())
}

async fn raise_last_seq(
    at: &At<'_>,
    cache: &mut DocCache,
    loader: &impl DocLoader,
    threads: &str,
    thread_key: &str,
    seq: u64,
) -> Result<(), LoadError> {
    cache
        .update_existing::<ThreadDoc>(loader, threads, thread_key, at.position, |doc| {
            if let Some(meta) = &mut doc.meta {
                meta.last_seq = meta.last_seq.max(seq);
            }
        })
        .await?;
    Ok(())
}

/// Puts the message into its page by seq, replacing an earlier copy of it.
async fn add_to_page(
    at: &At<'_>,
    cache: &mut DocCache,
    loader: &impl DocLoader,
    thread_id: ThreadId,
    message: MessageItem,
) -> Result<(), LoadError> {
    let page = page_of(message.seq);
    let pages = at.collection(Model::Messages, "pages");
    let id = page_id(thread_id, page);
    cache
        .update::<PageDoc>(loader, &pages, &id, at.position, |doc| {
            doc.thread_id = thread_id.to_string();
            doc.page = page as i64;
            match doc.messages.binary_search_by_key(&message.seq, |m| m.seq) {
                Ok(i) => doc.messages[i] = message,
                Err(i) => doc.messages.insert(i, message),
            }
        })
        .await?;
    Ok(())
}
