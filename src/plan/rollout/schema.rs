//! Which database schema each supported Synapse release needs, so that a
//! stage never runs a Synapse older than its database allows.
//!
//! `schema` is the release's `SCHEMA_VERSION` (the newest schema it knows);
//! `compat` is its `SCHEMA_COMPAT_VERSION` (once it has run, no Synapse whose
//! `SCHEMA_VERSION` is below this may run on the database). `hack/test.sh`
//! checks this table against the real releases on PyPI with
//! `hack/synapse-schema.py $(caduceus releases --versions)`.

/// `(release, SCHEMA_VERSION, SCHEMA_COMPAT_VERSION)`, oldest first.
pub const SYNAPSE_SCHEMAS: &[(&str, u32, u32)] = &[
    ("v1.90.0", 80, 76),
    ("v1.98.0", 83, 83),
    ("v1.100.0", 84, 83),
    ("v1.110.0", 85, 84),
    ("v1.120.0", 88, 84),
    ("v1.130.0", 92, 84),
    ("v1.140.0", 92, 84),
    ("v1.150.0", 93, 84),
    ("v1.155.0", 94, 84),
    ("v1.156.0", 94, 84),
    ("v1.157.0", 94, 84),
    ("v1.157.1", 94, 84),
    ("v1.157.2", 94, 84),
    ("v1.158.0", 94, 84),
    ("v1.159.0", 94, 84),
    ("v1.160.0", 94, 84),
    ("v1.161.0", 94, 84),
    ("v1.162.0", 94, 84),
    ("v1.163.0", 94, 84),
    ("v1.163.1", 94, 84),
    ("v1.163.2", 94, 84),
];

/// `(SCHEMA_VERSION, SCHEMA_COMPAT_VERSION)` of a known release.
pub fn versions(release: &str) -> Option<(u32, u32)> {
    SYNAPSE_SCHEMAS
        .iter()
        .find(|(known, _, _)| *known == release)
        .map(|(_, schema, compat)| (*schema, *compat))
}

/// The oldest known release that can run on a database whose compatibility
/// version is `compat`.
pub fn oldest_supporting(compat: u32) -> Option<&'static str> {
    SYNAPSE_SCHEMAS
        .iter()
        .find(|(_, schema, _)| *schema >= compat)
        .map(|(release, _, _)| *release)
}

/// The table as `hack/synapse-schema.py` prints it.
pub fn table() -> String {
    SYNAPSE_SCHEMAS
        .iter()
        .map(|(release, schema, compat)| format!("{release} {schema} {compat}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(versions("v1.163.2"), Some((94, 84)));
        assert_eq!(versions("v9.9.9"), None);
        assert_eq!(oldest_supporting(84), Some("v1.100.0"));
        assert_eq!(oldest_supporting(95), None);
    }

    #[test]
    fn the_table_is_ordered_and_consistent() {
        for pair in SYNAPSE_SCHEMAS.windows(2) {
            assert!(
                pair[0].1 <= pair[1].1,
                "{pair:?}: schema versions only grow"
            );
        }
        assert!(
            SYNAPSE_SCHEMAS
                .iter()
                .all(|(_, schema, compat)| compat <= schema)
        );
    }
}
