//! Which read models this instance writes, when several projector instances share them.
//!
//! The unit of ownership is the read model: its documents combine many aggregates (a dashboard
//! day sums all jobs), so only the read model has one writer when it has one owner. Each model
//! has a lease ([`events::lease::Lease`], epochs `<model>/<n>` by unique insert in
//! `rm_leases`, [`ReadModelDbs::lease`]); an instance projects a model only while it holds that lease, and checks
//! before each flush that it still does ([`Ownership::may_write`]).
//!
//! A [`Keeper`] task per instance, every quarter of the lease TTL:
//! 1. writes the instance's heartbeat `{_id: <instance>, preferred, held, seen_at}` into
//!    `rm_projectors` ([`ReadModelDbs::beat`]; each instance writes only its own document) and
//!    reads the others; an instance is live while its heartbeat is younger than the TTL;
//! 2. renews the leases it holds (a lease it could not renew, or that has a successor epoch,
//!    is lost: the live loop drops the model without writing);
//! 3. takes the free or expired leases of its preferred models;
//! 4. takes a lease of any other model once it has seen it free (never taken, released or
//!    expired) for the takeover grace and no live instance prefers the model: the survivor of
//!    a crash projects everything;
//! 5. gives back a model it does not prefer while a live instance prefers it: the live loop
//!    flushes it and lets go of it, then the keeper releases the lease, which the preferring
//!    instance takes at its next round. A restarted instance so gets its share back.
//!
//! Nothing else is agreed on: two instances preferring one model race for its lease and the
//! unique insert admits one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::lease::Lease;
use platform::shutdown::Shutdown;
use read_models::dbs::ReadModelDbs;
use read_models::store::DbError;
use read_models::Model;
use tokio::time::Instant;

/// A lease the keeper holds, as the live loop sees it.
#[derive(Debug, Clone, Copy)]
struct Grant {
    epoch: i64,
    /// The lease is certainly this instance's until then (local clock).
    valid_until: Instant,
    /// Another live instance prefers the model: flush it and let go.
    give_back: bool,
    /// The live loop no longer projects it; the keeper releases the lease.
    dropped: bool,
}

/// What the keeper holds and the live loop may project; shared between the two.
pub(crate) struct Ownership {
    instance: String,
    /// A flush starts only with at least this much of the lease left.
    margin: Duration,
    grants: Mutex<BTreeMap<Model, Grant>>,
}

/// A model the keeper holds: its lease epoch and whether it is to be given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) epoch: i64,
    pub(crate) give_back: bool,
}

