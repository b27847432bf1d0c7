//! Group commit: appends made at the same moment share their two inserts.
//!
//! An append stores its outbox entry (the intent) and then its commit (the fact). Alone that
//! is two round trips an append, and on FerretDB each insert is a PostgreSQL transaction of
//! its own: the driver alone inserts about 4,000 unique documents a second one at a time, and
//! about 57,000 a second by `insert_many` (BENCHMARKS.md, the substrate's ceilings). So an
//! append queues its two documents here, and whoever finds no group being written takes
//! everything queued and writes it as one unordered insert of the intents, then one unordered
//! insert of the commits.
//!
//! Nothing of an append's guarantees changes:
//! - each commit still lands or collides alone: an unordered insert reports a duplicate `_id`
//!   at its own index, and the others are stored, so optimistic concurrency is the unique
//!   commit `_id` as before;
//! - every intent of a group is stored before any of its commits, so the relay finds the
//!   intent of every commit (a group whose intents failed inserts no commit; intents that
//!   landed without their commit are discarded by the relay as orphans);
//! - a group is written by a task of its own, so an append whose caller goes away midway
//!   does not abandon the others of its group.
//!
//! MongoDB serves the same two inserts the same way; a replica set commits each as one
//! batch.

use std::sync::{Mutex, PoisonError};

use mongodb::error::{Error, ErrorKind};
use mongodb::Collection;
use tokio::sync::oneshot;

use super::docs::{CommitDoc, OutboxDoc};

/// What became of one commit of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Landing {
    Landed,
    /// Another commit holds its `_id`: another writer appended at the same version first.
    Taken,
}

/// The appends waiting for their group, and the turn to write one.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Vec<Queued>>,
    writer: tokio::sync::Mutex<()>,
}

struct Queued {
    intent: OutboxDoc,
    commit: CommitDoc,
    done: oneshot::Sender<Written>,
}

type Written = (CommitDoc, Result<Landing, Error>);

impl GroupCommit {
    /// Stores `intent`, then `commit`, in a group with the appends queued meanwhile; gives
    /// the commit back with what became of it. An error means the commit's fate is unknown
    /// (it may have landed; its intent, if stored, lets the relay settle it).
    pub(crate) async fn insert(
        &self,
        outbox: &Collection<OutboxDoc>,
        commits: &Collection<CommitDoc>,
        intent: OutboxDoc,
        commit: CommitDoc,
    ) -> Result<(CommitDoc, Landing), Error> {
        let (done, written) = oneshot::channel();
        self.lock_queue().push(Queued {
            intent,
            commit,
            done,
        });
        {
            // Whoever gets the turn writes everything queued, this append's entry included
            // unless an earlier turn took it already.
            let _turn = self.writer.lock().await;
            let group = std::mem::take(&mut *self.lock_queue());
            if !group.is_empty() {
                // A panic there drops the group's senders: answered below as an error.
                let _ = tokio::spawn(write(outbox.clone(), commits.clone(), group)).await;
            }
        }
        match written.await {
            Ok((commit, landing)) => landing.map(|landing| (commit, landing)),
            Err(_) => Err(Error::from(std::io::Error::other(
                "the group insert of this commit stopped before it answered",
            ))),
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Inserts the group's intents, then its commits, and answers each append.
async fn write(outbox: Collection<OutboxDoc>, commits: Collection<CommitDoc>, group: Vec<Queued>) {
    let landings = match outbox
        .insert_many(group.iter().map(|queued| &queued.intent))
        .ordered(false)
        .await
    {
        // No commit goes in without its intent.
        Err(error) => vec![Err(error); group.len()],
        Ok(_) => match commits
            .insert_many(group.iter().map(|queued| &queued.commit))
            .ordered(false)
            .await
        {
            Ok(_) => vec![Ok(Landing::Landed); group.len()],
            Err(error) => landings_of(&error, group.len()),
        },
    };
    for (queued, landing) in group.into_iter().zip(landings) {
        // An append that went away no longer needs its answer.
        let _ = queued.done.send((queued.commit, landing));
    }
}

/// What a failed unordered insert of `count` commits did to each: a duplicate `_id` at its
/// index is a taken version, another error at its index an unknown fate, and a document the
/// server reports no error for was stored. Any other failure leaves every fate unknown.
fn landings_of(error: &Error, count: usize) -> Vec<Result<Landing, Error>> {
    match error.kind.as_ref() {
        ErrorKind::InsertMany(failure) if failure.write_concern_error.is_none() => {
            let mut landings = vec![Ok(Landing::Landed); count];
            for write_error in failure.write_errors.iter().flatten() {
                if let Some(landing) = landings.get_mut(write_error.index) {
                    *landing = if write_error.code == 11000 {
                        Ok(Landing::Taken)
                    } else {
                        Err(error.clone())
                    };
                }
            }
            landings
        }
        _ => vec![Err(error.clone()); count],
    }
}
