//! Names shared by the projector and the query API: collections, the registry, checkpoints
//! and the change-notification subject.
//!
//! A model generation's collections are `rm_<model>_g<generation>_<kind>`; every model also
//! has a `meta` kind holding `{_id: "checkpoint", position}`. The registry collection
//! `rm_registry` holds `{_id: "<model>", generation}` per model (missing = generation 1).
//!
//! Every kind but `meta` is stored in [`PARTITIONS`] physical collections ([`LARGE_KINDS`] in
//! [`LARGE_KIND_PARTITIONS`], [`SMALL_KINDS`] in one), `<collection>_p<nn>`, the document with
//! `_id` = `id` in partition `fnv1a(id) % count` ([`partition`]; see [`events::partition`] for
//! why): every projector write and every query is a point read or update by `_id`, which
//! FerretDB 1.24 answers by scanning the collection.

use bson::{doc, Bson, Document};

use crate::Model;

/// The registry collection: one document per model naming its live generation.
pub const REGISTRY_COLLECTION: &str = "rm_registry";
/// The kind of a generation's meta collection (checkpoint and projector state).
pub const META_KIND: &str = "meta";
/// `_id` of the checkpoint document in a generation's meta collection.
pub const CHECKPOINT_ID: &str = "checkpoint";

/// The database holding `model`'s generations, beside the read models' base database `base`
/// (see [`crate::dbs`]).
pub fn model_database(base: &str, model: Model) -> String {
    format!("{base}_{}", model.as_str())
}

