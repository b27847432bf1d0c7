//! Leases without compare-and-swap: one holder at a time of a named role (the relay's
//! leadership, a projector's read model).
//!
//! FerretDB updates are read-modify-write, so a lease cannot be taken by a conditional update.
//! Instead a lease comes in numbered epochs, and taking epoch `n + 1` of lease `name` is a
//! unique insert of `<name>/<n + 1>`: of several candidates that find epoch `n` expired,
//! exactly one gets in. The holder renews its own epoch document (it is the only writer) and
//! steps down as soon as a successor epoch exists or it could not renew in time. A hint
//! document `{_id: <name>, epoch}` spares a newcomer the walk from epoch 1.
//!
//! A lease is a promise by time, not a lock: a holder paused past its TTL (or cut off from the
//! database with writes still in flight) may act after its successor started. Callers keep
//! what they write safe against that overlap (the relay by the unique indexes of the log, the
//! projector by checking [`Lease::valid_for`] before each flush).

use bson::{doc, DateTime as BsonDateTime};
use chrono::Utc;
use mongodb::Collection;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

use crate::store::StoreError;

#[derive(Debug, Serialize, Deserialize)]
struct EpochDoc {
    #[serde(rename = "_id")]
    id: String,
    holder: String,
    renewed_at: BsonDateTime,
}

#[derive(Debug, Serialize, Deserialize)]
struct EpochHint {
    #[serde(rename = "_id")]
    id: String,
    epoch: i64,
}

/// The latest epoch of a lease as another candidate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub epoch: i64,
    pub holder: String,
    /// Not renewed within the observer's TTL (or released): free to take.
    pub expired: bool,
}

pub struct Lease {
    epochs: Collection<bson::Document>,
    name: String,
    holder: String,
    ttl: Duration,
    held: Option<i64>,
    /// When the last successful renewal (or the take) was sent: the lease runs out `ttl`
    /// after it at the latest, as the others count.
    renewed: Instant,
    last_attempt: Option<Instant>,
}

