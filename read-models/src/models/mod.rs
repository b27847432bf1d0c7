//! How events change each model's documents: one module per model, plus shared lookups.
//!
//! Tiers (see `cache`): a change only reads documents of a higher tier. Across models the
//! pattern is the same: name lookups (highest) → entity lookups → list directories (2) →
//! list segments (1) → leaf documents such as buckets, weeks, months and pages (0).

use chrono::{DateTime, NaiveDate, Utc};
use domain::ids::UserId;
use serde::{Deserialize, Serialize};

use crate::cache::{DocCache, DocLoader, LoadError, ReadDoc};
use crate::query::Participant;
use crate::{Model, ProjectionContext};

pub(crate) mod calendar;
pub(crate) mod dashboard;
pub(crate) mod inbox;
pub(crate) mod lists;
pub(crate) mod messages;
pub(crate) mod search;

/// The event being applied: where it is in the log, and the projection's settings.
pub(crate) struct At<'a> {
    pub(crate) ctx: &'a ProjectionContext,
    pub(crate) position: u64,
}

impl At<'_> {
    pub(crate) fn collection(&self, model: Model, kind: &str) -> String {
        self.ctx.collection(model, kind)
    }

    pub(crate) fn local_date(&self, instant: DateTime<Utc>) -> NaiveDate {
        self.ctx.time_zone.local_date(instant)
    }
}

/// A display name by id (users, crew members): `{_id: <uuid>, name}`. Names are set by the
/// registration events and never change, so entries copy them when they are written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct NameDoc {
    pub(crate) name: String,
}

impl ReadDoc for NameDoc {
    const TIER: u8 = 5;
}

pub(crate) async fn set_name(
    cache: &mut DocCache,
    loader: &impl DocLoader,
    collection: &str,
    id: &str,
    position: u64,
    name: &str,
) -> Result<(), LoadError> {
    cache
        .update::<NameDoc>(loader, collection, id, position, |doc| {
            doc.name = name.to_owned();
        })
        .await?;
    Ok(())
}

/// The name of `id` ("" when it was never registered).
pub(crate) async fn name_of(
    cache: &mut DocCache,
    loader: &impl DocLoader,
    collection: &str,
    id: &str,
) -> Result<String, LoadError> {
    Ok(cache
        .get::<NameDoc>(loader, collection, id)
        .await?
        .map(|doc| doc.name.clone())
        .unwrap_or_default())
}

/// The participants with their names, by user id.
pub(crate) async fn named_participants(
    cache: &mut DocCache,
    loader: &impl DocLoader,
    names: &str,
    participants: &[UserId],
) -> Result<Vec<Participant>, LoadError> {
    let mut named = Vec::with_capacity(participants.len());
    for user in participants {
        let name = name_of(cache, loader, names, &user.to_string()).await?;
        named.push(Participant {
            user_id: *user,
            name,
        });
    }
    named.sort_by_key(|p| p.user_id);
    Ok(named)
}

/// A sortable text form of an instant: fixed width, UTC, to the millisecond a stored date
/// keeps ([`crate::instant::as_stored`]). A key is computed again from the stored item when
/// the item leaves or moves: from a summary read back from the store after a restart or an
/// eviction, nanoseconds would give another key, and the old entry would stay behind. The
/// nine digits keep the width of keys written before, so both sort together.
pub(crate) fn time_key(instant: DateTime<Utc>) -> String {
    crate::instant::as_stored(instant)
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

/// `"First Last"`.
pub(crate) fn full_name(first: &str, last: &str) -> String {
    format!("{first} {last}")
}
