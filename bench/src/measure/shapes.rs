//! What one document costs the server by its shape: replaces and finds by `_id` of documents
//! of about the same size, held as one string, as an array of strings, or as an array of
//! small objects, and of read-model-like documents with more or fewer entries.
//!
//! The projector writes whole documents and the query API reads them, so what a document
//! costs decides how many of them a flush or a page may touch. MongoDB stores the BSON it is
//! sent; FerretDB 1.x over PostgreSQL converts every value to and from JSON with a type
//! schema beside it, so there the number of values may weigh more than the bytes. This
//! measures which, on the server it is pointed at. It uses the driver directly, as
//! [`super::ceilings`] does.

use std::time::Duration;

use anyhow::Context;
use bson::{doc, Bson, Document};
use mongodb::{Client, Collection};
use serde::Serialize;

use super::ceilings::rate;

/// Documents per shape; replaces and finds pick among them.
const DOCS: u64 = 400;

/// One document shape's rates.
#[derive(Debug, Clone, Serialize)]
pub struct ShapeCost {
    pub shape: String,
    /// Size of one document as BSON.
    pub bson_bytes: usize,
    /// Values in one document, nested ones included (what FerretDB converts one by one).
    pub values: usize,
    pub clients: usize,
    pub replaces_per_s: f64,
    pub finds_per_s: f64,
}

/// The shapes measured: (name, body).
fn shapes() -> Vec<(String, Document)> {
    let entry = |i: usize| {
        doc! {
            "key": format!("2026-12-05T18:30:00.000000000Z|{i:036}"),
            "item": {
                "customer_id": format!("{i:036}"),
                "first_name": "George",
                "last_name": "Torres",
                "email": "george.torres12@example.com",
                "phone": "+1 (371) 227-5299",
                "status": "active",
                "referral_source": "referral",
                "job_count": 2_i64,
                "lifetime_revenue_minor": 0_i64,
                "created_at": bson::DateTime::from_millis(1_796_495_400_000),
            }
        }
    };
    let entries = |n: usize| Bson::Array((0..n).map(|i| Bson::Document(entry(i))).collect());
    let mut shapes = vec![("one small field".to_owned(), doc! {"v": 1_i64})];
    for n in [1, 8, 16, 32, 64] {
        shapes.push((
            format!(
                "{n} list {} of 13 values",
                if n == 1 { "entry" } else { "entries" }
            ),
            doc! {"entries": entries(n)},
        ));
    }
    // About the bytes of 64 entries, in ever fewer values.
    let bytes = bson::to_vec(&doc! {"entries": entries(64)}).map_or(25_000, |b| b.len());
    let strings = |n: usize| {
        Bson::Array(
            (0..n)
                .map(|_| Bson::String("x".repeat(bytes / n)))
                .collect(),
        )
    };
    shapes.push((
        "64 objects of 2 strings".to_owned(),
        doc! {"entries": (0..64).map(|i| doc! {"key": format!("{i:060}"), "item": "x".repeat((bytes / 64).saturating_sub(80))}).collect::<Vec<_>>()},
    ));
    shapes.push(("64 strings".to_owned(), doc! {"entries": strings(64)}));
    shapes.push(("one string".to_owned(), doc! {"s": "x".repeat(bytes)}));
    shapes
}

/// Values in a document, nested ones included.
fn values(document: &Document) -> usize {
    fn count(value: &Bson) -> usize {
        1 + match value {
            Bson::Document(d) => d.values().map(count).sum(),
            Bson::Array(a) => a.iter().map(count).sum(),
            _ => 0,
        }
    }
    document.values().map(count).sum()
}

/// Measures every shape at each of `clients`, each operation for `each`, in the database
/// `database`, which it drops before and after.
pub async fn measure(
    client: &Client,
    database: &str,
    clients: &[usize],
    each: Duration,
) -> anyhow::Result<Vec<ShapeCost>> {
    let db = client.database(database);
    db.drop().await.context("dropping the shapes database")?;
    let mut costs = Vec::new();
    for (index, (shape, body)) in shapes().into_iter().enumerate() {
        let collection: Collection<Document> = db.collection(&format!("shape{index}"));
        let docs: Vec<Document> = (0..DOCS).map(|n| with_id(&body, n, 0)).collect();
        collection
            .insert_many(docs)
            .await
            .with_context(|| format!("filling the collection of {shape}"))?;
        // Measured on a stored document, `_id` and `_pos` included.
        let stored = with_id(&body, 0, 0);
        let (bson_bytes, value_count) = (bson::to_vec(&stored)?.len(), values(&stored));
        for &level in clients {
            let replaces = {
                let (collection, body) = (collection.clone(), body.clone());
                rate(level, each, move |task, n| {
                    let (collection, body) = (collection.clone(), body.clone());
                    async move {
                        let id = pick(task, n);
                        let pos = i64::try_from(n + 1).unwrap_or(i64::MAX);
                        collection
                            .replace_one(doc! {"_id": id_of(id)}, with_id(&body, id, pos))
                            .upsert(true)
                            .await
                            .map(|_| 1)
                    }
                })
                .await
                .with_context(|| format!("replaces of {shape}"))?
            };
            let finds = {
                let collection = collection.clone();
                rate(level, each, move |task, n| {
                    let collection = collection.clone();
                    async move {
                        collection
                            .find_one(doc! {"_id": id_of(pick(task, n))})
                            .await
                            .map(|found| u64::from(found.is_some()))
                    }
                })
                .await
                .with_context(|| format!("finds of {shape}"))?
            };
            tracing::info!(%shape, bson_bytes, clients = level, replaces, finds, "document shape");
            costs.push(ShapeCost {
                shape: shape.clone(),
                bson_bytes,
                values: value_count,
                clients: level,
                replaces_per_s: replaces,
                finds_per_s: finds,
            });
        }
    }
    db.drop().await.context("dropping the shapes database")?;
    Ok(costs)
}

/// A spread of documents without a random-number crate: a multiplicative hash.
fn pick(task: usize, n: u64) -> u64 {
    (task as u64 * 7_919 + n * 104_729) % DOCS
}

fn id_of(n: u64) -> String {
    format!("d{n:05}")
}

fn with_id(body: &Document, n: u64, pos: i64) -> Document {
    let mut document = doc! {"_id": id_of(n), "_pos": pos};
    document.extend(body.clone());
    document
}

/// The Markdown table of the costs.
pub fn table(costs: &[ShapeCost]) -> String {
    let mut out = String::from(
        "| shape | BSON bytes | values | clients | replaces by _id /s | finds by _id /s |\n|---|---|---|---|---|---|\n",
    );
    for c in costs {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.0} |\n",
            c.shape, c.bson_bytes, c.values, c.clients, c.replaces_per_s, c.finds_per_s
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_count_nested_ones_and_the_shapes_keep_their_bytes_while_values_fall() {
        assert_eq!(values(&doc! {"a": 1, "b": {"c": [1, 2]}}), 5);
        let shapes = shapes();
        let size = |name: &str| {
            let (_, body) = shapes.iter().find(|(n, _)| n == name).expect("a shape");
            (bson::to_vec(body).expect("encodes").len(), values(body))
        };
        let (entries_bytes, entries_values) = size("64 list entries of 13 values");
        let (string_bytes, string_values) = size("one string");
        assert_eq!(entries_values, 1 + 64 * 13);
        assert_eq!(string_values, 1);
        assert!(string_bytes.abs_diff(entries_bytes) < entries_bytes / 20);
    }
}