/// The model whose generation a collection named `name` belongs to (`rm_<model>_g<n>_…`), if
/// any: the registry and the other shared collections belong to none.
pub fn model_of(name: &str) -> Option<Model> {
    Model::ALL.into_iter().find(|model| {
        name.strip_prefix("rm_")
            .and_then(|rest| rest.strip_prefix(model.as_str()))
            .and_then(|rest| rest.strip_prefix("_g"))
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// `rm_<model>_g<generation>_<kind>`, e.g. `rm_calendar_g1_weeks`.
pub fn collection(model: Model, generation: u32, kind: &str) -> String {
    format!("rm_{}_g{generation}_{kind}", model.as_str())
}

/// The prefix every collection of a generation starts with (`rm_<model>_g<n>_`), for
/// dropping a whole generation.
pub fn generation_prefix(model: Model, generation: u32) -> String {
    format!("rm_{}_g{generation}_", model.as_str())
}

/// Physical collections per read-model collection (see the module documentation).
pub const PARTITIONS: u32 = 32;
/// Physical collections of the kinds that hold most of a model's bytes: list buckets (sorted
/// runs of whole view items, retired buckets included) and search postings. Measured at
/// 20,000 events of the M data set: 143 MB of list buckets against 36 MB of postings and at
/// most 6 MB for any other kind; with 32 partitions each update of a bucket scanned ~4.5 MB.
pub const LARGE_KIND_PARTITIONS: u32 = 256;
/// The kinds stored in [`LARGE_KIND_PARTITIONS`] collections.
pub const LARGE_KINDS: [&str; 2] = ["list_buckets", "search"];
/// The kinds that stay small at any size of the data (a document per staff user or crew
/// member, or a few dozen bytes per month), stored in one physical collection each
/// (`<collection>_p00`): on FerretDB every collection of the database adds to the cost of
/// every query. The dashboard's twelve month totals are then read with one query (`$in` of
/// their `_id`s) rather than one query each.
pub const SMALL_KINDS: [&str; 5] = [
    "crew_names",
    "crew_users",
    "month_totals",
    "user_names",
    "users",
];
/// The version of the physical layout above (3: one database per model, `crate::dbs`; 4: the
/// dashboard's month totals). The projector records it beside the event store's identity;
/// read models recorded in another layout are dropped and projected again, as documents
/// would otherwise be looked for in collections that do not hold them (or be missing).
pub const LAYOUT_VERSION: u32 = 4;

/// How many physical collections the logical `collection` has (1 when it is not partitioned).
pub fn partition_count(collection: &str) -> u32 {
    let of_kind = |kinds: &[&str]| {
        kinds
            .iter()
            .any(|kind| collection.ends_with(&format!("_{kind}")))
    };
    if !is_partitioned(collection) || of_kind(&SMALL_KINDS) {
        1
    } else if of_kind(&LARGE_KINDS) {
        LARGE_KIND_PARTITIONS
    } else {
        PARTITIONS
    }
}

/// The physical collection holding document `id` of the logical `collection`: itself for a
/// generation's `meta`, the registry and anything outside the read models, otherwise
/// `<collection>_p<nn>` (see [`events::partition::physical_name`]).
pub fn partition(collection: &str, id: &str) -> String {
    if !is_partitioned(collection) {
        return collection.to_owned();
    }
    events::partition::physical_name(collection, id, partition_count(collection))
}

/// Every physical collection of the logical `collection`, in partition order.
pub fn partitions(collection: &str) -> Vec<String> {
    if !is_partitioned(collection) {
        return vec![collection.to_owned()];
    }
    events::partition::physical_names(collection, partition_count(collection))
}

fn is_partitioned(collection: &str) -> bool {
    collection.starts_with("rm_")
        && collection.contains("_g")
        && collection != REGISTRY_COLLECTION
        && !collection.ends_with(&format!("_{META_KIND}"))
}

/// `rm_<model>_g<generation>_meta`.
pub fn meta_collection(model: Model, generation: u32) -> String {
    collection(model, generation, META_KIND)
}

/// Every collection a model generation writes, including `meta`.
pub fn collections(model: Model, generation: u32) -> Vec<String> {
    model
        .kinds()
        .iter()
        .chain(std::iter::once(&META_KIND))
        .map(|kind| collection(model, generation, kind))
        .collect()
}

/// The checkpoint document: every event at or below `position` is applied.
pub fn checkpoint_doc(position: u64) -> Document {
    doc! {"_id": CHECKPOINT_ID, "position": position_i64(position)}
}

/// The checkpoint position a checkpoint document holds (0 when absent or malformed).
pub fn checkpoint_position(doc: Option<&Document>) -> u64 {
    doc.and_then(|d| number(d, "position")).unwrap_or(0)
}

/// The registry document that makes `generation` the live one of `model`.
pub fn registry_doc(model: Model, generation: u32) -> Document {
    doc! {"_id": model.as_str(), "generation": i64::from(generation)}
}

/// The generation a registry document names (1 when absent or malformed).
pub fn registry_generation(doc: Option<&Document>) -> u32 {
    doc.and_then(|d| number(d, "generation"))
        .and_then(|g| u32::try_from(g).ok())
        .filter(|g| *g >= 1)
        .unwrap_or(1)
}

/// Core NATS subject of change notifications: `"<subject_prefix>-changes"`.
pub fn changes_subject(subject_prefix: &str) -> String {
    format!("{}-changes", subject_prefix.trim_end_matches('.'))
}

pub(crate) fn position_i64(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

fn number(doc: &Document, field: &str) -> Option<u64> {
    match doc.get(field)? {
        Bson::Int32(n) => u64::try_from(*n).ok(),
        Bson::Int64(n) => u64::try_from(*n).ok(),
        Bson::Double(n) if *n >= 0.0 && n.is_finite() => Some(*n as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names_follow_the_contract() {
        assert_eq!(
            collection(Model::Calendar, 1, "weeks"),
            "rm_calendar_g1_weeks"
        );
        assert_eq!(meta_collection(Model::Inbox, 3), "rm_inbox_g3_meta");
        assert!(collections(Model::Lists, 2)
            .iter()
            .all(|c| c.starts_with(&generation_prefix(Model::Lists, 2))));
        assert_eq!(
            changes_subject("simplepro.events"),
            "simplepro.events-changes"
        );
    }

    #[test]
    fn documents_are_spread_over_stable_partitions_except_meta() {
        let weeks = collection(Model::Calendar, 1, "weeks");
        // 32-bit FNV-1a of "2026-W10" is 1,997,724,134 (computed outside this crate), and
        // 1,997,724,134 mod 32 = 6: the layout other tools rely on.
        assert_eq!(partition(&weeks, "2026-W10"), "rm_calendar_g1_weeks_p06");
        let used: std::collections::HashSet<String> = (0..1000)
            .map(|i| partition(&weeks, &format!("id-{i}")))
            .collect();
        assert_eq!(
            used.len(),
            PARTITIONS as usize,
            "every partition gets documents"
        );
        assert!(used.iter().all(|p| partitions(&weeks).contains(p)));
        let buckets = collection(Model::Lists, 1, "list_buckets");
        assert_eq!(partition_count(&buckets), LARGE_KIND_PARTITIONS);
        assert_eq!(partitions(&buckets).len(), LARGE_KIND_PARTITIONS as usize);
        // 1,997,724,134 mod 256 = 230.
        assert_eq!(
            partition(&buckets, "2026-W10"),
            "rm_lists_g1_list_buckets_p230"
        );
        let names = collection(Model::Calendar, 1, "crew_names");
        assert_eq!(partition_count(&names), 1);
        assert_eq!(partitions(&names), ["rm_calendar_g1_crew_names_p00"]);
        assert_eq!(
            partition(&names, "2026-W10"),
            "rm_calendar_g1_crew_names_p00"
        );
        let users = collection(Model::Inbox, 1, "users");
        assert_eq!(partition(&users, "u"), "rm_inbox_g1_users_p00");
        let user_threads = collection(Model::Inbox, 1, "user_threads");
        assert_eq!(partition_count(&user_threads), PARTITIONS);
        let meta = meta_collection(Model::Calendar, 1);
        assert_eq!(partition_count(&meta), 1);
        assert_eq!(partition(&meta, CHECKPOINT_ID), meta);
        assert_eq!(partitions(&meta), vec![meta.clone()]);
        assert_eq!(
            partition(REGISTRY_COLLECTION, "calendar"),
            REGISTRY_COLLECTION
        );
        assert!(partition(&weeks, "x").starts_with(&generation_prefix(Model::Calendar, 1)));
    }

    #[test]
    fn a_generation_s_collections_belong_to_their_model_and_the_shared_ones_to_none() {
        for model in Model::ALL {
            assert_eq!(model_of(&meta_collection(model, 12)), Some(model));
            assert_eq!(
                model_of(&partition(&collection(model, 1, "jobs"), "a")),
                Some(model)
            );
        }
        for shared in [
            REGISTRY_COLLECTION,
            "rm_source",
            "rm_dead_letters",
            "rm_lists_gx_a",
        ] {
            assert_eq!(model_of(shared), None, "{shared}");
        }
        assert_eq!(
            model_database("simplepro_read_models", Model::Calendar),
            "simplepro_read_models_calendar"
        );
    }

    #[test]
    fn checkpoint_and_registry_documents_round_trip() {
        assert_eq!(checkpoint_position(Some(&checkpoint_doc(42))), 42);
        assert_eq!(checkpoint_position(None), 0);
        assert_eq!(
            registry_generation(Some(&registry_doc(Model::Messages, 4))),
            4
        );
        assert_eq!(registry_generation(None), 1);
        assert_eq!(registry_generation(Some(&doc! {"generation": 0})), 1);
    }
}
