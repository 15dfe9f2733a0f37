//! String-shaped values of the API (durations, sizes, versions, host names),
//! each with a schema whose CEL rule explains a bad value at admission and a
//! parser the operator uses, so the two agree on what is valid.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A string schema carrying one CEL rule and the message shown when it fails.
fn string_with_rule(description: &str, max_length: u32, rule: &str, message: &str) -> Schema {
    json_schema!({
        "type": "string",
        "description": description,
        // A bound on the length keeps the CEL rule's estimated cost within
        // the API server's budget.
        "maxLength": max_length,
        // The message quotes the value (the API server otherwise shows
        // "string" in its place).
        "x-kubernetes-validations": [{
            "rule": rule,
            "message": message,
            "messageExpression": format!("'\"' + self + '\" {}'", cel_string_body(message)),
        }],
    })
}

/// Text inside a single-quoted CEL string literal.
fn cel_string_body(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "\\'")
}

macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident, $description:expr, $max_length:expr, $rule:expr, $message:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                string_with_rule($description, $max_length, $rule, $message)
            }
        }
    };
}

/// The duration grammar of the API: a whole number and one unit. Synapse's
/// `parse_duration` reads the same with s, m, h, d, w and y; milliseconds
/// are handed to Synapse as plain numbers, which it reads as milliseconds.
pub const DURATION_PATTERN: &str = "^[0-9]+(ms|s|m|h|d|w|y)$";

string_value!(
    /// A duration such as `90d`, `168h` or `30m` (units ms, s, m, h, d, w, y).
    Duration,
    "A duration: a whole number and one unit of ms, s, m, h, d, w or y, for example 90d, 168h or 30m.",
    16,
    DURATION_RULE,
    DURATION_MESSAGE
);

/// The CEL rule of a duration, also used where a field adds rules of its own.
pub const DURATION_RULE: &str = "self.matches('^[0-9]+(ms|s|m|h|d|w|y)$')";
/// The message of `DURATION_RULE`.
pub const DURATION_MESSAGE: &str = "must be a duration: a whole number and one unit of ms, s, m, h, d, w or y, for example 90d, 168h or 30m";

string_value!(
    /// A storage size in Kubernetes quantity notation, such as `20Gi`.
    StorageSize,
    "A storage size in Kubernetes quantity notation, for example 20Gi or 500Mi.",
    32,
    "self.matches('^[0-9]+(\\\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$') && !self.matches('^[0.]+[A-Za-z]*$')",
    "must be a storage size larger than zero, such as 20Gi, 500Mi or 1Ti"
);

string_value!(
    /// A release version tag such as `v1.163.2`.
    Version,
    "A release tag: v, then major.minor.patch, for example v1.163.2 (an rc suffix such as v1.164.0rc1 is allowed).",
    32,
    "self.matches('^v[0-9]+\\\\.[0-9]+\\\\.[0-9]+(rc[0-9]+)?$')",
    "must be a release tag such as v1.163.2"
);

string_value!(
    /// A DNS host name, such as `messenger.example.org`.
    Hostname,
    "A fully qualified DNS host name, for example messenger.example.org.",
    253,
    HOSTNAME_RULE,
    HOSTNAME_MESSAGE
);

/// The CEL rule of a host name, also used where a field adds rules of its own.
pub const HOSTNAME_RULE: &str = "self.size() <= 253 && self.matches('^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\\\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$')";
/// The message of `HOSTNAME_RULE`.
pub const HOSTNAME_MESSAGE: &str =
    "must be a lowercase DNS host name such as messenger.example.org";

/// The CEL rule of a Kubernetes object name (an RFC 1123 subdomain).
pub const OBJECT_NAME_RULE: &str =
    "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')";
/// The message of `OBJECT_NAME_RULE`.
pub const OBJECT_NAME_MESSAGE: &str = "must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters";

/// The schema of a field naming a Kubernetes object (a Secret, an
/// IngressClass): the API server refuses any other name when the operator
/// applies the object that refers to it, so it is refused here first.
pub fn object_name_schema(_: &mut SchemaGenerator) -> Schema {
    string_with_rule(
        "The name of a Kubernetes object.",
        253,
        OBJECT_NAME_RULE,
        OBJECT_NAME_MESSAGE,
    )
}

/// `object_name_schema` for an optional field.
pub fn optional_object_name_schema(generator: &mut SchemaGenerator) -> Schema {
    object_name_schema(generator)
}

/// The schema of a key inside a Secret.
pub fn secret_key_schema(_: &mut SchemaGenerator) -> Schema {
    string_with_rule(
        "A key of the Secret's data.",
        253,
        "self.matches('^[-._a-zA-Z0-9]+$')",
        "must be a Secret key: letters, digits, '-', '_' and '.'",
    )
}

/// The longest duration the API accepts. Soak times, windows, lifetimes
/// are all far below it, and checked against it before any arithmetic, so
/// no millisecond sum overflows.
pub const MAX_DURATION: &str = "100y";
/// `MAX_DURATION` in milliseconds.
pub const MAX_DURATION_MILLIS: u64 = 100 * 365 * 86_400_000;

impl Duration {
    /// The duration in milliseconds; `None` when the text is not a duration.
    pub fn millis(&self) -> Option<u64> {
        parse_duration_millis(&self.0)
    }
}

/// Parses `DURATION_PATTERN` text into milliseconds, with Synapse's units
/// (a year is 365 days).
pub fn parse_duration_millis(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "y" => 365 * 86_400_000,
        _ => return None,
    };
    number.checked_mul(unit_ms)
}

/// Whether `text` has the shape of a duration (digits and a unit), even if
/// its number is too large to compute with: such a value is "too large",
/// not "not a duration".
pub fn is_duration_shaped(text: &str) -> bool {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
    split > 0 && matches!(&text[split..], "ms" | "s" | "m" | "h" | "d" | "w" | "y")
}

/// Whether `text` is a DNS label (RFC 1123), the rule for names of stages
/// and locations.
pub fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_synapse_units() {
        assert_eq!(parse_duration_millis("90d"), Some(90 * 86_400_000));
        assert_eq!(parse_duration_millis("168h"), Some(168 * 3_600_000));
        assert_eq!(parse_duration_millis("250ms"), Some(250));
        assert_eq!(parse_duration_millis("1y"), Some(365 * 86_400_000));
        assert_eq!(parse_duration_millis("90"), None);
        assert_eq!(parse_duration_millis("d"), None);
        assert_eq!(parse_duration_millis("1d2h"), None);
        assert_eq!(parse_duration_millis("99999999999999999999d"), None);
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("beta"));
        assert!(is_dns_label("prod-2"));
        assert!(!is_dns_label("Beta"));
        assert!(!is_dns_label("-beta"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label(&"a".repeat(64)));
    }
}
