//! Whether a stage's workloads run their current spec and are ready, read
//! from their observed status (Synapse's StatefulSet and the database of
//! each engine).

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::DynamicObject;

use crate::api::DatabaseEngine;

/// Whether a StatefulSet runs its current spec with every replica ready, and
/// if not, what it waits for.
pub fn stateful_set_readiness(set: Option<&StatefulSet>) -> Result<(), String> {
    let Some(set) = set else {
        return Err("the StatefulSet does not exist yet".into());
    };
    let wanted = set
        .spec
        .as_ref()
        .and_then(|spec| spec.replicas)
        .unwrap_or(1);
    let generation = set.metadata.generation.unwrap_or_default();
    let Some(status) = &set.status else {
        return Err("the StatefulSet reports no status yet".into());
    };
    if status.observed_generation.unwrap_or_default() < generation {
        return Err("the StatefulSet controller has not seen the latest spec yet".into());
    }
    let ready = status.ready_replicas.unwrap_or_default();
    let updated = status.updated_replicas.unwrap_or_default();
    if updated < wanted {
        return Err(format!("{updated}/{wanted} pods run the current spec"));
    }
    if ready < wanted {
        return Err(format!("{ready}/{wanted} pods ready"));
    }
    Ok(())
}

/// Whether a CloudNativePG Cluster reports condition `Ready=True` for its
/// current spec, and if not, what it waits for.
pub fn cloudnative_pg_readiness(cluster: Option<&DynamicObject>) -> Result<(), String> {
    let Some(cluster) = cluster else {
        return Err("the CloudNativePG Cluster does not exist yet".into());
    };
    let status = &cluster.data["status"];
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let ready = conditions.iter().find(|c| c["type"] == "Ready");
    match ready {
        Some(condition) if condition["status"] == "True" => {
            let generation = cluster.metadata.generation.unwrap_or_default();
            match condition["observedGeneration"].as_i64() {
                Some(observed) if observed < generation => {
                    Err("CloudNativePG has not seen the Cluster's latest spec yet".into())
                }
                _ => Ok(()),
            }
        }
        Some(condition) => Err(format!(
            "the CloudNativePG Cluster is not ready: {}",
            condition["message"]
                .as_str()
                .or(status["phase"].as_str())
                .unwrap_or("no reason given")
        )),
        None => Err(format!(
            "the CloudNativePG Cluster reports no Ready condition yet (phase: {})",
            status["phase"].as_str().unwrap_or("none")
        )),
    }
}

/// Whether a stage's database is ready, for its engine. An external
/// database is outside the operator's view and counts as ready; Synapse's
/// own readiness shows whether it connects.
pub fn database_readiness(
    engine: DatabaseEngine,
    managed: Option<&StatefulSet>,
    cluster: Option<&DynamicObject>,
) -> Result<(), String> {
    match engine {
        DatabaseEngine::Managed => {
            stateful_set_readiness(managed).map_err(|waiting| format!("the database: {waiting}"))
        }
        DatabaseEngine::CloudnativePg => cloudnative_pg_readiness(cluster),
        DatabaseEngine::External => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{StatefulSetSpec, StatefulSetStatus};

    use serde_json::json;

    use super::*;
    use crate::desired::database::cloudnative_pg_cluster;
    use crate::desired::placement::PodPlacement;
    use crate::names::StageNames;

    fn names() -> StageNames {
        StageNames::new("umessenger", "beta")
    }

    use crate::api::fixtures::spec_with_engine as spec;

    #[test]
    fn stateful_set_readiness_needs_current_ready_replicas() {
        let mut set = StatefulSet {
            spec: Some(StatefulSetSpec {
                replicas: Some(1),
                ..StatefulSetSpec::default()
            }),
            ..StatefulSet::default()
        };
        set.metadata.generation = Some(2);
        assert!(stateful_set_readiness(None).is_err());
        assert!(stateful_set_readiness(Some(&set)).is_err());
        set.status = Some(StatefulSetStatus {
            observed_generation: Some(1),
            ready_replicas: Some(1),
            updated_replicas: Some(1),
            replicas: 1,
            ..StatefulSetStatus::default()
        });
        assert!(stateful_set_readiness(Some(&set)).is_err());
        set.status.as_mut().unwrap().observed_generation = Some(2);
        assert_eq!(stateful_set_readiness(Some(&set)), Ok(()));
    }

    #[test]
    fn cloudnative_pg_readiness_follows_the_ready_condition() {
        let mut cluster = cloudnative_pg_cluster(
            &spec(DatabaseEngine::CloudnativePg),
            &names(),
            "ns",
            &PodPlacement::default(),
        );
        assert!(cloudnative_pg_readiness(None).is_err());
        assert!(
            cloudnative_pg_readiness(Some(&cluster))
                .unwrap_err()
                .contains("no Ready condition")
        );
        cluster.data["status"] = json!({"phase": "Setting up primary", "conditions": [
            {"type": "Ready", "status": "False", "message": "Cluster Is Not Ready"}
        ]});
        assert!(
            cloudnative_pg_readiness(Some(&cluster))
                .unwrap_err()
                .contains("Cluster Is Not Ready")
        );
        cluster.data["status"]["conditions"][0]["status"] = "True".into();
        assert_eq!(cloudnative_pg_readiness(Some(&cluster)), Ok(()));
        assert_eq!(
            database_readiness(DatabaseEngine::CloudnativePg, None, Some(&cluster)),
            Ok(())
        );
        assert!(database_readiness(DatabaseEngine::Managed, None, None).is_err());
        assert_eq!(
            database_readiness(DatabaseEngine::External, None, None),
            Ok(())
        );
    }
}
