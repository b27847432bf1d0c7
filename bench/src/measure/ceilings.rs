//! The substrate's raw ceilings: what the MongoDB-wire server answers to the driver alone, at
//! 1, 16 and 64 concurrent clients, for the operations the project's hot paths are made of —
//! an insert guarded by a unique index (an append), a find by an indexed field (a point read
//! of a read model), and `insert_many` (a projector flush or a bulk load). Measured in the same
//! run as the project's figures, so each of those reads as a share of what the server allows.
//! It uses the driver directly, not the `events` and `read-models` adapters: it measures the
//! server beneath them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

/// The concurrency levels measured.
pub const CLIENTS: [usize; 3] = [1, 16, 64];
/// Documents the indexed finds choose from.
const FIND_DOCS: u64 = 20_000;
/// Documents per `insert_many` call, as the projector and the loader send them.
const BATCH: usize = 500;
/// Bytes of filler in each document: about the size of a stored event.
const FILLER: usize = 400;

/// One concurrency level's rates, per second.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ceiling {
    pub clients: usize,
    pub unique_inserts_per_s: f64,
    pub indexed_finds_per_s: f64,
    pub insert_many_docs_per_s: f64,
}

/// Measures every level for `each` per operation in the database `database`, which it drops
/// before and after.
pub async fn measure(
    client: &Client,
    database: &str,
    each: Duration,
) -> anyhow::Result<Vec<Ceiling>> {
    let db = client.database(database);
    db.drop().await.context("dropping the ceilings database")?;
    let collections = Collections::prepare(&db).await?;
    let mut levels = Vec::new();
    for clients in CLIENTS {
        levels.push(collections.measure_level(clients, each).await?);
    }
    db.drop().await.context("dropping the ceilings database")?;
    Ok(levels)
}

/// One collection per operation.
struct Collections {
    unique: Collection<Document>,
    finds: Collection<Document>,
    bulk: Collection<Document>,
}

impl Collections {
    /// Creates the indexes and fills the collection the finds read.
    async fn prepare(db: &Database) -> anyhow::Result<Self> {
        let unique: Collection<Document> = db.collection("unique_inserts");
        unique
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"key": 1})
                    .options(IndexOptions::builder().unique(true).build())
                    .build(),
            )
            .await
            .context("creating the unique index")?;
        let finds: Collection<Document> = db.collection("indexed_finds");
        finds
            .create_index(IndexModel::builder().keys(doc! {"key": 1}).build())
            .await
            .context("creating the find index")?;
        let docs: Vec<Document> = (0..FIND_DOCS).map(|n| filled(&format!("k{n}"))).collect();
        for chunk in docs.chunks(BATCH) {
            finds
                .insert_many(chunk)
                .await
                .context("filling the find collection")?;
        }
        let bulk: Collection<Document> = db.collection("insert_many");
        Ok(Collections {
            unique,
            finds,
            bulk,
        })
    }

    async fn measure_level(&self, clients: usize, each: Duration) -> anyhow::Result<Ceiling> {
        let unique_inserts = self.unique_inserts(clients, each).await?;
        let indexed_finds = self.indexed_finds(clients, each).await?;
        let insert_many = self.insert_many(clients, each).await?;
        tracing::info!(
            clients,
            unique_inserts,
            indexed_finds,
            insert_many,
            "substrate ceilings"
        );
        Ok(Ceiling {
            clients,
            unique_inserts_per_s: unique_inserts,
            indexed_finds_per_s: indexed_finds,
            insert_many_docs_per_s: insert_many,
        })
    }

    async fn unique_inserts(&self, clients: usize, each: Duration) -> anyhow::Result<f64> {
        let unique = self.unique.clone();
        rate(clients, each, move |task, n| {
            let unique = unique.clone();
            async move {
                let key = format!("c{clients}-t{task}-n{n}");
                unique.insert_one(filled(&key)).await.map(|_| 1)
            }
        })
        .await
        .context("unique inserts")
    }

    async fn indexed_finds(&self, clients: usize, each: Duration) -> anyhow::Result<f64> {
        let finds = self.finds.clone();
        rate(clients, each, move |task, n| {
            let finds = finds.clone();
            async move {
                // A spread of keys without a random-number crate: a multiplicative hash.
                let pick = (task as u64 * 7_919 + n * 104_729) % FIND_DOCS;
                finds
                    .find_one(doc! {"key": format!("k{pick}")})
                    .await
                    .map(|found| u64::from(found.is_some()))
            }
        })
        .await
        .context("indexed finds")
    }

    async fn insert_many(&self, clients: usize, each: Duration) -> anyhow::Result<f64> {
        let bulk = self.bulk.clone();
        rate(clients, each, move |task, n| {
            let bulk = bulk.clone();
            async move {
                let batch: Vec<Document> = (0..BATCH)
                    .map(|i| filled(&format!("c{clients}-t{task}-n{n}-{i}")))
                    .collect();
                bulk.insert_many(batch).await.map(|_| BATCH as u64)
            }
        })
        .await
        .context("insert_many")
    }
}

fn filled(key: &str) -> Document {
    doc! {"_id": key, "key": key, "filler": "x".repeat(FILLER)}
}

/// Runs `clients` tasks that each call `op(task, n)` for n = 0, 1, … until `each` has passed,
/// and returns the units the calls reported (documents found or written) per second.
pub(crate) async fn rate<F, Fut>(clients: usize, each: Duration, op: F) -> anyhow::Result<f64>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = mongodb::error::Result<u64>> + Send,
{
    let units = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + each;
    let tasks: Vec<_> = (0..clients)
        .map(|task| {
            let op = op.clone();
            let units = units.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while Instant::now() < deadline {
                    units.fetch_add(op(task, n).await?, Ordering::Relaxed);
                    n += 1;
                }
                Ok::<_, mongodb::error::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.context("a ceiling task")??;
    }
    Ok(units.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
