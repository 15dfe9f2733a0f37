//! Desired: pure builders from the spec and the plan's decisions to
//! objects, including Jobs, owner references and the replica hold of a
//! restore. Nothing here reads a cluster or decides a step: `plan` decides,
//! and `caduceus render` and the controller build from the same plan.

pub mod backup;
pub mod database;
pub mod element;
pub mod homeserver;
pub mod keys;
pub mod merge;
pub mod network;
pub mod placement;
pub mod pod;
pub mod smoke;
pub mod synapse;
pub mod well_known;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject};
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::api::{MessengerInstance, Release, Stage};
use crate::validate::ValidatedStage;

use self::keys::StageSecrets;
use crate::names::{DESIRED_HASH_ANNOTATION, StageNames};

/// Why the desired objects of a stage cannot be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BuildError {
    #[error(
        "metadata.namespace is not set; render needs the instance's namespace (set it in the file or pass --namespace)"
    )]
    MissingNamespace,
}

/// What the builder needs to know about one stage beyond the spec.
#[derive(Clone, Debug)]
pub struct StageInputs<'a> {
    /// The stage, validated.
    pub settings: &'a ValidatedStage<'a>,
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
    /// Element Web's ConfigMap, Deployment and Service; none when
    /// `clients.elementWeb.enabled` is false.
    pub element_config: Option<ConfigMap>,
    pub element_web: Option<Deployment>,
    pub element_service: Option<Service>,
    pub ingresses: Vec<Ingress>,
    pub network_policies: Vec<NetworkPolicy>,
    pub disruption_budgets: Vec<PodDisruptionBudget>,
    /// The database objects of the stage's engine.
    pub database: database::DatabaseResources,
    /// The backup scripts, repository claim and CronJob; none without
    /// `spec.backups`.
    pub backups: backup::BackupResources,
    /// The smoke-test script run after each rollout.
    pub smoke_test_script: ConfigMap,
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
        let object: DynamicObject = serde_json::from_value(value).expect("an object with metadata");
        Self::stamped(resource, object, hash, ownership)
    }

    /// An untyped object (a kind of another operator's CRD, such as
    /// CloudNativePG's Cluster) as a child, stamped like `new` does.
    pub fn dynamic(resource: ApiResource, mut object: DynamicObject, ownership: Ownership) -> Self {
        object.types = Some(kube::api::TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        });
        let value = serde_json::to_value(&object).expect("Kubernetes objects serialize");
        let hash = content_hash(&value);
        Self::stamped(resource, object, hash, ownership)
    }

    /// A child carrying the hash of its content, so any change of intent
    /// (including a field no longer set) differs from the live object.
    fn stamped(
        resource: ApiResource,
        mut object: DynamicObject,
        hash: String,
        ownership: Ownership,
    ) -> Self {
        object
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(DESIRED_HASH_ANNOTATION.to_owned(), hash);
        Self {
            resource,
            object,
            ownership,
        }
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
            element_config,
            element_web,
            element_service,
            ingresses,
            network_policies,
            disruption_budgets,
            database,
            backups,
            smoke_test_script,
        } = self;
        let database::DatabaseResources {
            stateful_set: database_set,
            service: database_service,
            claim: database_claim,
            cluster: database_cluster,
            credentials: database_credentials,
        } = database;
        let backup::BackupResources {
            scripts: backup_scripts,
            repository: backup_repository,
            schedule: backup_schedule,
        } = backups;
        // NetworkPolicies first, so no pod of the stage ever runs unguarded.
        let mut children: Vec<Child> = network_policies
            .into_iter()
            .map(|policy| Child::new(policy, Ownership::Owned))
            .collect();
        // The database before Synapse, which connects to it. Claims and the
        // CloudNativePG Cluster (whose volumes go with it) hold data.
        children.extend(database_claim.map(|c| Child::new(c, Ownership::Retained)));
        children.extend(database_credentials.map(|s| Child::new(s, Ownership::Retained)));
        children.extend(database_cluster.map(|c| {
            Child::dynamic(
                database::cloudnative_pg_cluster_resource(),
                c,
                Ownership::Retained,
            )
        }));
        children.extend(database_service.map(|s| Child::new(s, Ownership::Owned)));
        children.extend(database_set.map(|s| Child::new(s, Ownership::Owned)));
        children.extend([
            Child::new(media, Ownership::Retained),
            Child::new(homeserver_config, Ownership::Owned),
            Child::new(homeserver_secret, Ownership::Owned),
            Child::new(synapse_service, Ownership::Owned),
            Child::new(synapse, Ownership::Owned),
        ]);
        children.push(Child::new(smoke_test_script, Ownership::Owned));
        children.extend(element_config.map(|c| Child::new(c, Ownership::Owned)));
        children.extend(element_service.map(|s| Child::new(s, Ownership::Owned)));
        children.extend(element_web.map(|d| Child::new(d, Ownership::Owned)));
        children.extend(
            disruption_budgets
                .into_iter()
                .map(|b| Child::new(b, Ownership::Owned)),
        );
        children.extend(
            ingresses
                .into_iter()
                .map(|i| Child::new(i, Ownership::Owned)),
        );
        children.extend(backup_repository.map(|c| Child::new(c, Ownership::Retained)));
        children.extend(backup_scripts.map(|c| Child::new(c, Ownership::Owned)));
        children.extend(backup_schedule.map(|c| Child::new(c, Ownership::Owned)));
        children
    }
}

/// The controller owner reference every owned child carries; `None` for an
/// instance that was never stored (offline rendering).
pub fn owner_reference(instance: &MessengerInstance) -> Option<OwnerReference> {
    instance.controller_owner_ref(&())
}

