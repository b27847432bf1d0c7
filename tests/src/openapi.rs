//! Reading a served OpenAPI document in tests: the operations it documents, where to send
//! a request for each, and the response schemas that say nothing of their content.

use std::collections::BTreeSet;

use serde_json::Value;

/// The methods a route may answer, as OpenAPI spells them.
pub const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every `(method, path template)` the document describes.
pub fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if item.get(method).is_some() {
                found.insert((method.to_owned(), path.clone()));
            }
        }
    }
    found
}

/// A concrete path for a template: every `{parameter}` becomes a (never registered) UUID.
pub fn concrete_path(template: &str) -> String {
    let mut path = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        path.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |i| open + i + 1);
        path.push_str("0190f000-0000-7000-8000-0000000c0de5");
        rest = &rest[close..];
    }
    path.push_str(rest);
    path
}

/// Where a response schema (after following `$ref`s) is an object without properties,
/// `additionalProperties` or composition: a body the document does not describe.
pub fn bare_objects(document: &Value) -> Vec<String> {
    let mut bare = Vec::new();
    for (method, path) in operations(document) {
        let responses = &document["paths"][&path][&method]["responses"];
        for (status, response) in responses.as_object().into_iter().flatten() {
            for (media, content) in response["content"].as_object().into_iter().flatten() {
                let at = format!("{method} {path} {status} {media}");
                let mut seen = BTreeSet::new();
                walk(document, &content["schema"], &at, &mut seen, &mut bare);
            }
        }
    }
    bare
}

fn walk(
    document: &Value,
    schema: &Value,
    at: &str,
    seen: &mut BTreeSet<String>,
    bare: &mut Vec<String>,
) {
    if let Some(reference) = schema["$ref"].as_str() {
        if seen.insert(reference.to_owned()) {
            let name = reference.trim_start_matches("#/components/schemas/");
            walk(
                document,
                &document["components"]["schemas"][name],
                at,
                seen,
                bare,
            );
        }
        return;
    }
    let Some(object) = schema.as_object() else {
        bare.push(format!("{at}: no schema"));
        return;
    };
    for key in ["oneOf", "anyOf", "allOf"] {
        for part in object
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // In `allOf` the other parts describe the body; a part that is only an open
            // object (a flattened map: "and other members") narrows nothing.
            if key == "allOf" && annotation_only(part) {
                continue;
            }
            walk(document, part, at, seen, bare);
        }
    }
    let is_object = match &schema["type"] {
        Value::String(kind) => kind == "object",
        Value::Array(kinds) => kinds.iter().any(|k| k == "object"),
        _ => false,
    };
    let composed = ["oneOf", "anyOf", "allOf"]
        .iter()
        .any(|k| object.contains_key(*k));
    let described =
        object.contains_key("properties") || object.contains_key("additionalProperties");
    let typed = object.contains_key("type") || object.contains_key("enum");
    if (is_object && !described) || (!typed && !composed) {
        bare.push(format!("{at}: {schema}"));
    }
    for property in object
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        walk(document, property.1, at, seen, bare);
    }
    if let Some(items) = object.get("items") {
        walk(document, items, at, seen, bare);
    }
    if let Some(extra) = object.get("additionalProperties").filter(|v| v.is_object()) {
        walk(document, extra, at, seen, bare);
    }
}

fn annotation_only(schema: &Value) -> bool {
    schema.as_object().is_some_and(|o| {
        o.iter().all(|(key, value)| {
            key == "description" || key == "title" || (key == "type" && value == "object")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn path_parameters_become_ids() {
        assert_eq!(
            concrete_path("/v1/jobs/{id}/crew/{crew_member_id}"),
            "/v1/jobs/0190f000-0000-7000-8000-0000000c0de5/crew/0190f000-0000-7000-8000-0000000c0de5"
        );
        assert_eq!(concrete_path("/metrics"), "/metrics");
    }

    #[test]
    fn an_object_without_properties_is_bare_and_a_described_one_is_not() {
        let document = json!({
            "paths": {"/a": {"get": {"responses": {"200": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Page"}
            }}}}}}},
            "components": {"schemas": {"Page": {"type": "object", "properties": {
                "data": {"type": "object"},
                "position": {"type": "integer"},
                "payload": {"type": "object", "additionalProperties": true}
            }}}}
        });
        let bare = bare_objects(&document);
        assert_eq!(bare.len(), 1, "{bare:?}");
        assert!(
            bare[0].starts_with("get /a 200 application/json"),
            "{bare:?}"
        );
    }
}
