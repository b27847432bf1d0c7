//! Whether every payload one JSON Schema admits is also admitted by another.
//!
//! The check is conservative: it knows the keywords schemars writes for this crate's types
//! (`type`, `properties`, `required`, `additionalProperties`, `items`, `enum`, `const`,
//! `oneOf`/`anyOf`, `$ref`, `format`, `pattern` and numeric and length bounds) and calls any
//! other difference incompatible, so a false alarm is possible and a missed break is not.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Keywords that describe a value but never restrict it.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$defs",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Keywords compared by [`Checker::compare`] itself.
const UNDERSTOOD: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "oneOf",
    "anyOf",
    "$ref",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
];

/// Ways in which a payload valid under `old` may be invalid under `new`, each naming the
/// path where it happens (`$.window.time_zone`). Empty when `new` admits all of `old`.
pub(crate) fn incompatibilities(old: &Value, new: &Value) -> Vec<String> {
    let checker = Checker {
        old_root: old,
        new_root: new,
    };
    let mut found = Vec::new();
    checker.compare(old, new, "$", 0, &mut found);
    found
}

struct Checker<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
}

impl Checker<'_> {
    fn compare(&self, old: &Value, new: &Value, path: &str, depth: u32, out: &mut Vec<String>) {
        if depth > 64 {
            out.push(format!("{path}: nested too deeply to compare"));
            return;
        }
        let (old, new) = (resolve(self.old_root, old), resolve(self.new_root, new));
        if old == new || accepts_anything(new) {
            return;
        }
        let Some(new) = new.as_object() else {
            out.push(format!("{path}: now admits nothing"));
            return;
        };
        let old = match old {
            Value::Object(old) => old,
            _ => {
                out.push(format!("{path}: was unrestricted, is now restricted"));
                return;
            }
        };
        if let Some(alternatives) = alternatives(old) {
            let new_value = Value::Object(new.clone());
            for alternative in alternatives {
                self.compare(alternative, &new_value, path, depth + 1, out);
            }
            return;
        }
        if let Some(alternatives) = alternatives(new) {
            let old_value = Value::Object(old.clone());
            let fits = alternatives.iter().any(|alternative| {
                let mut found = Vec::new();
                self.compare(&old_value, alternative, path, depth + 1, &mut found);
                found.is_empty()
            });
            if !fits {
                out.push(format!(
                    "{path}: no alternative of the new schema admits the old one"
                ));
            }
            return;
        }
        self.compare_keywords(old, new, path, out);
        self.compare_types(old, new, path, out);
        self.compare_values(old, new, path, out);
        self.compare_bounds(old, new, path, out);
        self.compare_objects(old, new, path, depth, out);
        if let (Some(old_items), Some(new_items)) = (old.get("items"), new.get("items")) {
            self.compare(old_items, new_items, &format!("{path}[]"), depth + 1, out);
        } else if new.contains_key("items") {
            out.push(format!("{path}: items are now restricted"));
        }
    }

    fn compare_keywords(
        &self,
        old: &Map<String, Value>,
        new: &Map<String, Value>,
        path: &str,
        out: &mut Vec<String>,
    ) {
        for (keyword, value) in new {
            let known =
                UNDERSTOOD.contains(&keyword.as_str()) || ANNOTATIONS.contains(&keyword.as_str());
            if !known && old.get(keyword) != Some(value) {
                out.push(format!("{path}: keyword {keyword} changed"));
            }
        }
    }

    fn compare_types(
        &self,
        old: &Map<String, Value>,
        new: &Map<String, Value>,
        path: &str,
        out: &mut Vec<String>,
    ) {
        let Some(new_types) = types(new) else {
            return;
        };
        let Some(old_types) = types(old) else {
            out.push(format!("{path}: was any type, is now {}", join(&new_types)));
            return;
        };
        for old_type in &old_types {
            let admitted = new_types.contains(old_type)
                || (old_type == "integer" && new_types.contains("number"));
            if !admitted {
                out.push(format!(
                    "{path}: type {old_type} is no longer admitted (now {})",
                    join(&new_types)
                ));
            }
        }
    }

    fn compare_values(
        &self,
        old: &Map<String, Value>,
        new: &Map<String, Value>,
        path: &str,
        out: &mut Vec<String>,
    ) {
        let Some(new_values) = allowed_values(new) else {
            return;
        };
        match allowed_values(old) {
            None => out.push(format!(
                "{path}: now limited to {} values",
                new_values.len()
            )),
            Some(old_values) => {
                for value in old_values.iter().filter(|v| !new_values.contains(v)) {
                    out.push(format!("{path}: value {value} is no longer admitted"));
                }
            }
        }
    }

    fn compare_bounds(
        &self,
        old: &Map<String, Value>,
        new: &Map<String, Value>,
        path: &str,
        out: &mut Vec<String>,
    ) {
        for keyword in ["format", "pattern"] {
            if let Some(value) = new.get(keyword) {
                if old.get(keyword) != Some(value) {
                    out.push(format!("{path}: {keyword} is now {value}"));
                }
            }
        }
        for keyword in ["minimum", "minLength", "minItems"] {
            if let Some(new_min) = new.get(keyword).and_then(Value::as_f64) {
                if old
                    .get(keyword)
                    .and_then(Value::as_f64)
                    .is_none_or(|old_min| old_min < new_min)
                {
                    out.push(format!("{path}: {keyword} rose to {new_min}"));
                }
            }
        }
        for keyword in ["maximum", "maxLength", "maxItems"] {
            if let Some(new_max) = new.get(keyword).and_then(Value::as_f64) {
                if old
                    .get(keyword)
                    .and_then(Value::as_f64)
                    .is_none_or(|old_max| old_max > new_max)
                {
                    out.push(format!("{path}: {keyword} fell to {new_max}"));
                }
            }
        }
    }

    fn compare_objects(
        &self,
        old: &Map<String, Value>,
        new: &Map<String, Value>,
        path: &str,
        depth: u32,
        out: &mut Vec<String>,
    ) {
        let empty = Map::new();
        let old_properties = old
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let new_properties = new
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let old_required = names(old.get("required"));
        for field in names(new.get("required")) {
            if !old_required.contains(&field) {
                out.push(format!("{path}.{field}: is now required"));
            }
        }
        for (field, new_schema) in new_properties {
            if let Some(old_schema) = old_properties.get(field) {
                self.compare(
                    old_schema,
                    new_schema,
                    &format!("{path}.{field}"),
                    depth + 1,
                    out,
                );
            }
        }
        if new.get("additionalProperties") == Some(&Value::Bool(false)) {
            for field in old_properties
                .keys()
                .filter(|f| !new_properties.contains_key(*f))
            {
                out.push(format!("{path}.{field}: is no longer accepted"));
            }
        }
    }
}

