//! Specs the unit tests of several layers start from.

use super::{Database, DatabaseEngine, MessengerInstanceSpec};

/// A spec that differs from the default only in its database engine.
pub fn spec_with_engine(engine: DatabaseEngine) -> MessengerInstanceSpec {
    MessengerInstanceSpec {
        database: Database {
            engine,
            ..Database::default()
        },
        ..MessengerInstanceSpec::default()
    }
}

/// A spec with one stage `beta` from the YAML of `spec.homeserver` and the
/// stage's `homeserver` (either may be empty).
pub fn spec_with_homeserver(homeserver: &str, stage_homeserver: &str) -> MessengerInstanceSpec {
    let stage_homeserver = if stage_homeserver.is_empty() {
        String::new()
    } else {
        format!(", homeserver: {stage_homeserver}")
    };
    let yaml = format!(
        "release: {{synapse: v1.163.2, elementWeb: v1.12.3}}\n\
         homeserver: {homeserver}\n\
         stages:\n- {{name: beta, serverName: beta.example.org{stage_homeserver}}}\n"
    );
    serde_saphyr::from_str(&yaml).expect("test spec parses")
}
