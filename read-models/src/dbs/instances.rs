//! The projector instances' documents: one heartbeat per instance in
//! [`names::INSTANCES_COLLECTION`] (each instance writes only its own), and the read-model
//! leases in [`names::LEASES_COLLECTION`] ([`events::lease::Lease`]).

use std::time::Duration;

use bson::{doc, Document};
use chrono::{DateTime, Utc};
use events::lease::Lease;

use super::ReadModelDbs;
use crate::names;
use crate::store::DbError;
use crate::Model;

/// A projector instance's heartbeat: `{_id: <instance>, preferred, held, seen_at}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub instance: String,
    /// The models it prefers to project (unknown names left out).
    pub preferred: Vec<Model>,
    pub held: Vec<Model>,
    /// When it last wrote its heartbeat (its clock); `None` when unreadable.
    pub seen_at: Option<DateTime<Utc>>,
}

fn models(doc: &Document, field: &str) -> Vec<Model> {
    doc.get_array(field)
        .map(|models| {
            models
                .iter()
                .filter_map(|m| m.as_str())
                .filter_map(|m| m.parse::<Model>().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl ReadModelDbs {
    fn instances(&self) -> mongodb::Collection<Document> {
        self.base.collection(names::INSTANCES_COLLECTION)
    }

    /// The lease of `model` for the projector instance `holder` (epochs `<model>/<n>`).
    pub fn lease(&self, model: Model, holder: &str, ttl: Duration) -> Lease {
        Lease::new(
            self.base.collection(names::LEASES_COLLECTION),
            model.as_str(),
            holder,
            ttl,
        )
    }

    /// Writes the heartbeat of `instance`, seen now.
    pub async fn beat(
        &self,
        instance: &str,
        preferred: &[Model],
        held: &[Model],
    ) -> Result<(), DbError> {
        let names = |models: &[Model]| models.iter().map(|m| m.as_str()).collect::<Vec<_>>();
        self.instances()
            .replace_one(
                doc! {"_id": instance},
                doc! {
                    "_id": instance,
                    "preferred": names(preferred),
                    "held": names(held),
                    "seen_at": bson::DateTime::now(),
                },
            )
            .upsert(true)
            .await
            .map_err(DbError::driver)?;
        Ok(())
    }

    /// Every instance's heartbeat, live or not.
    pub async fn heartbeats(&self) -> Result<Vec<Heartbeat>, DbError> {
        let all = self.all_docs(names::INSTANCES_COLLECTION).await?;
        Ok(all
            .into_iter()
            .map(|doc| Heartbeat {
                instance: doc.get_str("_id").unwrap_or_default().to_owned(),
                preferred: models(&doc, "preferred"),
                held: models(&doc, "held"),
                seen_at: doc.get_datetime("seen_at").ok().map(|at| at.to_chrono()),
            })
            .collect())
    }

    /// Removes the heartbeat of `instance` (it stopped).
    pub async fn remove_heartbeat(&self, instance: &str) -> Result<(), DbError> {
        self.instances()
            .delete_one(doc! {"_id": instance})
            .await
            .map_err(DbError::driver)?;
        Ok(())
    }
}