/// Follows `$ref`s of the form `#/$defs/Name` within `root`.
fn resolve<'v>(root: &'v Value, mut schema: &'v Value) -> &'v Value {
    for _ in 0..32 {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let target = reference
            .strip_prefix("#/$defs/")
            .and_then(|name| root.get("$defs")?.get(name));
        match target {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

fn accepts_anything(schema: &Value) -> bool {
    match schema {
        Value::Bool(accepts) => *accepts,
        Value::Object(keywords) => keywords.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
        _ => false,
    }
}

fn alternatives(schema: &Map<String, Value>) -> Option<&Vec<Value>> {
    schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
}

fn types(schema: &Map<String, Value>) -> Option<BTreeSet<String>> {
    match schema.get("type")? {
        Value::String(one) => Some(BTreeSet::from([one.clone()])),
        Value::Array(many) => Some(
            many.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

fn allowed_values(schema: &Map<String, Value>) -> Option<Vec<Value>> {
    if let Some(value) = schema.get("const") {
        return Some(vec![value.clone()]);
    }
    schema.get("enum").and_then(Value::as_array).cloned()
}

fn names(list: Option<&Value>) -> BTreeSet<String> {
    list.and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn join(types: &BTreeSet<String>) -> String {
    types.iter().cloned().collect::<Vec<_>>().join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn window(extra: Value, required: Value) -> Value {
        let mut properties = json!({
            "start": {"type": "string", "format": "partial-date-time"},
            "end": {"type": "string", "format": "partial-date-time"},
        });
        for (k, v) in extra.as_object().unwrap() {
            properties[k] = v.clone();
        }
        json!({"type": "object", "properties": properties, "required": required})
    }

    #[test]
    fn the_same_schema_is_compatible() {
        let schema = window(json!({}), json!(["start", "end"]));
        assert!(incompatibilities(&schema, &schema).is_empty());
    }

    #[test]
    fn a_new_required_field_breaks_old_payloads() {
        let old = window(json!({}), json!(["start", "end"]));
        let new = window(
            json!({"time_zone": {"type": "string"}}),
            json!(["start", "end", "time_zone"]),
        );
        assert_eq!(
            incompatibilities(&old, &new),
            vec!["$.time_zone: is now required"]
        );
    }

    #[test]
    fn a_new_optional_field_does_not() {
        let old = window(json!({}), json!(["start", "end"]));
        let new = window(
            json!({"note": {"type": ["string", "null"]}}),
            json!(["start", "end"]),
        );
        assert!(incompatibilities(&old, &new).is_empty());
    }

    #[test]
    fn a_changed_type_or_a_dropped_enum_value_breaks() {
        let old = json!({"type": "object", "properties": {"n": {"type": "string"}, "s": {"enum": ["a", "b"]}}});
        let new = json!({"type": "object", "properties": {"n": {"type": "integer"}, "s": {"enum": ["a"]}}});
        let found = incompatibilities(&old, &new);
        assert!(
            found.iter().any(|f| f.starts_with("$.n: type string")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|f| f.starts_with("$.s: value \"b\"")),
            "{found:?}"
        );
    }

    #[test]
    fn widening_is_compatible_and_narrowing_is_not() {
        let int = json!({"type": "integer", "maximum": 10});
        let number = json!({"type": "number"});
        assert!(incompatibilities(&int, &number).is_empty());
        assert!(!incompatibilities(&number, &int).is_empty());
        let nullable = json!({"type": ["string", "null"]});
        assert!(incompatibilities(&json!({"type": "string"}), &nullable).is_empty());
        assert!(!incompatibilities(&nullable, &json!({"type": "string"})).is_empty());
    }

    #[test]
    fn references_are_followed_into_definitions() {
        let old =
            json!({"$defs": {"W": {"type": "object", "required": ["a"]}}, "$ref": "#/$defs/W"});
        let new = json!({"$defs": {"W": {"type": "object", "required": ["a", "b"]}}, "$ref": "#/$defs/W"});
        assert_eq!(incompatibilities(&old, &new), vec!["$.b: is now required"]);
    }

    #[test]
    fn an_unknown_keyword_that_changed_counts_as_a_break() {
        let old = json!({"type": "string"});
        let new = json!({"type": "string", "contentEncoding": "base64"});
        assert!(!incompatibilities(&old, &new).is_empty());
    }
}
