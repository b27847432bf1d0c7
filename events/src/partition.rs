//! Hash partitioning of a logical collection into several physical ones.
//!
//! A store created on PostgreSQL-backed FerretDB or MongoDB has one partition per collection,
//! named as the logical collection itself: there a point read is an index lookup whatever the
//! collection's size. Stores created on FerretDB's SQLite backend recorded larger counts
//! ([`crate::store::StoreLayout`]) and keep them; what follows is why they had them.
//!
//! FerretDB 1.24's SQLite backend builds its `_id` index on `_ferretdb_sjson->"_id"` but filters
//! point reads on `_ferretdb_sjson->'$._id'`, which SQLite does not match to the index: every
//! point read and every update parses the JSON of every document in the collection. Splitting
//! a collection that grows with the data into `<name>_p<nn>` divides that cost by the number of
//! partitions. On MongoDB each partition is an ordinary collection with its `_id` index, and the
//! layout is the same on both, so a tool finds any document from its `_id` alone.

use mongodb::{Collection, Database};

/// 32-bit FNV-1a of the key's bytes: stable across processes, versions and languages.
pub fn fnv1a(key: &str) -> u32 {
    key.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// `<collection>_p<nn>` with `nn` = [`fnv1a`] of `id` modulo `partitions` (two digits at least);
/// `collection` itself when there is one partition.
pub fn physical_name(collection: &str, id: &str, partitions: u32) -> String {
    numbered(collection, fnv1a(id) % partitions.max(1), partitions)
}

/// Every physical collection of `collection`, in partition order.
pub fn physical_names(collection: &str, partitions: u32) -> Vec<String> {
    (0..partitions.max(1))
        .map(|p| numbered(collection, p, partitions))
        .collect()
}

fn numbered(collection: &str, partition: u32, partitions: u32) -> String {
    if partitions <= 1 {
        collection.to_owned()
    } else {
        format!("{collection}_p{partition:02}")
    }
}

/// A logical collection, its number of partitions, and the part of an `_id` that picks the
/// partition (documents with the same key share a partition and keep their insertion order).
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub name: &'static str,
    pub partitions: u32,
    pub key: fn(&str) -> &str,
}

/// The whole `_id` as the partition key.
pub fn whole_id(id: &str) -> &str {
    id
}

impl Layout {
    /// The physical collection holding the document with this `_id`.
    pub fn collection_for(&self, id: &str) -> String {
        numbered(self.name, self.index_for(id), self.partitions)
    }

    fn index_for(&self, id: &str) -> u32 {
        fnv1a((self.key)(id)) % self.partitions.max(1)
    }

    /// Every physical collection, in partition order.
    pub fn collections(&self) -> Vec<String> {
        physical_names(self.name, self.partitions)
    }
}

/// Typed handles on every partition of a logical collection.
#[derive(Debug)]
pub struct Partitioned<T: Send + Sync> {
    layout: Layout,
    parts: Vec<Collection<T>>,
}

impl<T: Send + Sync> Clone for Partitioned<T> {
    fn clone(&self) -> Self {
        Partitioned {
            layout: self.layout,
            parts: self.parts.clone(),
        }
    }
}

impl<T: Send + Sync> Partitioned<T> {
    pub fn new(db: &Database, layout: Layout) -> Self {
        Partitioned {
            layout,
            parts: layout
                .collections()
                .iter()
                .map(|name| db.collection(name))
                .collect(),
        }
    }

    /// The partition holding the document with this `_id`.
    pub fn of(&self, id: &str) -> &Collection<T> {
        &self.parts[self.layout.index_for(id) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_hash() {
        // FNV-1a("a") = 0xe40c292c, computed independently of this crate.
        assert_eq!(fnv1a("a"), 0xe40c_292c);
        assert_eq!(physical_name("commits", "a", 256), "commits_p44");
        assert_eq!(physical_name("heads", "a", 64), "heads_p44");
        assert_eq!(physical_names("x", 3), ["x_p00", "x_p01", "x_p02"]);
        assert_eq!(physical_names("x", 256)[255], "x_p255");
        assert_eq!(physical_name("commits", "a", 1), "commits");
        assert_eq!(physical_names("x", 1), ["x"]);
    }

    #[test]
    fn a_layout_hashes_the_key_part_of_the_id() {
        fn before_slash(id: &str) -> &str {
            id.split_once('/').map_or(id, |(key, _)| key)
        }
        let layout = Layout {
            name: "things",
            partitions: 256,
            key: before_slash,
        };
        assert_eq!(layout.collection_for("a/1"), "things_p44");
        assert_eq!(layout.collection_for("a/2"), "things_p44");
        let whole = Layout {
            key: whole_id,
            ..layout
        };
        assert_eq!(whole.collection_for("a"), "things_p44");
        assert_ne!(whole.collection_for("a/1"), whole.collection_for("a/2"));
    }
}
