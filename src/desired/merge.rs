//! The one merge rule of every free-form field (homeserver `settings`,
//! Element Web's `config`), as a JSON merge patch (RFC 7386): objects merge
//! key by key, anything else (scalars, lists) is replaced, and `null`
//! removes the key so that the program's own default applies.

use serde_json::Value;

/// Merges `overlay` into `base`.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                if value.is_null() {
                    base.remove(key);
                } else if let Some(existing) = base.get_mut(key) {
                    deep_merge(existing, value);
                } else {
                    base.insert(key.clone(), strip_nulls(value));
                }
            }
        }
        (base, overlay) => *base = strip_nulls(overlay),
    }
}

/// A copy without `null` object members: a removal has nothing to remove
/// when the key is new, and Synapse reads `key: null` differently from an
/// absent key in places.
fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_merge_and_the_overlay_wins() {
        let mut base = json!({"a": 1, "push": {"enabled": true, "include_content": false}});
        deep_merge(&mut base, &json!({"a": 2, "push": {"jitter_delay": "10s"}}));
        assert_eq!(
            base,
            json!({"a": 2, "push": {"enabled": true, "include_content": false, "jitter_delay": "10s"}})
        );
    }

    #[test]
    fn lists_and_scalars_are_replaced() {
        let mut base = json!({"list": [1, 2], "obj": {"x": 1}});
        deep_merge(&mut base, &json!({"list": [3], "obj": "text"}));
        assert_eq!(base, json!({"list": [3], "obj": "text"}));
    }

    #[test]
    fn null_removes_a_key_and_never_lands_in_the_output() {
        let mut base = json!({"presence": {"enabled": false}, "keep": true});
        deep_merge(
            &mut base,
            &json!({"presence": null, "new": {"x": null, "y": 1}}),
        );
        assert_eq!(base, json!({"keep": true, "new": {"y": 1}}));
    }
}
