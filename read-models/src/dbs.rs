//! Where read-model collections live: one database per model, beside a base database.
//!
//! The base database (`MONGODB_READ_MODELS_DB`, default `<MONGODB_DB>_read_models`) holds
//! what concerns every model: the registry, the record of which event store and layout the
//! read models were built from, the dead letters. Each model's generations live in a
//! database of their own, `<base>_<model>` ([`names::model_database`]).
//!
//! Why: FerretDB 1.24 copies and sorts the metadata of every collection of a database on each
//! `find` (`Registry.CollectionList`), and the read models' partitions came to 1,230
//! collections in one database, where a `find` of a one-document collection took 3.5 ms
//! against 0.9 ms among 100 (BENCHMARKS.md). Its SQLite backend also keeps each database in
//! a file of its own behind its own write lock, so the models' writes no longer queue behind
//! one another. On MongoDB 7 these are ordinary databases of one deployment.

use mongodb::{Client, Collection, Database};

use crate::{names, Model};

/// The databases of the read models, addressed by collection name. The handles are made
/// once: every point read and write of the projector and the query API goes through
/// [`ReadModelDbs::collection`].
#[derive(Debug, Clone)]
pub struct ReadModelDbs {
    base: Database,
    /// One per model, at its [`Model::index`].
    models: Vec<Database>,
}

impl ReadModelDbs {
    /// The read models whose base database is `base`.
    pub fn new(client: Client, base: impl Into<String>) -> Self {
        let base = base.into();
        ReadModelDbs {
            models: Model::ALL
                .iter()
                .map(|model| client.database(&names::model_database(&base, *model)))
                .collect(),
            base: client.database(&base),
        }
    }

    /// The base database's name.
    pub fn base_name(&self) -> &str {
        self.base.name()
    }

    /// The base database: registry, source record, dead letters.
    pub fn base(&self) -> Database {
        self.base.clone()
    }

    /// The database holding every generation of `model`.
    pub fn model(&self, model: Model) -> Database {
        self.models[model.index()].clone()
    }

    /// The database holding the (logical or physical) collection `name`: its model's for a
    /// generation's collection, the base otherwise.
    pub fn database_of(&self, name: &str) -> Database {
        match names::model_of(name) {
            Some(model) => self.model(model),
            None => self.base(),
        }
    }

    /// The collection `name`, in the database that holds it.
    pub fn collection<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        self.database_of(name).collection(name)
    }

    /// Every database of the read models: the base, then one per model.
    pub fn all(&self) -> Vec<Database> {
        std::iter::once(self.base())
            .chain(self.models.iter().cloned())
            .collect()
    }

    /// The names of the collections of every database of the read models.
    pub async fn list_collection_names(&self) -> mongodb::error::Result<Vec<String>> {
        let mut names = Vec::new();
        for database in self.all() {
            names.extend(database.list_collection_names().await?);
        }
        Ok(names)
    }

    /// Drops every database of the read models.
    pub async fn drop(&self) -> mongodb::error::Result<()> {
        for database in self.all() {
            database.drop().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Model;

    #[test]
    fn each_model_s_index_is_its_position_in_all() {
        for (position, model) in Model::ALL.into_iter().enumerate() {
            assert_eq!(model.index(), position, "{model:?}");
        }
    }
}
