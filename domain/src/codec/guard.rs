//! The schema guard: the JSON Schema of every event type, generated from the Rust types, must
//! match the one committed for its current version, and a change that old payloads would not
//! satisfy must come with an upcaster (a new version).
//!
//! `./dev schemas` (`SIMPLEPRO_RECORD_SCHEMAS=1 cargo test -p domain schema_guard`)
//! writes the schemas of new versions and of compatible changes; it never overwrites a
//! committed version with an incompatible one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use super::compat::incompatibilities;
use super::current_version;
use crate::aggregate::DomainEvent;
use crate::crew_member::CrewMemberEvent;
use crate::customer::CustomerEvent;
use crate::job::JobEvent;
use crate::thread::ThreadEvent;
use crate::user::UserEvent;

const RECORD_VARIABLE: &str = "SIMPLEPRO_RECORD_SCHEMAS";
const RECORD_COMMAND: &str = "SIMPLEPRO_RECORD_SCHEMAS=1 cargo test -p domain schema_guard";

fn schema_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/events")
}

/// What the committed schemas need for one event type.
#[derive(Debug, PartialEq)]
enum Verdict {
    UpToDate,
    /// The schema of this version is new, or changed in a way old payloads still satisfy.
    Record(u32),
}

/// Compares the `generated` schema of `event_type` at version `current` with the `committed`
/// schemas of its versions; `Err` says what is wrong and what to do.
fn verdict(
    event_type: &str,
    current: u32,
    generated: &Value,
    committed: &BTreeMap<u32, Value>,
) -> Result<Verdict, String> {
    if let Some((&newest, _)) = committed.range(current + 1..).next() {
        return Err(format!(
            "{event_type}.v{newest}.json is committed but {event_type} is at v{current}: \
             was its upcaster removed from domain/src/codec.rs?"
        ));
    }
    if let Some(missing) = (1..current).find(|v| !committed.contains_key(v)) {
        return Err(format!(
            "{event_type}.v{missing}.json is missing: the schema of every older version stays \
             committed, so its upcaster's input is known"
        ));
    }
    let Some(recorded) = committed.get(&current) else {
        return Ok(Verdict::Record(current));
    };
    if recorded == generated {
        return Ok(Verdict::UpToDate);
    }
    let breaks = incompatibilities(recorded, generated);
    if breaks.is_empty() {
        return Ok(Verdict::Record(current));
    }
    Err(format!(
        "{event_type} changed incompatibly with its committed v{current} schema:\n  - {}\n\
         Stored v{current} payloads would no longer decode. Register an upcaster from \
         v{current} in UPCASTERS (domain/src/codec.rs), then record the v{} schema with `{RECORD_COMMAND}`.",
        breaks.join("\n  - "),
        current + 1
    ))
}

/// The payload schema of each event type of `E`, each a standalone document.
fn payload_schemas<E: DomainEvent + JsonSchema>() -> BTreeMap<&'static str, Value> {
    let root = serde_json::to_value(schemars::schema_for!(E)).expect("a schema is JSON");
    let variants = root
        .get("oneOf")
        .and_then(Value::as_array)
        .expect("event enums are tagged unions");
    E::EVENT_TYPES
        .iter()
        .map(|&event_type| {
            let data = variants
                .iter()
                .find(|variant| variant_name(variant) == Some(event_type))
                .and_then(|variant| variant.pointer("/properties/data"))
                .unwrap_or_else(|| panic!("{event_type} has no variant with data"));
            (event_type, standalone(event_type, data, &root))
        })
        .collect()
}

fn variant_name(variant: &Value) -> Option<&str> {
    let tag = variant.pointer("/properties/type")?;
    tag.get("const")
        .or_else(|| tag.pointer("/enum/0"))
        .and_then(Value::as_str)
}

/// `schema` with the definitions it refers to, and nothing else from `root`.
fn standalone(event_type: &str, schema: &Value, root: &Value) -> Value {
    let definitions = root.get("$defs").and_then(Value::as_object);
    let mut needed = BTreeMap::new();
    let mut pending = references(schema);
    while let Some(name) = pending.pop() {
        if needed.contains_key(&name) {
            continue;
        }
        if let Some(definition) = definitions.and_then(|d| d.get(&name)) {
            pending.extend(references(definition));
            needed.insert(name, definition.clone());
        }
    }
    let mut document = Map::new();
    document.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    document.insert("title".into(), json!(event_type));
    if let Value::Object(keywords) = schema {
        document.extend(keywords.clone());
    }
    if !needed.is_empty() {
        document.insert("$defs".into(), Value::Object(needed.into_iter().collect()));
    }
    let mut document = Value::Object(document);
    strip_descriptions(&mut document);
    document
}

