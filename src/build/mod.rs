//! Pure builders: spec plus observed facts in, desired objects out. Nothing
//! here talks to a cluster, so `caduceus render` and the controller build the
//! very same objects.

pub mod database;
pub mod homeserver;
pub mod keys;
pub mod names;
pub mod pod;
pub mod synapse;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject};
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::api::{MessengerInstance, Release, Stage};

use self::homeserver::HomeserverError;
use self::keys::StageSecrets;
use self::names::{DESIRED_HASH_ANNOTATION, StageNames};

/// Why the desired objects of a stage cannot be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("stage {stage}: {source}")]
    Homeserver {
        stage: String,
        #[source]
        source: HomeserverError,
    },
    #[error("metadata.namespace is not set; render needs the instance's namespace (set it in the file or pass --namespace)")]
    MissingNamespace,
}

/// What the builder needs to know about one stage beyond the spec.
#[derive(Clone, Debug)]
pub struct StageInputs<'a> {
    pub stage: &'a Stage,
    /// The stage's secret values, from its keys Secret.
    pub secrets: &'a StageSecrets,
    /// The release the stage runs now (the rollout decides when it moves).
    pub release: Release,
}

/// Every object of one stage that is applied with server-side apply. The
/// fields are destructured without `..` in `into_children`, so a new kind
/// that is not applied fails to compile.
#[derive(Clone, Debug)]
pub struct StageResources {
    pub homeserver_config: ConfigMap,
    pub homeserver_secret: Secret,
    pub synapse: StatefulSet,
    pub synapse_service: Service,
    pub media: PersistentVolumeClaim,
}

/// Whether an object goes away with the instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Carries a controller owner reference; pruned when no longer desired.
    Owned,
    /// Holds data: no owner reference, never pruned; deleted with the
    /// instance only under `deletionPolicy: Delete`.
    Retained,
}

/// One desired object, ready for server-side apply.
#[derive(Clone, Debug)]
pub struct Child {
    pub resource: ApiResource,
    pub object: DynamicObject,
    pub ownership: Ownership,
}

impl Child {
    /// A typed object as a child, stamped with the hash of its content.
    pub fn new<K>(object: K, ownership: Ownership) -> Self
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let resource = ApiResource::erase::<K>(&());
        let mut value = serde_json::to_value(&object).expect("Kubernetes objects serialize");
        value["apiVersion"] = resource.api_version.clone().into();
        value["kind"] = resource.kind.clone().into();
        let hash = content_hash(&value);
        let mut object: DynamicObject = serde_json::from_value(value).expect("an object with metadata");
        object
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(DESIRED_HASH_ANNOTATION.to_owned(), hash);
        Self { resource, object, ownership }
    }

    /// `Kind/name`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{}/{}",
            self.resource.kind,
            self.object.metadata.name.as_deref().unwrap_or_default()
        )
    }
}

/// A short, stable hash of a JSON value.
pub fn content_hash(value: &serde_json::Value) -> String {
    let bytes = serde_json::to_vec(value).expect("JSON values serialize");
    format!("{:x}", Sha256::digest(bytes))[..16].to_owned()
}

impl StageResources {
    /// The objects in apply order: configuration before the workloads that
    /// mount it.
    pub fn into_children(self) -> Vec<Child> {
        let Self {
            homeserver_config,
            homeserver_secret,
            synapse,
            synapse_service,
            media,
        } = self;
        vec![
            Child::new(media, Ownership::Retained),
            Child::new(homeserver_config, Ownership::Owned),
            Child::new(homeserver_secret, Ownership::Owned),
            Child::new(synapse_service, Ownership::Owned),
            Child::new(synapse, Ownership::Owned),
        ]
    }
}

/// The controller owner reference every owned child carries; `None` for an
/// instance that was never stored (offline rendering).
pub fn owner_reference(instance: &MessengerInstance) -> Option<OwnerReference> {
    instance.controller_owner_ref(&())
}

/// Builds the objects of one stage.
pub fn build_stage(instance: &MessengerInstance, inputs: &StageInputs<'_>) -> Result<StageResources, BuildError> {
    let namespace = instance.metadata.namespace.as_deref().ok_or(BuildError::MissingNamespace)?;
    let instance_name = instance.metadata.name.as_deref().unwrap_or_default();
    let spec = &instance.spec;
    let names = StageNames::new(instance_name, &inputs.stage.name);
    let connection = database::connection(spec, &names);
    let files = homeserver::homeserver_files(spec, inputs.stage, &connection, inputs.secrets).map_err(|source| {
        BuildError::Homeserver {
            stage: inputs.stage.name.clone(),
            source,
        }
    })?;
    let federation = federation_enabled(instance, inputs.stage);
    let hash = synapse::config_hash(&files);
    Ok(StageResources {
        homeserver_config: synapse::config_map(&names, namespace, &files),
        homeserver_secret: synapse::config_secret(&names, namespace, &files),
        synapse: synapse::stateful_set(&synapse::SynapseInputs {
            names: &names,
            namespace,
            spec,
            version: inputs.release.synapse.as_str(),
            config_hash: &hash,
            federation,
        }),
        synapse_service: synapse::service(&names, namespace, federation),
        media: synapse::media_claim(&names, namespace, spec),
    })
}

/// Whether a stage federates with other homeservers.
pub fn federation_enabled(instance: &MessengerInstance, _stage: &Stage) -> bool {
    instance
        .spec
        .homeserver
        .federation
        .as_ref()
        .is_some_and(|federation| federation.mode != crate::api::FederationMode::Closed)
}

/// The release a stage's spec asks for: its own pin where set, else the train.
pub fn desired_release(instance: &MessengerInstance, stage: &Stage) -> Release {
    let train = &instance.spec.release;
    let pin = stage.release.clone().unwrap_or_default();
    Release {
        synapse: pin.synapse.unwrap_or_else(|| train.synapse.clone()),
        element_web: pin.element_web.unwrap_or_else(|| train.element_web.clone()),
    }
}

/// Every child of an instance, owned children stamped with the owner
/// reference.
pub fn children(instance: &MessengerInstance, stages: Vec<StageResources>) -> Vec<Child> {
    let owner = owner_reference(instance);
    stages
        .into_iter()
        .flat_map(StageResources::into_children)
        .map(|mut child| {
            if child.ownership == Ownership::Owned
                && let Some(owner) = &owner
            {
                child.object.metadata.owner_references = Some(vec![owner.clone()]);
            }
            child
        })
        .collect()
}
