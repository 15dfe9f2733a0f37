//! The database engine a stage may run: the engine it already runs on (a
//! switch needs a migration, not a reconcile), with what that engine needs
//! (the external connection, CloudNativePG's CRDs in the cluster). Planned
//! from the observation, before anything of the stage is built.

use std::fmt;

use thiserror::Error;

use crate::api::{DatabaseEngine, MessengerInstanceSpec};

/// Why a stage's database cannot be provisioned as the spec says.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DatabaseError {
    #[error(
        "spec.database.engine is {wanted}, but stage {stage} runs on the {running} database: switching the engine of a running stage needs a migration, not a reconcile. \
         Set spec.database.engine back to {running}; to move to {wanted}, add a new stage with the new engine and restore a backup of {stage} into it (stages[].restore)"
    )]
    EngineSwitch {
        stage: String,
        wanted: EngineName,
        running: EngineName,
    },
    #[error(
        "spec.database.engine is external but spec.database.external is not set; add host, database, user and passwordSecretRef"
    )]
    ExternalMissing,
    #[error(
        "spec.database.engine is cloudnative-pg, but CloudNativePG's CRDs (postgresql.cnpg.io) are not installed in this cluster; install the CloudNativePG operator and restart Caduceus, or set spec.database.engine to managed"
    )]
    CloudNativePgMissing,
}

/// An engine in an error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineName(pub DatabaseEngine);

impl fmt::Display for EngineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(engine_name(self.0))
    }
}

/// The engine a stage's database runs on, from what exists: the engine
/// recorded in the stage's status, else the database objects found.
pub fn running_engine(
    recorded: Option<DatabaseEngine>,
    managed_exists: bool,
    cloudnative_pg_exists: bool,
) -> Option<DatabaseEngine> {
    recorded.or(match (managed_exists, cloudnative_pg_exists) {
        (true, _) => Some(DatabaseEngine::Managed),
        (false, true) => Some(DatabaseEngine::CloudnativePg),
        (false, false) => None,
    })
}

/// Whether the spec's engine can be provisioned for a stage: the engine it
/// already runs on (or any, for a new stage), with what that engine needs.
/// Call this before building: building the new engine's objects would prune
/// the old engine's workload.
pub fn check_engine(
    stage: &str,
    spec: &MessengerInstanceSpec,
    running: Option<DatabaseEngine>,
    cloudnative_pg_installed: bool,
) -> Result<(), DatabaseError> {
    let wanted = spec.database.engine;
    if let Some(running) = running
        && running != wanted
    {
        return Err(DatabaseError::EngineSwitch {
            stage: stage.to_owned(),
            wanted: EngineName(wanted),
            running: EngineName(running),
        });
    }
    match wanted {
        DatabaseEngine::External if spec.database.external.is_none() => {
            Err(DatabaseError::ExternalMissing)
        }
        DatabaseEngine::CloudnativePg if !cloudnative_pg_installed => {
            Err(DatabaseError::CloudNativePgMissing)
        }
        _ => Ok(()),
    }
}

/// The engine's name as written in `spec.database.engine`.
pub fn engine_name(engine: DatabaseEngine) -> &'static str {
    match engine {
        DatabaseEngine::Managed => "managed",
        DatabaseEngine::CloudnativePg => "cloudnative-pg",
        DatabaseEngine::External => "external",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::api::fixtures::spec_with_engine as spec;

    #[test]
    fn switching_the_engine_of_a_running_stage_is_refused_with_guidance() {
        let wanted = spec(DatabaseEngine::CloudnativePg);
        let error = check_engine("beta", &wanted, Some(DatabaseEngine::Managed), true).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("spec.database.engine is cloudnative-pg"),
            "{message}"
        );
        assert!(message.contains("back to managed"), "{message}");
        assert!(message.contains("stages[].restore"), "{message}");
        assert!(check_engine("beta", &wanted, Some(DatabaseEngine::CloudnativePg), true).is_ok());
        assert!(check_engine("beta", &wanted, None, true).is_ok());
        assert_eq!(
            check_engine("beta", &wanted, None, false),
            Err(DatabaseError::CloudNativePgMissing)
        );
        assert_eq!(
            check_engine("beta", &spec(DatabaseEngine::External), None, true),
            Err(DatabaseError::ExternalMissing)
        );
        assert_eq!(
            running_engine(None, true, false),
            Some(DatabaseEngine::Managed)
        );
        assert_eq!(
            running_engine(None, false, true),
            Some(DatabaseEngine::CloudnativePg)
        );
        assert_eq!(
            running_engine(Some(DatabaseEngine::External), true, false),
            Some(DatabaseEngine::External)
        );
        assert_eq!(running_engine(None, false, false), None);
    }
}