/// Doc comments become `description`s; they say nothing about which payloads are valid, so
/// they are left out and editing a comment never asks for a schema to be recorded again.
fn strip_descriptions(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            // A property named `description` holds a schema (an object), never a string.
            if map.get("description").is_some_and(Value::is_string) {
                map.remove("description");
            }
            map.values_mut().for_each(strip_descriptions);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

fn references(schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![schema];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if let Some(name) = map
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                {
                    found.push(name.to_owned());
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

fn all_payload_schemas() -> BTreeMap<&'static str, Value> {
    let mut all = payload_schemas::<CustomerEvent>();
    all.extend(payload_schemas::<JobEvent>());
    all.extend(payload_schemas::<UserEvent>());
    all.extend(payload_schemas::<CrewMemberEvent>());
    all.extend(payload_schemas::<ThreadEvent>());
    all
}

fn file_of(event_type: &str, version: u32) -> PathBuf {
    schema_folder().join(format!("{event_type}.v{version}.json"))
}

fn committed(event_type: &str) -> BTreeMap<u32, Value> {
    let prefix = format!("{event_type}.v");
    let Ok(entries) = std::fs::read_dir(schema_folder()) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .strip_prefix(&prefix)?
                .strip_suffix(".json")?
                .parse()
                .ok()?;
            let text = std::fs::read_to_string(entry.path()).ok()?;
            let schema =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
            Some((version, schema))
        })
        .collect()
}

#[test]
fn schema_guard() {
    let record = std::env::var_os(RECORD_VARIABLE).is_some_and(|v| v == "1");
    let mut problems = Vec::new();
    for (event_type, generated) in all_payload_schemas() {
        let current = current_version(event_type);
        match verdict(event_type, current, &generated, &committed(event_type)) {
            Ok(Verdict::UpToDate) => {}
            Ok(Verdict::Record(version)) if record => {
                std::fs::create_dir_all(schema_folder()).expect("schema folder");
                let text = serde_json::to_string_pretty(&generated).expect("JSON") + "\n";
                std::fs::write(file_of(event_type, version), text).expect("schema written");
            }
            Ok(Verdict::Record(version)) => problems.push(format!(
                "{event_type} v{version}: its schema is not committed yet (or changed \
                 compatibly); record it with `{RECORD_COMMAND}` and commit domain/schemas/events/"
            )),
            Err(problem) => problems.push(problem),
        }
    }
    assert!(
        problems.is_empty(),
        "event schemas:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_committed_schema_belongs_to_a_known_event_type() {
    let known = all_payload_schemas();
    for entry in std::fs::read_dir(schema_folder()).expect("schema folder") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("UTF-8 name");
        let event_type = name.split(".v").next().unwrap_or_default();
        assert!(
            known.contains_key(event_type),
            "{name} is not the schema of a known event type"
        );
    }
}

#[test]
fn the_guard_refuses_an_incompatible_change_without_an_upcaster() {
    // JobScheduled's window gained a required time zone in v2. Pretend the upcaster was never
    // registered: the v2 shape judged as v1 must be refused, naming the new field.
    let generated = all_payload_schemas()["JobScheduled"].clone();
    let committed_v1 = BTreeMap::from([(1, committed("JobScheduled")[&1].clone())]);
    let error = verdict("JobScheduled", 1, &generated, &committed_v1).unwrap_err();
    assert!(error.contains("changed incompatibly"), "{error}");
    assert!(error.contains("time_zone: is now required"), "{error}");
    assert!(error.contains("Register an upcaster from v1"), "{error}");
}

#[test]
fn the_guard_accepts_the_change_once_an_upcaster_makes_it_a_new_version() {
    let generated = all_payload_schemas()["JobScheduled"].clone();
    let mut versions = committed("JobScheduled");
    assert_eq!(
        verdict("JobScheduled", 2, &generated, &versions),
        Ok(Verdict::UpToDate)
    );
    versions.remove(&2);
    assert_eq!(
        verdict("JobScheduled", 2, &generated, &versions),
        Ok(Verdict::Record(2))
    );
    versions.remove(&1);
    assert!(verdict("JobScheduled", 2, &generated, &versions)
        .unwrap_err()
        .contains("JobScheduled.v1.json is missing"));
}

#[test]
fn a_compatible_change_is_recorded_rather_than_refused() {
    let old = json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]});
    let new = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": ["integer", "null"]}}, "required": ["a"]});
    let committed = BTreeMap::from([(1, old)]);
    assert_eq!(
        verdict("Tested", 1, &new, &committed),
        Ok(Verdict::Record(1))
    );
}
