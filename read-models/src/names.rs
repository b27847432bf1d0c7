//! Names shared by the projector and the query API: collections, the registry, checkpoints
//! and the change-notification subject.
//!
//! A model generation's collections are `rm_<model>_g<generation>_<kind>`; every model also
//! has a `meta` kind holding `{_id: "checkpoint", position}`. The registry collection
//! `rm_registry` holds `{_id: "<model>", generation}` per model (missing = generation 1).
//!
//! Each is one collection of plain documents, found by `_id` (the bucket key: a day, an ISO
//! week, a user, a page); all of them live in one database ([`crate::dbs`]).

use bson::{doc, Bson, Document};

use crate::Model;

/// The registry collection: one document per model naming its live generation.
pub const REGISTRY_COLLECTION: &str = "rm_registry";
/// The kind of a generation's meta collection (checkpoint and projector state).
pub const META_KIND: &str = "meta";
/// `_id` of the checkpoint document in a generation's meta collection.
pub const CHECKPOINT_ID: &str = "checkpoint";
/// `_id` of the parked aggregates' document in a generation's meta collection.
pub const PARKED_ID: &str = "parked";
/// Events a model could not apply, `<model>/<position>`, shared by every generation.
pub const DEAD_LETTERS_COLLECTION: &str = "rm_dead_letters";
/// The record of the event store and layout the read models were built from.
pub const SOURCE_COLLECTION: &str = "rm_source";
/// The projector's read-model leases: epochs `<model>/<n>` and hints `<model>`.
pub const LEASES_COLLECTION: &str = "rm_leases";
/// One heartbeat document per projector instance.
pub const INSTANCES_COLLECTION: &str = "rm_projectors";

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

/// The model and the kind of a collection named `rm_<model>_g<generation>_<kind>`, if it is
/// one.
pub fn model_and_kind(name: &str) -> Option<(Model, &str)> {
    let model = model_of(name)?;
    let rest = name.strip_prefix("rm_")?.strip_prefix(model.as_str())?;
    let (_, kind) = rest.strip_prefix("_g")?.split_once('_')?;
    Some((model, kind))
}

/// `rm_<model>_g<generation>_<kind>`, e.g. `rm_calendar_g1_days`.
pub fn collection(model: Model, generation: u32, kind: &str) -> String {
    format!("rm_{}_g{generation}_{kind}", model.as_str())
}

/// The prefix every collection of a generation starts with (`rm_<model>_g<n>_`), for
/// dropping a whole generation.
pub fn generation_prefix(model: Model, generation: u32) -> String {
    format!("rm_{}_g{generation}_", model.as_str())
}

/// The kinds that stay small at any size of the data (a document per staff user or crew
/// member, or a few dozen bytes per month). Several of their documents are read with one
/// query (`_id` `$in` them: the dashboard's twelve month totals), which FerretDB answers by
/// reading the collection; documents of any other kind are read with a point read each.
pub const SMALL_KINDS: [&str; 5] = [
    "crew_names",
    "crew_users",
    "month_totals",
    "user_names",
    "users",
];

/// Whether the collection `name` is of one of the [`SMALL_KINDS`].
pub fn is_small(name: &str) -> bool {
    SMALL_KINDS
        .iter()
        .any(|kind| name.ends_with(&format!("_{kind}")))
}

/// The version of the physical layout (3: one database per model; 4: the dashboard's month
/// totals; 5: one collection per kind, one database, plain documents; 6: ids as text and
/// instants as BSON dates; 7: windows name their time zone; 8: list keys from instants as
/// stored, to the millisecond; 9: small lists inline in their directory; 10: the inbox's
/// user-thread documents without the list item; 11: lists with segments between directory
/// and buckets; 12: the calendar and the dashboard by day). The projector
/// records it beside the event store's identity;
/// read models recorded in another layout are dropped and projected again, as documents
/// would otherwise be looked for where they are not, or in a form they are no longer read in.
pub const LAYOUT_VERSION: u32 = 12;

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

/// Core NATS subject of change notifications: `"<subject_prefix>-changes"`, the one definition
/// the projector (which publishes), the query API (which subscribes) and their tests use. A
/// sibling of the events' subjects (`<subject_prefix>.…`), so the events' JetStream stream
/// (`<subject_prefix>.>`) never stores a notice.
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
            collection(Model::Calendar, 1, "days"),
            "rm_calendar_g1_days"
        );
        assert_eq!(meta_collection(Model::Inbox, 3), "rm_inbox_g3_meta");
        assert!(collections(Model::Lists, 2)
            .iter()
            .all(|c| c.starts_with(&generation_prefix(Model::Lists, 2))));
        assert_eq!(
            changes_subject("simplepro.events"),
            "simplepro.events-changes"
        );
        assert!(!changes_subject("simplepro.events").starts_with("simplepro.events."));
    }

    #[test]
    fn only_the_small_kinds_are_small() {
        assert!(is_small(&collection(Model::Dashboard, 1, "month_totals")));
        assert!(is_small(&collection(Model::Inbox, 2, "users")));
        assert!(!is_small(&collection(Model::Lists, 1, "customers")));
        assert!(!is_small(&collection(Model::Inbox, 1, "user_threads")));
    }

    #[test]
    fn a_generation_s_collections_belong_to_their_model_and_the_shared_ones_to_none() {
        for model in Model::ALL {
            assert_eq!(model_of(&meta_collection(model, 12)), Some(model));
            assert_eq!(model_of(&collection(model, 1, "jobs")), Some(model));
        }
        for shared in [
            REGISTRY_COLLECTION,
            SOURCE_COLLECTION,
            DEAD_LETTERS_COLLECTION,
            LEASES_COLLECTION,
            INSTANCES_COLLECTION,
            "rm_lists_gx_a",
        ] {
            assert_eq!(model_of(shared), None, "{shared}");
            assert_eq!(model_and_kind(shared), None, "{shared}");
        }
    }

    #[test]
    fn a_collection_name_gives_its_model_and_kind() {
        for model in Model::ALL {
            for &kind in model.kinds() {
                assert_eq!(
                    model_and_kind(&collection(model, 12, kind)),
                    Some((model, kind))
                );
            }
        }
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
