//! What server-sent event streams need beyond the read path: the announcement of each change
//! of the read models (fed by the projector's change notices, never by polling the database)
//! and the admission of stream connections, per user and overall.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::ids::UserId;
use read_models::{names, Model};
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};

/// Changes kept for streams that have not looked yet; a stream further behind skips to the
/// latest state (it sends whole views, so nothing is lost by skipping).
const ANNOUNCED_CHANGES: usize = 64;

/// The read models changed: which ones, and the position they reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub position: u64,
    models: u8,
}

impl Change {
    /// A change of every model (a registry switch, an undecodable notice, a poll).
    pub fn everything(position: u64) -> Self {
        Change {
            position,
            models: u8::MAX,
        }
    }

    /// A change of the models that hold `collections`.
    pub fn of_collections<'a>(position: u64, collections: impl Iterator<Item = &'a str>) -> Self {
        let models = collections
            .filter_map(names::model_of)
            .fold(0, |mask, model| mask | bit(model));
        Change { position, models }
    }

    pub fn with(mut self, model: Model) -> Self {
        self.models |= bit(model);
        self
    }

    pub fn touches(&self, model: Model) -> bool {
        self.models & bit(model) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.models == 0
    }
}

fn bit(model: Model) -> u8 {
    1 << Model::ALL.iter().position(|m| *m == model).unwrap_or(7)
}

/// The announcements of changes.
pub struct Changes {
    sender: broadcast::Sender<Change>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            sender: broadcast::channel(ANNOUNCED_CHANGES).0,
        }
    }
}

impl Changes {
    pub fn announce(&self, change: Change) {
        if !change.is_empty() {
            // No stream listening is not an error.
            let _ = self.sender.send(change);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}

/// How many streams may be open.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    pub total: usize,
    pub per_user: usize,
}

/// Admits stream connections within [`StreamLimits`]; each admission is given back when its
/// [`Admitted`] is dropped (the client went away, the server stopped the stream).
pub struct Admission {
    limits: StreamLimits,
    total: Arc<Semaphore>,
    per_user: Arc<Mutex<HashMap<UserId, usize>>>,
}

/// Why a stream was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The caller has `per_user` streams open already.
    User(usize),
    /// The service has `total` streams open.
    Total(usize),
}

/// One open stream's place; dropped on disconnect.
pub struct Admitted {
    _total: OwnedSemaphorePermit,
    user: UserId,
    per_user: Arc<Mutex<HashMap<UserId, usize>>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut open) = self.per_user.lock() {
            if let Some(count) = open.get_mut(&self.user) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&self.user);
                }
            }
        }
    }
}

impl Admission {
    pub fn new(limits: StreamLimits) -> Self {
        Admission {
            limits,
            total: Arc::new(Semaphore::new(limits.total)),
            per_user: Arc::default(),
        }
    }

    pub fn admit(&self, user: UserId) -> Result<Admitted, Refused> {
        let mut open = self
            .per_user
            .lock()
            .map_err(|_| Refused::Total(self.limits.total))?;
        let count = open.entry(user).or_insert(0);
        if *count >= self.limits.per_user {
            return Err(Refused::User(self.limits.per_user));
        }
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Total(self.limits.total))?;
        *count += 1;
        Ok(Admitted {
            _total: total,
            user,
            per_user: self.per_user.clone(),
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.limits.total - self.total.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_touches_the_models_of_its_collections_only() {
        let inbox = names::collection(Model::Inbox, 3, "unread");
        let change = Change::of_collections(9, [inbox.as_str(), "unrelated"].into_iter());
        assert!(change.touches(Model::Inbox));
        assert!(!change.touches(Model::Dashboard));
        assert!(Change::everything(9).touches(Model::Dashboard));
        assert!(Change::of_collections(9, std::iter::empty()).is_empty());
    }

    #[test]
    fn streams_are_admitted_per_user_and_overall_and_given_back_on_drop() {
        let admission = Admission::new(StreamLimits {
            total: 3,
            per_user: 2,
        });
        let user = || UserId::from_uuid(uuid::Uuid::new_v4());
        let (ada, bob, cy) = (user(), user(), user());
        let first = admission.admit(ada).expect("first of ada");
        let _second = admission.admit(ada).expect("second of ada");
        assert_eq!(admission.admit(ada).err(), Some(Refused::User(2)));
        let _bob = admission.admit(bob).expect("bob");
        assert_eq!(admission.admit(cy).err(), Some(Refused::Total(3)));
        assert_eq!(admission.open(), 3);
        drop(first);
        assert_eq!(admission.open(), 2);
        admission.admit(ada).expect("ada again after a disconnect");
    }
}