impl Ownership {
    pub(crate) fn new(instance: &str, ttl: Duration) -> Self {
        Ownership {
            instance: instance.to_owned(),
            margin: ttl / 4,
            grants: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    fn grants(&self) -> std::sync::MutexGuard<'_, BTreeMap<Model, Grant>> {
        self.grants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The models held and not yet let go by the live loop.
    pub(crate) fn held(&self) -> BTreeMap<Model, Held> {
        self.grants()
            .iter()
            .filter(|(_, g)| !g.dropped)
            .map(|(m, g)| {
                let held = Held {
                    epoch: g.epoch,
                    give_back: g.give_back,
                };
                (*m, held)
            })
            .collect()
    }

    /// Whether a flush of `model`'s documents and checkpoint, projected under lease `epoch`,
    /// may start now: the lease is still held in that epoch with at least a quarter of its
    /// TTL left.
    ///
    /// The window that remains: a flush that started in time but whose writes land after the
    /// lease ran out (the process paused, or cut off from the database with writes in
    /// flight, for longer than that quarter TTL) can overlap the successor's first flushes.
    /// `_pos` makes the successor's re-applications harmless (it skips an event for any
    /// document persisted at or past it, and it starts from the checkpoint, which is written
    /// after the documents), but a whole-document replace by the old holder that lands after
    /// the successor wrote the same document puts back an older version: `_pos` does not
    /// guard writes (FerretDB has no atomic conditional update). The successor's next write
    /// of that document from its cache repairs it; if it reads the document back instead
    /// (evicted from its cache), it builds on the older version, and only a rebuild of the
    /// model repairs it (`projector rebuild <model>`; `--verify` shows it). Keep the TTL well
    /// above pauses and the time a flush takes to reach the database.
    pub(crate) fn may_write(&self, model: Model, epoch: i64) -> bool {
        self.grants().get(&model).is_some_and(|g| {
            g.epoch == epoch && !g.dropped && g.valid_until > Instant::now() + self.margin
        })
    }

    /// The live loop no longer projects `model` (given back): the keeper may release it.
    pub(crate) fn dropped(&self, model: Model) {
        if let Some(grant) = self.grants().get_mut(&model) {
            grant.dropped = true;
        }
    }

    fn set(&self, model: Model, grant: Option<Grant>) {
        let mut grants = self.grants();
        match grant {
            Some(grant) => grants.insert(model, grant),
            None => grants.remove(&model),
        };
    }

    fn grant(&self, model: Model) -> Option<Grant> {
        self.grants().get(&model).copied()
    }
}

/// Keeps the leases of one instance and its heartbeat (see the module's documentation).
pub(crate) struct Keeper {
    ownership: Arc<Ownership>,
    db: ReadModelDbs,
    preferred: Vec<Model>,
    leases: BTreeMap<Model, Lease>,
    /// When this instance first saw each model without a live holder.
    free_since: BTreeMap<Model, Instant>,
    /// The models the other live instances prefer, as last read.
    others: BTreeSet<Model>,
    ttl: Duration,
    grace: Duration,
}

impl Keeper {
    pub(crate) fn new(
        db: &ReadModelDbs,
        ownership: Arc<Ownership>,
        preferred: Vec<Model>,
        ttl: Duration,
        grace: Duration,
    ) -> Self {
        let leases = Model::ALL
            .into_iter()
            .map(|model| (model, db.lease(model, ownership.instance(), ttl)))
            .collect();
        Keeper {
            ownership,
            db: db.clone(),
            preferred,
            leases,
            free_since: BTreeMap::new(),
            others: BTreeSet::new(),
            ttl,
            grace,
        }
    }

    /// Rounds every quarter TTL until `stop`; then releases every lease and removes the
    /// heartbeat, so the others take over at once. Stop it only after the live loop ended.
    pub(crate) async fn run(mut self, stop: Shutdown) {
        loop {
            let wait = tokio::time::sleep(self.ttl / 4);
            tokio::select! {
                _ = stop.clone().wait() => break,
                _ = wait => {}
            }
            self.round().await;
        }
        for lease in self.leases.values_mut() {
            lease.release().await;
        }
        if let Err(error) = self.db.remove_heartbeat(self.ownership.instance()).await {
            tracing::warn!(%error, "instance heartbeat not removed");
        }
        tracing::info!(instance = %self.ownership.instance(), "read-model leases released");
    }

    /// One round: heartbeat, renewals, takes and give-backs.
    pub(crate) async fn round(&mut self) {
        match self.heartbeat().await {
            Ok(others) => self.others = others,
            // The others as last read; the leases decide anyway.
            Err(error) => tracing::warn!(%error, "projector heartbeat failed"),
        }
        let others = self.others.clone();
        for model in Model::ALL {
            self.keep(model, &others).await;
        }
    }

    async fn keep(&mut self, model: Model, others: &BTreeSet<Model>) {
        let preferred = self.preferred.contains(&model);
        let Some(lease) = self.leases.get_mut(&model) else {
            return;
        };
        let grant = self.ownership.grant(model);
        if grant.is_some_and(|g| g.dropped) {
            lease.release().await;
            self.ownership.set(model, None);
            tracing::info!(model = model.as_str(), "read model given back");
            return;
        }
        if lease.held().is_some() {
            match lease.hold().await {
                Ok(true) => {
                    let epoch = lease.held().unwrap_or_default();
                    self.ownership.set(
                        model,
                        Some(Grant {
                            epoch,
                            valid_until: Instant::now() + lease.valid_for(),
                            give_back: !preferred && others.contains(&model),
                            dropped: false,
                        }),
                    );
                }
                Ok(false) => {
                    tracing::warn!(model = model.as_str(), "read-model lease lost");
                    self.ownership.set(model, None);
                }
                Err(error) => {
                    tracing::warn!(model = model.as_str(), %error, "read-model lease lost");
                    self.ownership.set(model, None);
                }
            }
            return;
        }
        self.ownership.set(model, None);
        let take = if preferred {
            true
        } else {
            match lease.observe().await {
                Ok(Some(observed)) if !observed.expired => {
                    self.free_since.remove(&model);
                    false
                }
                Ok(_) => {
                    let since = *self.free_since.entry(model).or_insert_with(Instant::now);
                    since.elapsed() >= self.grace && !others.contains(&model)
                }
                Err(error) => {
                    tracing::warn!(model = model.as_str(), %error, "read-model lease unreadable");
                    false
                }
            }
        };
        if !take {
            return;
        }
        match lease.hold().await {
            Ok(true) => {
                self.free_since.remove(&model);
                let epoch = lease.held().unwrap_or_default();
                tracing::info!(
                    model = model.as_str(),
                    epoch,
                    preferred,
                    "read-model lease taken"
                );
                self.ownership.set(
                    model,
                    Some(Grant {
                        epoch,
                        valid_until: Instant::now() + lease.valid_for(),
                        give_back: false,
                        dropped: false,
                    }),
                );
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(model = model.as_str(), %error, "taking a lease failed"),
        }
    }

    /// Writes this instance's heartbeat; returns the models preferred by the other live
    /// instances.
    async fn heartbeat(&self) -> Result<BTreeSet<Model>, DbError> {
        let me = self.ownership.instance();
        let held: Vec<Model> = self.ownership.held().into_keys().collect();
        self.db.beat(me, &self.preferred, &held).await?;
        let now = chrono::Utc::now();
        let mut others = BTreeSet::new();
        for instance in self.db.heartbeats().await? {
            if instance.instance == me {
                continue;
            }
            let live = instance.seen_at.is_some_and(|seen| {
                (now - seen).to_std().is_ok_and(|age| age < self.ttl) || seen > now
            });
            if live {
                others.extend(instance.preferred);
            }
        }
        Ok(others)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_needs_the_lease_in_its_epoch_with_time_left() {
        let ownership = Ownership::new("p1", Duration::from_secs(8));
        assert!(!ownership.may_write(Model::Lists, 1));
        let grant = |valid: Duration| Grant {
            epoch: 3,
            valid_until: Instant::now() + valid,
            give_back: false,
            dropped: false,
        };
        ownership.set(Model::Lists, Some(grant(Duration::from_secs(6))));
        assert!(ownership.may_write(Model::Lists, 3));
        assert!(!ownership.may_write(Model::Lists, 2), "another epoch");
        ownership.set(Model::Lists, Some(grant(Duration::from_secs(1))));
        assert!(
            !ownership.may_write(Model::Lists, 3),
            "less than a quarter left"
        );
        ownership.set(Model::Lists, Some(grant(Duration::from_secs(6))));
        ownership.dropped(Model::Lists);
        assert!(!ownership.may_write(Model::Lists, 3), "let go");
        assert!(ownership.held().is_empty());
    }
}
