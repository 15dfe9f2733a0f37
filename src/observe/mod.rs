//! Observe: every cache read for an instance, in one place, producing plain
//! values of what exists. Everything after this step works on those values,
//! so planning is pure, and `render` plans from an empty observation.

pub mod jobs;
pub mod readiness;
pub mod referenced;
pub mod stores;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{ApiResource, DynamicObject};
use kube::{Resource, ResourceExt};

use self::stores::ChildStores;
use crate::desired::Child;
use crate::desired::database::cloudnative_pg_cluster_resource;
use crate::names::{STAGE_LABEL, StageNames};

/// What exists of one stage, as the caches hold it.
#[derive(Clone, Debug, Default)]
pub struct StageObservation {
    /// The stage's keys Secret (its identity).
    pub keys_secret: Option<Secret>,
    pub synapse: Option<StatefulSet>,
    pub media: Option<PersistentVolumeClaim>,
    /// The managed PostgreSQL StatefulSet.
    pub database: Option<StatefulSet>,
    /// CloudNativePG's Cluster of the stage.
    pub cluster: Option<DynamicObject>,
    /// Whether CloudNativePG's Cluster is watched (its CRD is installed).
    pub cloudnative_pg_installed: bool,
    /// The stage's Jobs (backups, restores, smoke tests).
    pub jobs: Vec<Job>,
    /// The stage's backup and restore pods, whose termination messages
    /// carry the scripts' results.
    pub pods: Vec<Pod>,
}

impl StageObservation {
    /// The stage's Job of this name.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs
            .iter()
            .find(|job| job.metadata.name.as_deref() == Some(name))
    }
}

/// What exists of an instance: each stage's observation (in spec order) and
/// every cached object labelled with the instance, for pruning.
#[derive(Clone, Debug, Default)]
pub struct InstanceObservation {
    pub stages: Vec<StageObservation>,
    pub objects: Vec<(ApiResource, Arc<DynamicObject>)>,
}

/// Reads everything the reconcile of `instance` needs from the caches.
pub fn observe_instance(
    stores: &ChildStores,
    namespace: &str,
    instance: &crate::api::MessengerInstance,
) -> InstanceObservation {
    let name = instance.name_any();
    let objects = instance_objects(stores, namespace, &name);
    let stages = instance
        .spec
        .stages
        .iter()
        .map(|stage| {
            let names = StageNames::new(&name, &stage.name);
            observe_stage(stores, namespace, &names, &objects)
        })
        .collect();
    InstanceObservation { stages, objects }
}

/// Every cached object labelled with the instance, by kind.
pub fn instance_objects(
    stores: &ChildStores,
    namespace: &str,
    instance: &str,
) -> Vec<(ApiResource, Arc<DynamicObject>)> {
    stores.of_instance(namespace, instance)
}

/// The cached live object of a desired child, to skip applying what already
/// matches.
pub fn live(stores: &ChildStores, child: &Child) -> Option<Arc<DynamicObject>> {
    stores.get(
        &child.resource,
        child
            .object
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default(),
        child.object.metadata.name.as_deref().unwrap_or_default(),
    )
}

fn observe_stage(
    stores: &ChildStores,
    namespace: &str,
    names: &StageNames,
    objects: &[(ApiResource, Arc<DynamicObject>)],
) -> StageObservation {
    let cluster_kind = cloudnative_pg_cluster_resource();
    StageObservation {
        keys_secret: stores.get_typed(namespace, &names.keys_secret()),
        synapse: stores.get_typed(namespace, &names.synapse()),
        media: stores.get_typed(namespace, &names.media()),
        database: stores.get_typed(namespace, &names.database()),
        cluster: stores
            .get(&cluster_kind, namespace, &names.database())
            .map(|cluster| (*cluster).clone()),
        cloudnative_pg_installed: stores.watches(&cluster_kind),
        jobs: stage_objects(objects, &names.stage),
        pods: stage_objects(objects, &names.stage),
    }
}

/// The cached objects of one kind that belong to a stage.
fn stage_objects<K>(objects: &[(ApiResource, Arc<DynamicObject>)], stage: &str) -> Vec<K>
where
    K: Resource<DynamicType = ()> + serde::de::DeserializeOwned,
{
    let kind = K::kind(&());
    objects
        .iter()
        .filter(|(resource, object)| {
            resource.kind == kind
                && object.labels().get(STAGE_LABEL).map(String::as_str) == Some(stage)
        })
        .filter_map(|(_, object)| (**object).clone().try_parse::<K>().ok())
        .collect()
}
