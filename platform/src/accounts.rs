//! The current standing of each user, so that a deactivation or a role change takes effect on
//! the caller's next request although their token is still signed and unexpired.
//!
//! A token says who the caller is; what they may do comes from the user's own stream, folded
//! with the domain's `evolve` ([`domain::user`]). Each service keeps the folded standing in a
//! small cache and drops an entry as soon as an event of that user is published: every
//! service subscribes (core NATS, no consumer state) to the user subjects of the event
//! stream. The cache's time to live bounds staleness should the bus be unreachable.
//!
//! Subjects that never registered (the bootstrap administrator of a fresh system, whose token
//! is minted before any user exists) keep the role their token names; a registered user's
//! role is the one their events give, and a deactivated user is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::aggregate::Aggregate;
use domain::codec::Codec;
use domain::enums::Role;
use domain::ids::UserId;
use domain::user::{User, UserEvent, UserState};
use events::{EventStore, StreamId};
use futures::StreamExt;
use moka::future::Cache;
use tokio::sync::Notify;

use crate::problem::Problem;

/// What a user may currently do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// No user of this id was ever registered.
    Unregistered,
    Active(Role),
    Deactivated,
}

impl Standing {
    fn of(state: &UserState) -> Self {
        match &state.user {
            None => Standing::Unregistered,
            Some(user) if user.active => Standing::Active(user.role),
            Some(_) => Standing::Deactivated,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("reading the user's events: {0}")]
    Store(String),
}

/// Users' standings, read from their streams and kept current from the bus.
#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None`: tokens are trusted as they are (unit tests of routes without a store).
    store: Option<(EventStore, Codec)>,
    standings: Cache<UserId, Standing>,
    /// The highest version of each user's stream seen published on the bus.
    published: Mutex<HashMap<UserId, u64>>,
    publication: Notify,
}

impl Accounts {
    /// Standings folded from `store`, each kept at most `ttl` unless the bus says sooner.
    pub fn new(store: EventStore, codec: Codec, ttl: Duration) -> Self {
        Self::build(Some((store, codec)), ttl)
    }

    /// Trusts every token's role: for tests of handlers that run without an event store.
    pub fn trusting_tokens() -> Self {
        Self::build(None, Duration::from_secs(1))
    }

    fn build(store: Option<(EventStore, Codec)>, ttl: Duration) -> Self {
        Accounts {
            inner: Arc::new(Inner {
                store,
                standings: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(ttl)
                    .build(),
                published: Mutex::new(HashMap::new()),
                publication: Notify::new(),
            }),
        }
    }

    /// The standing of `user`, from the cache or their stream.
    pub async fn standing(&self, user: UserId) -> Result<Standing, Arc<AccountsError>> {
        let Some((store, codec)) = &self.inner.store else {
            return Ok(Standing::Unregistered);
        };
        self.inner
            .standings
            .try_get_with(user, load(store, codec, user))
            .await
    }

    /// The role the caller holds now: the token's for an unregistered subject, the events'
    /// for a user; a deactivated user is refused with 401.
    pub async fn current_role(&self, user: UserId, claimed: Role) -> Result<Role, Problem> {
        match self.standing(user).await {
            Ok(Standing::Unregistered) => Ok(claimed),
            Ok(Standing::Active(role)) => Ok(role),
            Ok(Standing::Deactivated) => Err(Problem::unauthorized(
                "this user is deactivated; their tokens are no longer accepted",
            )),
            Err(error) => {
                tracing::warn!(%error, %user, "cannot read the caller's standing");
                Err(Problem::unavailable(
                    "the caller's standing cannot be read right now; retry shortly",
                ))
            }
        }
    }

    /// Drops what is known of `user`, so their next request reads their stream.
    pub async fn forget(&self, user: UserId) {
        self.inner.standings.invalidate(&user).await;
    }

    /// Waits until version `version` of `user`'s stream has been seen on the bus (so every
    /// service following it has dropped the old standing), at most `timeout`. `false` on
    /// timeout.
    pub async fn published(&self, user: UserId, version: u64, timeout: Duration) -> bool {
        let seen = || {
            let published = self
                .inner
                .published
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            published.get(&user).is_some_and(|v| *v >= version)
        };
        let wait = async {
            loop {
                let notified = self.inner.publication.notified();
                if seen() {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// Follows the user subjects of the event stream (`<events_prefix>.user.*`) until the
    /// connection closes, dropping each published user's standing.
    pub async fn follow(
        &self,
        nats: async_nats::Client,
        events_prefix: &str,
    ) -> Result<tokio::task::JoinHandle<()>, async_nats::SubscribeError> {
        let subject = format!("{}.{}.*", events_prefix.trim_end_matches('.'), User::TYPE);
        let mut messages = nats.subscribe(subject).await?;
        let accounts = self.clone();
        Ok(tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                accounts.saw(&message.subject, &message.payload).await;
            }
        }))
    }

    async fn saw(&self, subject: &str, payload: &[u8]) {
        let Some(user) = subject
            .rsplit('.')
            .next()
            .and_then(|id| id.parse::<UserId>().ok())
        else {
            return;
        };
        self.forget(user).await;
        let version = serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .and_then(|envelope| envelope.get("version")?.as_u64());
        if let Some(version) = version {
            let mut published = self
                .inner
                .published
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let seen = published.entry(user).or_default();
            *seen = (*seen).max(version);
        }
        self.inner.publication.notify_waiters();
    }
}

async fn load(store: &EventStore, codec: &Codec, user: UserId) -> Result<Standing, AccountsError> {
    let stream = StreamId {
        aggregate_type: User::TYPE.to_owned(),
        aggregate_id: user.to_string(),
    };
    let envelopes = store
        .read_stream(&stream, 1)
        .await
        .map_err(|e| AccountsError::Store(e.to_string()))?;
    let mut state = UserState::default();
    for envelope in envelopes {
        let event: UserEvent = codec
            .decode(
                &envelope.event_type,
                envelope.schema_version,
                envelope.payload,
            )
            .map_err(|e| AccountsError::Store(e.to_string()))?;
        state = User::evolve(state, &event);
    }
    Ok(Standing::of(&state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_is_trusted_as_it_is_without_a_store() {
        let accounts = Accounts::trusting_tokens();
        let user = UserId::from(uuid::Uuid::now_v7());
        assert_eq!(
            accounts.current_role(user, Role::Dispatcher).await.unwrap(),
            Role::Dispatcher
        );
    }

    #[tokio::test]
    async fn a_publication_is_awaited_by_version() {
        let accounts = Accounts::trusting_tokens();
        let user = UserId::from(uuid::Uuid::now_v7());
        let subject = format!("simplepro.events.user.{user}");
        let waiter = {
            let accounts = accounts.clone();
            tokio::spawn(async move { accounts.published(user, 3, Duration::from_secs(5)).await })
        };
        accounts.saw(&subject, br#"{"version": 2}"#).await;
        assert!(!accounts.published(user, 3, Duration::from_millis(20)).await);
        accounts.saw(&subject, br#"{"version": 3}"#).await;
        assert!(waiter.await.unwrap());
        assert!(accounts.published(user, 1, Duration::from_millis(1)).await);
    }
}
