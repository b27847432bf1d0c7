//! Leadership among relays without compare-and-swap.
//!
//! FerretDB updates are read-modify-write, so a lease cannot be taken by a conditional update.
//! Instead leadership comes in numbered epochs, and taking epoch `n + 1` is a unique insert of
//! `lease/<n + 1>`: of several relays that find epoch `n` expired, exactly one gets in. The
//! holder renews its own epoch document (it is the only writer) and steps down as soon as a
//! successor epoch exists or it could not renew in time. The unique indexes of the log remain
//! the last guard should two relays ever overlap.

use bson::{doc, DateTime as BsonDateTime};
use chrono::Utc;
use mongodb::Collection;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

use super::RelayConfig;
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

const HINT_ID: &str = "lease";

fn epoch_id(epoch: i64) -> String {
    format!("lease/{epoch}")
}

pub struct Lease {
    relay: Collection<bson::Document>,
    holder: String,
    ttl: Duration,
    held: Option<i64>,
    renewed: Instant,
    last_attempt: Option<Instant>,
}

impl Lease {
    pub(crate) fn new(relay: Collection<bson::Document>, config: &RelayConfig) -> Self {
        Lease {
            relay,
            holder: config.holder.clone(),
            ttl: config.lease_ttl,
            held: None,
            renewed: Instant::now(),
            last_attempt: None,
        }
    }

    pub(crate) fn collection<T: Send + Sync>(&self) -> Collection<T> {
        self.relay.clone_with_type()
    }

    /// True while this relay leads; renews or tries to take the lease as needed.
    pub async fn hold(&mut self) -> Result<bool, StoreError> {
        match self.held {
            Some(epoch) => self.renew(epoch).await,
            None => {
                // Followers look at the lease a few times per TTL, not on every pass.
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
        let epochs = self.collection::<EpochDoc>();
        let outcome: Result<bool, StoreError> = async {
            if epochs
                .find_one(doc! {"_id": epoch_id(epoch + 1)})
                .await?
                .is_some()
            {
                return Ok(false);
            }
            epochs
                .update_one(
                    doc! {"_id": epoch_id(epoch)},
                    doc! {"$set": {"renewed_at": BsonDateTime::now()}},
                )
                .await?;
            Ok(true)
        }
        .await;
        match outcome {
            Ok(true) => {
                self.renewed = Instant::now();
                Ok(true)
            }
            Ok(false) => {
                tracing::warn!(epoch, "relay lease taken over; stepping down");
                self.held = None;
                Ok(false)
            }
            // Past half the TTL without a renewal another relay may take over soon.
            Err(error) if self.renewed.elapsed() > self.ttl / 2 => {
                self.held = None;
                Err(error)
            }
            Err(_) => Ok(true),
        }
    }

    async fn try_take(&mut self) -> Result<bool, StoreError> {
        let epochs = self.collection::<EpochDoc>();
        let hints = self.collection::<EpochHint>();
        let mut latest = hints
            .find_one(doc! {"_id": HINT_ID})
            .await?
            .map_or(0, |hint| hint.epoch);
        let mut current = None;
        while let Some(doc) = epochs.find_one(doc! {"_id": epoch_id(latest + 1)}).await? {
            latest += 1;
            current = Some(doc);
        }
        if current.is_none() && latest > 0 {
            current = epochs.find_one(doc! {"_id": epoch_id(latest)}).await?;
        }
        if let Some(current) = current {
            let age = (Utc::now() - current.renewed_at.to_chrono())
                .to_std()
                .unwrap_or_default();
            if age < self.ttl {
                return Ok(false);
            }
        }
        let claim = EpochDoc {
            id: epoch_id(latest + 1),
            holder: self.holder.clone(),
            renewed_at: BsonDateTime::now(),
        };
        match epochs.insert_one(&claim).await {
            Ok(_) => {}
            Err(error) if crate::store::is_duplicate_key(&error) => return Ok(false),
            Err(error) => return Err(error.into()),
        }
        self.held = Some(latest + 1);
        self.renewed = Instant::now();
        let hint = EpochHint {
            id: HINT_ID.into(),
            epoch: latest + 1,
        };
        hints
            .replace_one(doc! {"_id": HINT_ID}, hint)
            .upsert(true)
            .await?;
        tracing::info!(epoch = latest + 1, holder = %self.holder, "relay leads");
        Ok(true)
    }

    /// Lets a successor take over at once instead of waiting for the TTL.
    pub async fn release(&mut self) {
        if let Some(epoch) = self.held.take() {
            let released = self
                .collection::<EpochDoc>()
                .update_one(
                    doc! {"_id": epoch_id(epoch)},
                    doc! {"$set": {"renewed_at": BsonDateTime::from_millis(0)}},
                )
                .await;
            if let Err(error) = released {
                tracing::warn!(%error, "relay lease not released");
            }
        }
    }
}