impl Lease {
    /// The lease `name` in `epochs`, for `holder`; a holder that has not renewed for `ttl` is
    /// replaced.
    pub fn new(
        epochs: Collection<bson::Document>,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Self {
        Lease {
            epochs,
            name: name.to_owned(),
            holder: holder.to_owned(),
            ttl,
            held: None,
            renewed: Instant::now(),
            last_attempt: None,
        }
    }

    fn epoch_id(&self, epoch: i64) -> String {
        format!("{}/{epoch}", self.name)
    }

    pub(crate) fn collection<T: Send + Sync>(&self) -> Collection<T> {
        self.epochs.clone_with_type()
    }

    /// The epoch held, if any.
    pub fn held(&self) -> Option<i64> {
        self.held
    }

    /// How long the lease held is certainly still this holder's by the local clock: the TTL
    /// less the time since the last renewal was sent (zero when none is held). Others judge
    /// by the renewal's wall-clock time, so clock skew between hosts eats into it.
    pub fn valid_for(&self) -> Duration {
        match self.held {
            Some(_) => self.ttl.saturating_sub(self.renewed.elapsed()),
            None => Duration::ZERO,
        }
    }

    /// True while this candidate holds the lease; renews or tries to take it as needed.
    pub async fn hold(&mut self) -> Result<bool, StoreError> {
        match self.held {
            Some(epoch) => self.renew(epoch).await,
            None => {
                // Candidates look at the lease a few times per TTL, not on every pass.
                if self
                    .last_attempt
                    .is_some_and(|at| at.elapsed() < self.ttl / 5)
                {
                    return Ok(false);
                }
                self.last_attempt = Some(Instant::now());
                self.try_take().await
            }
        }
    }

    async fn renew(&mut self, epoch: i64) -> Result<bool, StoreError> {
        if self.renewed.elapsed() < self.ttl / 3 {
            return Ok(true);
        }
        let sent = Instant::now();
        let epochs = self.collection::<EpochDoc>();
        let outcome: Result<bool, StoreError> = async {
            if epochs
                .find_one(doc! {"_id": self.epoch_id(epoch + 1)})
                .await?
                .is_some()
            {
                return Ok(false);
            }
            let renewed = epochs
                .update_one(
                    doc! {"_id": self.epoch_id(epoch)},
                    doc! {"$set": {"renewed_at": BsonDateTime::now()}},
                )
                .await?;
            // Its document gone (the database dropped under it): nothing says it is held.
            Ok(renewed.matched_count == 1)
        }
        .await;
        match outcome {
            Ok(true) => {
                self.renewed = sent;
                Ok(true)
            }
            Ok(false) => {
                tracing::warn!(lease = %self.name, epoch, "lease taken over or gone; stepping down");
                self.held = None;
                Ok(false)
            }
            // Past half the TTL without a renewal another candidate may take over soon.
            Err(error) if self.renewed.elapsed() > self.ttl / 2 => {
                self.held = None;
                Err(error)
            }
            Err(_) => Ok(true),
        }
    }

    /// The latest epoch and its document (`None` before the first take).
    async fn latest(&self) -> Result<(i64, Option<EpochDoc>), StoreError> {
        let epochs = self.collection::<EpochDoc>();
        let hints = self.collection::<EpochHint>();
        let mut latest = hints
            .find_one(doc! {"_id": &self.name})
            .await?
            .map_or(0, |hint| hint.epoch);
        let mut current = None;
        while let Some(doc) = epochs
            .find_one(doc! {"_id": self.epoch_id(latest + 1)})
            .await?
        {
            latest += 1;
            current = Some(doc);
        }
        if current.is_none() && latest > 0 {
            current = epochs.find_one(doc! {"_id": self.epoch_id(latest)}).await?;
        }
        Ok((latest, current))
    }

    fn expired(&self, current: &EpochDoc) -> bool {
        let age = (Utc::now() - current.renewed_at.to_chrono())
            .to_std()
            .unwrap_or_default();
        age >= self.ttl
    }

    /// Who holds the lease as far as the database says, without taking it.
    pub async fn observe(&self) -> Result<Option<Observed>, StoreError> {
        let (epoch, current) = self.latest().await?;
        Ok(current.map(|current| Observed {
            epoch,
            expired: self.expired(&current),
            holder: current.holder,
        }))
    }

    /// Takes the next epoch if the latest one expired, or was this holder's own (the same
    /// holder name started again: names must be unique among running candidates).
    async fn try_take(&mut self) -> Result<bool, StoreError> {
        let (latest, current) = self.latest().await?;
        if current.is_some_and(|current| !self.expired(&current) && current.holder != self.holder) {
            return Ok(false);
        }
        let sent = Instant::now();
        let claim = EpochDoc {
            id: self.epoch_id(latest + 1),
            holder: self.holder.clone(),
            renewed_at: BsonDateTime::now(),
        };
        match self.collection::<EpochDoc>().insert_one(&claim).await {
            Ok(_) => {}
            Err(error) if crate::store::is_duplicate_key(&error) => return Ok(false),
            Err(error) => return Err(error.into()),
        }
        self.held = Some(latest + 1);
        self.renewed = sent;
        let hint = EpochHint {
            id: self.name.clone(),
            epoch: latest + 1,
        };
        self.collection::<EpochHint>()
            .replace_one(doc! {"_id": &self.name}, hint)
            .upsert(true)
            .await?;
        tracing::info!(lease = %self.name, epoch = latest + 1, holder = %self.holder, "lease taken");
        Ok(true)
    }

    /// Lets a successor take over at once instead of waiting for the TTL.
    pub async fn release(&mut self) {
        if let Some(epoch) = self.held.take() {
            let released = self
                .collection::<EpochDoc>()
                .update_one(
                    doc! {"_id": self.epoch_id(epoch)},
                    doc! {"$set": {"renewed_at": BsonDateTime::from_millis(0)}},
                )
                .await;
            if let Err(error) = released {
                tracing::warn!(lease = %self.name, %error, "lease not released");
            }
        }
    }
}
