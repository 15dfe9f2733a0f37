//! The CRD's OpenAPI schema, checked offline: the generated
//! `openAPIV3Schema` is turned into a JSON Schema the `jsonschema` crate
//! evaluates, with the API server's structural-schema rules made explicit
//! (unknown fields are refused, as kubectl's strict field validation does,
//! except under `x-kubernetes-preserve-unknown-fields`; `nullable`;
//! `x-kubernetes-int-or-string`). `render` runs it before the CEL rules and
//! the operator's own, so that it refuses what the API server refuses.

use std::sync::OnceLock;

use jsonschema::{Draft, Validator};
use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::MessengerInstance;

/// The OpenAPI schema violations of a MessengerInstance, each as
/// `FIELD: problem`, stages named by their index and their name.
pub fn schema_errors(object: &Value) -> Vec<String> {
    validator()
        .iter_errors(object)
        .map(|error| {
            let path = field_path(object, error.instance_path().as_str());
            format!("{path}: {}", describe(&error))
        })
        .collect()
}

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::options()
            .with_draft(Draft::Draft4)
            .should_validate_formats(false)
            .build(&json_schema())
            .expect("the CRD's schema is a valid JSON Schema")
    })
}

/// The CRD's `openAPIV3Schema` as a JSON Schema.
pub fn json_schema() -> Value {
    let crd = MessengerInstance::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the generated CRD has an openAPIV3Schema");
    let mut value = serde_json::to_value(schema).expect("the schema serializes");
    // The API server checks these itself; the generated schema leaves them
    // out, or declares metadata without its fields.
    if let Some(Value::Object(properties)) = value.get_mut("properties") {
        properties.insert("apiVersion".into(), json!({"type": "string"}));
        properties.insert("kind".into(), json!({"type": "string"}));
        properties.insert(
            "metadata".into(),
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
    }
    structural(&mut value);
    value
}

/// Rewrites one schema node (and everything below it) so that a JSON Schema
/// validator judges it as the API server does.
fn structural(node: &mut Value) {
    let Some(map) = node.as_object_mut() else {
        return;
    };
    if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        map.remove("type");
        map.insert(
            "anyOf".into(),
            json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    if map.remove("nullable") == Some(Value::Bool(true)) {
        if let Some(Value::String(kind)) = map.get("type").cloned() {
            map.insert("type".into(), json!([kind, "null"]));
        }
        if let Some(Value::Array(allowed)) = map.get_mut("enum") {
            allowed.push(Value::Null);
        }
    }
    let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let is_object = map.get("type").and_then(Value::as_str) == Some("object")
        || map
            .get("type")
            .and_then(Value::as_array)
            .is_some_and(|kinds| kinds.contains(&json!("object")));
    if is_object && !preserves && !map.contains_key("additionalProperties") {
        // A structural schema prunes (strict field validation refuses)
        // every field it does not declare. An object without `properties`
        // or `additionalProperties` is left open: the generated schema has
        // none that holds data.
        if map.contains_key("properties") {
            map.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
    for key in ["properties", "patternProperties"] {
        if let Some(Value::Object(children)) = map.get_mut(key) {
            children.values_mut().for_each(structural);
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = map.get_mut(key) {
            structural(child);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(children)) = map.get_mut(key) {
            children.iter_mut().for_each(structural);
        }
    }
    map.retain(|key, _| !key.starts_with("x-kubernetes-"));
}

/// `/spec/stages/1/serverName` as `spec.stages[1].serverName (stage production)`.
fn field_path(object: &Value, pointer: &str) -> String {
    let mut path = String::new();
    let mut stage = None;
    let mut at = object;
    let segments: Vec<&str> = pointer.split('/').skip(1).collect();
    for (index, segment) in segments.iter().enumerate() {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        match segment.parse::<usize>() {
            Ok(position) if at.is_array() => {
                path.push_str(&format!("[{position}]"));
                at = &at[position];
                if segments[..index] == ["spec", "stages"] {
                    stage = at.get("name").and_then(Value::as_str).map(str::to_owned);
                }
            }
            _ => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&segment);
                at = &at[segment.as_str()];
            }
        }
    }
    if path.is_empty() {
        path.push_str("<root>");
    }
    match stage {
        Some(name) => format!("{path} (stage {name})"),
        None => path,
    }
}

/// The validator's message, with unknown fields said as kubectl says them.
fn describe(error: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind;
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => format!(
            "unknown field {}; check the spelling against `kubectl explain messengerinstance.spec` (the API server refuses unknown fields under strict field validation and drops them otherwise)",
            unexpected
                .iter()
                .map(|field| format!("{field:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(yaml: &str) -> Vec<String> {
        let value: Value = serde_saphyr::from_str(yaml).expect("test YAML parses");
        schema_errors(&value)
    }

    const HEAD: &str = "apiVersion: caduceus.dev/v1alpha1\nkind: MessengerInstance\nmetadata: {name: um, namespace: m}\n";

    #[test]
    fn a_valid_instance_passes() {
        assert_eq!(
            errors(&format!(
                "{HEAD}spec:\n  release: {{synapse: v1.163.2, elementWeb: v1.12.3}}\n  homeserver: {{settings: {{anything: {{goes: 1}}}}}}\n  locations: [{{name: a, tolerations: [{{key: k, operator: Exists}}]}}]\n  stages: [{{name: beta, serverName: beta.example.org, location: a}}]\n"
            )),
            Vec::<String>::new()
        );
    }

    #[test]
    fn what_the_api_server_refuses_is_refused() {
        let cases = [
            ("  stages: []\n", "spec.stages"),
            (
                "  stagez: []\n  stages: [{name: beta, serverName: a.example.org}]\n",
                "unknown field \"stagez\"",
            ),
            (
                "  database: {engine: cloudnative-pg, instances: 0}\n  stages: [{name: beta, serverName: a.example.org}]\n",
                "spec.database.instances",
            ),
            (
                "  stages: [{name: beta, serverName: a.example.org, colour: red}]\n",
                "spec.stages[0] (stage beta): unknown field \"colour\"",
            ),
            (
                "  stages: [{name: a, serverName: a.example.org}, {name: b, serverName: b.example.org}, {name: c, serverName: c.example.org}, {name: d, serverName: d.example.org}, {name: e, serverName: e.example.org}, {name: f, serverName: f.example.org}, {name: g, serverName: g.example.org}, {name: h, serverName: h.example.org}, {name: i, serverName: i.example.org}]\n",
                "spec.stages",
            ),
        ];
        for (spec, expected) in cases {
            let found = errors(&format!(
                "{HEAD}spec:\n  release: {{synapse: v1.163.2, elementWeb: v1.12.3}}\n{spec}"
            ));
            assert!(
                found.iter().any(|e| e.contains(expected)),
                "expected {expected:?} for\n{spec}\ngot {found:?}"
            );
        }
    }
}