/// Builds the objects of one stage.
pub fn build_stage(
    instance: &MessengerInstance,
    inputs: &StageInputs<'_>,
) -> Result<StageResources, BuildError> {
    let namespace = instance
        .metadata
        .namespace
        .as_deref()
        .ok_or(BuildError::MissingNamespace)?;
    let instance_name = instance.metadata.name.as_deref().unwrap_or_default();
    let spec = &instance.spec;
    let stage = inputs.settings.stage;
    let names = StageNames::new(instance_name, &stage.name);
    let connection = database::connection(spec, &names);
    let files = homeserver::homeserver_files(inputs.settings, &connection, inputs.secrets);
    let federation = federation_enabled(instance, stage);
    let hash = synapse::config_hash(&files);
    let network = network::NetworkInputs {
        names: &names,
        namespace,
        spec,
        stage,
        federation,
        ranges: &inputs.settings.source_ranges,
    };
    let element_config = spec
        .clients
        .element_web
        .enabled
        .then(|| element::config_map(&names, namespace, spec, stage, federation));
    let element_web = element_config.as_ref().map(|config| {
        element::deployment(&element::ElementInputs {
            names: &names,
            namespace,
            spec,
            stage,
            version: inputs.release.element_web.as_str(),
            config,
        })
    });
    let one_at_a_time = placement::Budget::MaxUnavailable(1);
    let mut disruption_budgets = vec![placement::disruption_budget(
        &names,
        namespace,
        synapse::COMPONENT,
        one_at_a_time,
    )];
    if element_web.is_some() {
        disruption_budgets.push(placement::disruption_budget(
            &names,
            namespace,
            element::COMPONENT,
            one_at_a_time,
        ));
    }
    let mut synapse_set = synapse::stateful_set(&synapse::SynapseInputs {
        names: &names,
        namespace,
        spec,
        version: inputs.release.synapse.as_str(),
        config_hash: &hash,
        federation,
        placement: placement::pod_placement(
            spec,
            stage,
            placement::Component::Synapse,
            &names.selector(synapse::COMPONENT),
        ),
    });
    synapse::mount_oidc_secrets(&mut synapse_set, &homeserver::oidc_secret_mounts(spec));
    Ok(StageResources {
        homeserver_config: synapse::config_map(&names, namespace, &files),
        homeserver_secret: synapse::config_secret(&names, namespace, &files),
        synapse: synapse_set,
        synapse_service: synapse::service(&names, namespace, federation),
        media: synapse::media_claim(&names, namespace, spec),
        element_service: element_web
            .is_some()
            .then(|| element::service(&names, namespace)),
        element_config,
        element_web,
        ingresses: network::ingresses(&network),
        network_policies: network::network_policies(&network),
        disruption_budgets,
        database: database::resources(spec, stage, &names, namespace, inputs.secrets),
        backups: backup::resources(
            backup::BackupInputs::new(spec, stage, &names, namespace),
            inputs.settings.backup_schedule.as_ref(),
        ),
        smoke_test_script: smoke::script_config_map(&names, namespace),
    })
}

/// Whether a stage federates with other homeservers (and so gets the
/// federation listener, port and network paths).
pub fn federation_enabled(instance: &MessengerInstance, stage: &Stage) -> bool {
    homeserver::federation_listener(&instance.spec, stage)
}

/// The release a stage's spec asks for: its own pin where set, else the train.
pub fn desired_release(instance: &MessengerInstance, stage: &Stage) -> Release {
    crate::api::effective_release(&instance.spec, stage)
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

/// Keeps Synapse stopped (zero replicas), while its data is being restored.
pub fn hold_synapse(resources: &mut StageResources) {
    if let Some(spec) = resources.synapse.spec.as_mut() {
        spec.replicas = Some(0);
    }
}

/// The Jobs a rollout starts: the pre-upgrade backup of `start_backup` and
/// the smoke test of `start_smoke_test` (the releases the rollout decided).
pub fn rollout_jobs(
    instance: &MessengerInstance,
    stage: &Stage,
    names: &StageNames,
    namespace: &str,
    start_backup: Option<&Release>,
    start_smoke_test: Option<&Release>,
) -> Vec<Job> {
    let spec = &instance.spec;
    let mut jobs = Vec::new();
    if let (Some(release), Some(inputs)) = (
        start_backup,
        backup::BackupInputs::new(spec, stage, names, namespace),
    ) {
        jobs.push(backup::pre_upgrade_backup_job(
            &inputs,
            release.synapse.as_str(),
        ));
    }
    if let Some(release) = start_smoke_test {
        // The smoke test's private room comes out encrypted under `all` and
        // `invite`; it checks that when the configuration promises it.
        let encrypted = matches!(
            homeserver::homeserver_config(spec, stage)
                .get("encryption_enabled_by_default_for_room_type")
                .and_then(|v| v.as_str()),
            Some("all" | "invite")
        );
        jobs.push(smoke::job(spec, names, namespace, release, encrypted));
    }
    jobs
}

/// A stage's Jobs as children, in creation order: the restore Job, then the
/// rollout's Jobs, which carry the controller owner reference. The restore
/// Job carries none, as it always has, so it outlives the instance like
/// the data it wrote.
pub fn stage_jobs(
    instance: &MessengerInstance,
    restore: Option<Job>,
    rollout: Vec<Job>,
) -> Vec<Child> {
    let owner = owner_reference(instance);
    restore
        .map(|job| Child::new(job, Ownership::Owned))
        .into_iter()
        .chain(rollout.into_iter().map(|job| {
            let mut child = Child::new(job, Ownership::Owned);
            child.object.metadata.owner_references = owner.clone().map(|owner| vec![owner]);
            child
        }))
        .collect()
}
