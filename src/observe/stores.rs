//! The kinds of child objects the operator writes, and the caches (reflector
//! stores) of them that reconciles read instead of asking the API server.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::desired::database::cloudnative_pg_cluster_resource;
use crate::names::{BACKUP_COMPONENT, RESTORE_COMPONENT};
use crate::names::{COMPONENT_LABEL, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER};

/// Every kind of child, watched and pruned. A kind the builders produce but
/// that is missing here is never pruned and never triggers a reconcile; the
/// control-plane tests catch that. CloudNativePG's Cluster is watched only
/// where its CRD is installed (found by discovery at startup), so the
/// operator runs in clusters without CloudNativePG.
pub fn child_kinds(cloudnative_pg: bool) -> Vec<ApiResource> {
    let mut kinds = vec![
        erase::<ConfigMap>(),
        erase::<Secret>(),
        erase::<Service>(),
        erase::<PersistentVolumeClaim>(),
        erase::<StatefulSet>(),
        erase::<Deployment>(),
        erase::<Ingress>(),
        erase::<NetworkPolicy>(),
        erase::<PodDisruptionBudget>(),
        erase::<CronJob>(),
        erase::<Job>(),
        // Only backup and restore pods (see `watch_selector`): their
        // termination messages carry the scripts' results.
        erase::<Pod>(),
    ];
    if cloudnative_pg {
        kinds.push(cloudnative_pg_cluster_resource());
    }
    kinds
}

/// The label selector of the watch of one kind: Pods are watched only for
/// backup and restore results; every other kind as `managed_selector`.
pub fn watch_selector(resource: &ApiResource) -> String {
    if resource.kind == "Pod" && resource.group.is_empty() {
        format!(
            "{},{COMPONENT_LABEL} in ({}, {})",
            managed_selector(),
            BACKUP_COMPONENT,
            RESTORE_COMPONENT
        )
    } else {
        managed_selector()
    }
}

/// Whether CloudNativePG's Cluster CRD is served, from API discovery.
pub async fn cloudnative_pg_installed(client: &kube::Client) -> bool {
    let resource = cloudnative_pg_cluster_resource();
    match client.list_api_group_resources(&resource.api_version).await {
        Ok(list) => list.resources.iter().any(|r| r.name == resource.plural),
        Err(error) => {
            tracing::info!(%error, "CloudNativePG is not installed; the cloudnative-pg database engine is unavailable");
            false
        }
    }
}

fn erase<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// The label selector of every watch: only objects the operator manages.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGER}")
}

/// The caches of every child kind.
#[derive(Clone)]
pub struct ChildStores {
    stores: Vec<(ApiResource, Store<DynamicObject>)>,
    ready: tokio::sync::watch::Receiver<bool>,
}

impl ChildStores {
    /// The caches of `stores`. Their readiness is awaited once, here, and
    /// shared through a watch channel: kube-runtime's own readiness future
    /// wakes only its most recent waiter, so concurrent reconciles waiting
    /// on it directly would hang.
    pub fn new(stores: Vec<(ApiResource, Store<DynamicObject>)>) -> Self {
        let (ready_tx, ready) = tokio::sync::watch::channel(false);
        let waiting: Vec<Store<DynamicObject>> =
            stores.iter().map(|(_, store)| store.clone()).collect();
        tokio::spawn(async move {
            for store in waiting {
                // The writer lives as long as the controller; if it is gone
                // the controller is shutting down.
                let _ = store.wait_until_ready().await;
            }
            let _ = ready_tx.send(true);
        });
        Self { stores, ready }
    }

    /// Whether a kind is watched, for example CloudNativePG's Cluster only
    /// where its CRD is installed.
    pub fn watches(&self, resource: &ApiResource) -> bool {
        self.store(resource).is_some()
    }

    fn store(&self, resource: &ApiResource) -> Option<&Store<DynamicObject>> {
        self.stores
            .iter()
            .find(|(kind, _)| kind.kind == resource.kind && kind.group == resource.group)
            .map(|(_, store)| store)
    }

    /// Waits until every cache holds its first complete listing, so a
    /// reconcile never mistakes a cold cache for missing objects.
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.clone();
        // An error means the controller is shutting down; reads then see no
        // objects.
        let _ = ready.wait_for(|ready| *ready).await;
    }

    /// The cached object, if any.
    pub fn get(
        &self,
        resource: &ApiResource,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<DynamicObject>> {
        let key = ObjectRef::new_with(name, resource.clone()).within(namespace);
        self.store(resource)?.get(&key)
    }

    /// A cached object parsed as its typed kind.
    pub fn get_typed<K>(&self, namespace: &str, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = ()> + serde::de::DeserializeOwned,
    {
        let object = self.get(&erase::<K>(), namespace, name)?;
        (*object).clone().try_parse::<K>().ok()
    }

    /// Every cached object of an instance, by kind.
    pub fn of_instance(
        &self,
        namespace: &str,
        instance: &str,
    ) -> Vec<(ApiResource, Arc<DynamicObject>)> {
        self.stores
            .iter()
            .flat_map(|(resource, store)| {
                store
                    .state()
                    .into_iter()
                    .filter(|object| {
                        object.metadata.namespace.as_deref() == Some(namespace)
                            && object
                                .metadata
                                .labels
                                .as_ref()
                                .and_then(|labels| labels.get(INSTANCE_LABEL))
                                .map(String::as_str)
                                == Some(instance)
                    })
                    .map(|object| (resource.clone(), object))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudnative_pg_is_watched_only_where_installed() {
        let is_cluster = |r: &ApiResource| r.group == "postgresql.cnpg.io" && r.kind == "Cluster";
        assert!(!child_kinds(false).iter().any(is_cluster));
        assert!(child_kinds(true).iter().any(is_cluster));
        for kind in ["CronJob", "Job", "Pod"] {
            assert!(
                child_kinds(false).iter().any(|r| r.kind == kind),
                "{kind} is watched"
            );
        }
    }

    #[test]
    fn only_backup_and_restore_pods_are_watched() {
        let pod = erase::<Pod>();
        assert_eq!(
            watch_selector(&pod),
            "app.kubernetes.io/managed-by=caduceus,app.kubernetes.io/component in (backup, restore)"
        );
        assert_eq!(watch_selector(&erase::<Job>()), managed_selector());
    }
}
