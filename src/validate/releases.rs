//! Whether the operator can vouch for a stage's Synapse release: the schema
//! table (`plan::rollout::schema`) is what keeps a rolled-back Synapse off a
//! database it cannot read, so a release the table does not list disables
//! that guard. Such a release is refused unless the spec acknowledges it.

use crate::plan::rollout::schema::{SYNAPSE_SCHEMAS, versions};

/// What the operator knows of a Synapse release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseSupport {
    /// In the schema table: rollbacks are checked against the database.
    Listed,
    /// Not in the table, and the spec says to run it anyway.
    AcknowledgedUnlisted { warning: String },
    /// Not in the table: the stage is refused.
    Unlisted { message: String },
}

/// The one place that says whether a Synapse release is known. Everything
/// that needs the answer asks here, so that a later source (for example the
/// schema version read from the image itself) only changes this function.
pub fn release_support(
    stage: &str,
    field: &str,
    synapse: &str,
    acknowledged: bool,
) -> ReleaseSupport {
    if versions(synapse).is_some() {
        return ReleaseSupport::Listed;
    }
    let range = table_range();
    if acknowledged {
        ReleaseSupport::AcknowledgedUnlisted {
            warning: format!(
                "stage {stage}: {field} {synapse} is not in the operator's schema table ({range}); it runs as acknowledged, but rollbacks of this stage are not checked against its database schema"
            ),
        }
    } else {
        ReleaseSupport::Unlisted {
            message: format!(
                "stage {stage}: {field} {synapse} is not in the operator's schema table ({range}), so the operator cannot check that a rollback keeps Synapse on a database schema it can read; use a listed release (`caduceus releases`), or set acknowledgeUnlisted: true next to it to run it anyway"
            ),
        }
    }
}

/// `v1.90.0 to v1.163.2 (21 releases)`.
fn table_range() -> String {
    match (SYNAPSE_SCHEMAS.first(), SYNAPSE_SCHEMAS.last()) {
        (Some(first), Some(last)) => format!(
            "it lists {} releases from {} to {}",
            SYNAPSE_SCHEMAS.len(),
            first.0,
            last.0
        ),
        _ => "it lists no release".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_unlisted_and_acknowledged() {
        let field = "spec.release.synapse";
        assert_eq!(
            release_support("beta", field, "v1.163.2", false),
            ReleaseSupport::Listed
        );
        let ReleaseSupport::Unlisted { message } = release_support("beta", field, "v1.80.0", false)
        else {
            panic!("an old release is unlisted")
        };
        for part in [
            "stage beta",
            "spec.release.synapse v1.80.0",
            "from v1.90.0 to v1.163.2",
            "acknowledgeUnlisted: true",
        ] {
            assert!(message.contains(part), "{part:?} in {message}");
        }
        assert!(matches!(
            release_support("beta", field, "v9.0.0", true),
            ReleaseSupport::AcknowledgedUnlisted { .. }
        ));
    }
}
