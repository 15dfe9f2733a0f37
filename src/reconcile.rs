//! One reconcile of one MessengerInstance: read what is cached, build what
//! is desired, apply the difference, prune what is no longer wanted, and
//! write the status only when it changed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;
use thiserror::Error;
use tracing::{info, warn};

use crate::api::{
    DeletionPolicy, MessengerInstance, MessengerInstanceStatus, RestoreStatus, Stage, StagePhase,
    StageStatus,
};
use crate::apply::{Applier, ApplyError};
use crate::build::keys::{self, StageSecrets};
use crate::build::names::{MANAGER, STAGE_LABEL, StageNames};
use crate::build::{self, Child, Ownership, StageInputs, backup};
use crate::context::Context;
use crate::rollout::machine::{self, Decision, Facts, JobState, Source, Workload};
use crate::status::{self, Stall};

/// The finalizer that deletes retained data, set only under
/// `deletionPolicy: Delete`.
pub const DELETE_DATA_FINALIZER: &str = "caduceus.dev/delete-data";

/// How often a settled instance is looked at again, as a safety net for
/// missed watch events.
const RESYNC: Duration = Duration::from_secs(600);
/// How often an instance that is still converging is looked at again.
const PROGRESS_CHECK: Duration = Duration::from_secs(30);

/// A reconcile that failed; the controller retries with backoff.
#[derive(Debug, Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("writing the status: {0}")]
    Status(#[source] kube::Error),
    #[error("updating the finalizers: {0}")]
    Finalizer(#[source] kube::Error),
    #[error("the instance has no namespace")]
    NoNamespace,
}

impl ReconcileError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Apply(error) => error.reason(),
            Self::Status(_) => "status",
            Self::Finalizer(_) => "finalizer",
            Self::NoNamespace => "no_namespace",
        }
    }
}

/// What the reconcile learned about one stage.
struct StageOutcome {
    status: StageStatus,
    stall: Option<Stall>,
}

impl StageOutcome {
    /// A stage that cannot go on: Blocked with the stall's message, the rest
    /// of its status as recorded.
    fn blocked(name: &str, before: Option<&StageStatus>, stall: Stall) -> Self {
        Self {
            status: StageStatus {
                name: name.to_owned(),
                phase: StagePhase::Blocked,
                message: Some(stall.message.clone()),
                ..before.cloned().unwrap_or_default()
            },
            stall: Some(stall),
        }
    }
}

pub async fn reconcile(
    instance: Arc<MessengerInstance>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    ctx.stores.wait_ready().await;
    let namespace = instance.namespace().ok_or(ReconcileError::NoNamespace)?;
    let name = instance.name_any();
    if instance.meta().deletion_timestamp.is_some() {
        return finalize(&instance, &ctx, &namespace, &name).await;
    }
    sync_finalizer(&instance, &ctx, &namespace, &name).await?;

    let now = ctx.now();
    let previous = instance.status.clone().unwrap_or_default();

    if let Err(problems) = crate::validate::validate(&instance.spec) {
        let stall = Stall {
            reason: "InvalidSpec".into(),
            message: problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        };
        let stages = previous.stages.clone();
        write_status(&instance, &ctx, &previous, stages, Some(&stall), &now).await?;
        // Nothing changes until the spec does.
        return Ok(Action::await_change());
    }

    let applier = Applier {
        client: &ctx.client,
        metrics: &ctx.metrics,
    };
    let mut desired: Vec<build::StageResources> = Vec::new();
    let mut outcomes = Vec::new();
    let mut jobs: Vec<Child> = Vec::new();
    for stage in &instance.spec.stages {
        let names = StageNames::new(&name, &stage.name);
        let before = previous.stages.iter().find(|s| s.name == stage.name);
        if let Err(stall) = check_engine(&instance, &ctx, stage, &names, &namespace, before) {
            outcomes.push(StageOutcome::blocked(&stage.name, before, stall));
            continue;
        }
        let secrets =
            match stage_secrets(&instance, &ctx, &applier, &names, &namespace, before).await? {
                Ok(secrets) => secrets,
                Err(stall) => {
                    outcomes.push(StageOutcome::blocked(&stage.name, before, stall));
                    continue;
                }
            };
        let decision = plan_rollout(
            &instance, &ctx, stage, &names, &namespace, before, &outcomes,
        );
        let inputs = StageInputs {
            stage,
            secrets: &secrets,
            release: decision.deploy.clone(),
        };
        let resources = match build::build_stage(&instance, &inputs) {
            Ok(resources) => resources,
            Err(error) => {
                let stall = Stall {
                    reason: "InvalidSpec".into(),
                    message: error.to_string(),
                };
                outcomes.push(StageOutcome::blocked(&stage.name, before, stall));
                continue;
            }
        };
        let stage_jobs: Vec<Job> = stage_objects(&ctx, &namespace, &name, &stage.name);
        let stage_pods: Vec<Pod> = stage_objects(&ctx, &namespace, &name, &stage.name);
        let backup_inputs = backup::BackupInputs::new(&instance.spec, stage, &names, &namespace);
        let (restore, restore_action) = backup::plan_restore(
            backup_inputs.as_ref(),
            stage,
            before,
            &stage_jobs,
            &stage_pods,
        );
        let mut resources = resources;
        let held_for_restore = backup::hold_synapse(&restore_action);
        if held_for_restore {
            // Synapse stays stopped while its data is being restored.
            if let Some(spec) = resources.synapse.spec.as_mut() {
                spec.replicas = Some(0);
            }
        }
        if let backup::RestoreAction::Run(job) = restore_action {
            jobs.push(Child::new(*job, Ownership::Owned));
        }
        desired.push(resources);
        jobs.extend(rollout_jobs(
            &instance, stage, &names, &namespace, &decision,
        ));
        let mut status = decision.status;
        if held_for_restore {
            hold_status_for_restore(&mut status, restore.as_ref());
        }
        status.name = stage.name.clone();
        status.signing_key_id = secrets.signing_key_id().map(str::to_owned);
        status.database_engine = Some(instance.spec.database.engine);
        status.restore = restore;
        status.backups = backup::backup_status(
            before.and_then(|b| b.backups.as_ref()),
            &names,
            &stage_jobs,
            &stage_pods,
        );
        if let Some(success) = status
            .backups
            .as_ref()
            .and_then(|b| b.last_success_time.as_ref())
        {
            ctx.metrics
                .backup_succeeded(&namespace, &name, &stage.name, success.0.as_second());
        }
        outcomes.push(StageOutcome {
            status,
            stall: None,
        });
    }

    let children = build::children(&instance, desired);
    for child in &children {
        let live = ctx.stores.get(
            &child.resource,
            &namespace,
            child.object.metadata.name.as_deref().unwrap_or_default(),
        );
        applier.apply(child, live.as_deref()).await?;
    }
    // Rollout Jobs are created once under a name derived from their release
    // and never changed: a restarted operator finds them instead of running
    // them twice.
    for job in &jobs {
        applier.create_once(job).await?;
    }
    // A stalled stage keeps its workloads as they are: pruning them would
    // turn a missing Secret into an outage.
    let held: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.stall.is_some())
        .map(|o| o.status.name.as_str())
        .collect();
    prune(
        &ctx, &applier, &namespace, &name, &children, &held, &instance,
    )
    .await?;

    let stall = outcomes.iter().find_map(|o| o.stall.clone());
    let stages: Vec<StageStatus> = outcomes.into_iter().map(|o| o.status).collect();
    for stage in &stages {
        let release = stage
            .release
            .as_ref()
            .and_then(|r| r.synapse.as_deref())
            .unwrap_or("");
        ctx.metrics
            .stage(&namespace, &name, &stage.name, stage.phase, release);
    }
    let settled = stall.is_some() || stages.iter().all(|s| s.phase == StagePhase::Ready);
    write_status(&instance, &ctx, &previous, stages, stall.as_ref(), &now).await?;
    Ok(Action::requeue(if settled {
        RESYNC
    } else {
        PROGRESS_CHECK
    }))
}

/// The secret values of a stage: read from its keys Secret, or generated and
/// stored once for a stage that never had any. A stage that had an identity
/// and lost it stalls instead of getting a new one.
async fn stage_secrets(
    instance: &MessengerInstance,
    ctx: &Context,
    applier: &Applier<'_>,
    names: &StageNames,
    namespace: &str,
    before: Option<&StageStatus>,
) -> Result<Result<StageSecrets, Stall>, ReconcileError> {
    if let Some(secret) = ctx
        .stores
        .get_typed::<Secret>(namespace, &names.keys_secret())
    {
        return Ok(StageSecrets::from_secret(&secret).map_err(|missing| Stall {
            reason: "KeysIncomplete".into(),
            message: format!(
                "stage {}: Secret {} lacks {}; restore it from a backup (the operator does not replace parts of a stage's identity)",
                names.stage,
                names.keys_secret(),
                missing.join(", ")
            ),
        }));
    }
    let had_identity = before.and_then(|b| b.signing_key_id.as_ref()).is_some()
        || ctx
            .stores
            .get_typed::<StatefulSet>(namespace, &names.synapse())
            .is_some()
        || ctx
            .stores
            .get_typed::<PersistentVolumeClaim>(namespace, &names.media())
            .is_some();
    if had_identity {
        let message = format!(
            "stage {}: Secret {} with the signing key is gone; restore it from a backup (`caduceus restore` or your Secret backup). \
             The operator will not mint a new identity for a homeserver that already has data: other servers and clients would reject it.",
            names.stage,
            names.keys_secret()
        );
        return Ok(Err(Stall {
            reason: "KeysMissing".into(),
            message,
        }));
    }
    let stage = instance.spec.stages.iter().find(|s| s.name == names.stage);
    if stage.is_some_and(|stage| !backup::may_mint_keys(stage)) {
        return Ok(Err(Stall {
            reason: "KeysMissing".into(),
            message: format!(
                "stage {}: a restore is requested but Secret {} is missing; apply it from the snapshot first \
                 (`restic dump <snapshot> /kubernetes/keys-secret.yaml | kubectl apply -f -`), so the restored \
                 homeserver keeps its identity",
                names.stage,
                names.keys_secret()
            ),
        }));
    }
    let secrets = StageSecrets::generate();
    let child = Child::new(
        keys::keys_secret(names, namespace, &secrets),
        Ownership::Retained,
    );
    if applier.create_once(&child).await? {
        ctx.publish(
            instance,
            EventType::Normal,
            "KeysCreated",
            "Provision",
            format!(
                "stage {}: created the signing key {} and secrets in Secret {}",
                names.stage,
                secrets.signing_key_id().unwrap_or_default(),
                names.keys_secret()
            ),
        )
        .await;
        Ok(Ok(secrets))
    } else {
        // Someone created it between the cache read and now: use theirs.
        let secret: Secret = Api::namespaced(ctx.client.clone(), namespace)
            .get(&names.keys_secret())
            .await
            .map_err(|source| {
                ReconcileError::Apply(ApplyError::Apply {
                    object: format!("Secret/{}", names.keys_secret()),
                    source,
                })
            })?;
        Ok(StageSecrets::from_secret(&secret).map_err(|missing| Stall {
            reason: "KeysIncomplete".into(),
            message: format!(
                "Secret {} lacks {}",
                names.keys_secret(),
                missing.join(", ")
            ),
        }))
    }
}

/// Deletes owned children of the instance that are no longer desired (for
/// example those of a removed stage). Retained data is never pruned.
async fn prune(
    ctx: &Context,
    applier: &Applier<'_>,
    namespace: &str,
    name: &str,
    children: &[Child],
    held_stages: &[&str],
    instance: &MessengerInstance,
) -> Result<(), ReconcileError> {
    let wanted: HashSet<(String, String)> = children
        .iter()
        .map(|c| {
            (
                c.resource.kind.clone(),
                c.object.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let uid = instance.uid();
    for (resource, object) in ctx.stores.of_instance(namespace, name) {
        let owned_by_us = object
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|refs| {
                refs.iter()
                    .any(|r| Some(&r.uid) == uid.as_ref() && r.controller == Some(true))
            });
        let key = (resource.kind.clone(), object.name_any());
        let held = object
            .labels()
            .get(STAGE_LABEL)
            .is_some_and(|stage| held_stages.contains(&stage.as_str()));
        // Jobs are records of what ran (backups, smoke tests): the rollout
        // reads them to know a step is done, so they are never pruned; they
        // go with the instance.
        let record = resource.kind == "Job";
        if owned_by_us && !held && !record && !wanted.contains(&key) {
            let api: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), namespace, &resource);
            applier
                .delete(&api, &resource.kind, &object.name_any())
                .await?;
        }
    }
    Ok(())
}

/// Writes the status when it differs from what is stored (timestamps of
/// unchanged conditions are kept, so an unchanged instance writes nothing),
/// and records an Event for each stage whose phase changed.
async fn write_status(
    instance: &MessengerInstance,
    ctx: &Context,
    previous: &MessengerInstanceStatus,
    stages: Vec<StageStatus>,
    stall: Option<&Stall>,
    now: &Time,
) -> Result<(), ReconcileError> {
    let warnings: Vec<String> = instance
        .spec
        .stages
        .iter()
        .flat_map(|stage| build::placement::placement_warnings(&instance.spec, stage))
        .chain(
            stages
                .iter()
                .filter(|stage| stage.phase == StagePhase::Failed)
                .map(|stage| {
                    format!(
                        "stage {}: {}",
                        stage.name,
                        stage.message.as_deref().unwrap_or_default()
                    )
                }),
        )
        .collect();
    let warnings: Vec<String> = warnings
        .into_iter()
        .chain(backup_warnings(instance, &stages, now))
        .collect();
    let mut next = status::instance_status(
        Some(previous),
        instance.meta().generation,
        stages,
        stall,
        now,
    );
    next.conditions.push(status::degraded(
        previous,
        &warnings,
        instance.meta().generation,
        now,
    ));
    if &next == previous {
        return Ok(());
    }
    let (new_value, old_value) = (
        serde_json::to_value(&next).ok(),
        serde_json::to_value(previous).ok(),
    );
    if let (Some(new_value), Some(old_value)) = (new_value, old_value) {
        let changed = crate::apply::difference(&new_value, &old_value)
            .or_else(|| crate::apply::difference(&old_value, &new_value));
        tracing::debug!(
            changed = changed.as_deref().unwrap_or("-"),
            "status changed"
        );
    }
    let namespace = instance.namespace().unwrap_or_default();
    let api: Api<MessengerInstance> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": MessengerInstance::api_version(&()),
        "kind": MessengerInstance::kind(&()),
        "status": next,
    });
    api.patch_status(
        &instance.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(ReconcileError::Status)?;
    ctx.metrics.api_write("apply", "MessengerInstance/status");
    for stage in &next.stages {
        let before = previous
            .stages
            .iter()
            .find(|s| s.name == stage.name)
            .map(|s| s.phase);
        if before != Some(stage.phase) {
            let kind = match stage.phase {
                StagePhase::Blocked | StagePhase::Failed => EventType::Warning,
                _ => EventType::Normal,
            };
            let message = format!(
                "stage {}: {}",
                stage.name,
                stage.message.as_deref().unwrap_or_default()
            );
            ctx.publish(
                instance,
                kind,
                &format!("Stage{}", stage.phase),
                "Reconcile",
                message,
            )
            .await;
        }
    }
    let was_stalled =
        status::find_condition(previous, status::STALLED).is_some_and(|c| c.status == "True");
    if let (Some(stall), false) = (stall, was_stalled) {
        warn!(reason = %stall.reason, message = %stall.message, "stalled");
        ctx.publish(
            instance,
            EventType::Warning,
            &stall.reason,
            "Reconcile",
            stall.message.clone(),
        )
        .await;
    }
    Ok(())
}

/// Keeps the data finalizer exactly when the deletion policy needs it.
async fn sync_finalizer(
    instance: &MessengerInstance,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<(), ReconcileError> {
    let wanted = instance.spec.deletion_policy == DeletionPolicy::Delete;
    let present = instance
        .finalizers()
        .iter()
        .any(|f| f == DELETE_DATA_FINALIZER);
    if wanted == present {
        return Ok(());
    }
    let mut finalizers: Vec<String> = instance
        .finalizers()
        .iter()
        .filter(|f| *f != DELETE_DATA_FINALIZER)
        .cloned()
        .collect();
    if wanted {
        finalizers.push(DELETE_DATA_FINALIZER.into());
    }
    patch_finalizers(instance, ctx, namespace, name, finalizers).await
}

async fn patch_finalizers(
    instance: &MessengerInstance,
    ctx: &Context,
    namespace: &str,
    name: &str,
    finalizers: Vec<String>,
) -> Result<(), ReconcileError> {
    let api: Api<MessengerInstance> = Api::namespaced(ctx.client.clone(), namespace);
    // The resourceVersion makes this fail instead of overwriting a finalizer
    // another controller added meanwhile.
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": instance.resource_version()}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(ReconcileError::Finalizer)?;
    ctx.metrics.api_write("patch", "MessengerInstance");
    Ok(())
}

/// Deletion: owned children go by garbage collection. Retained data stays,
/// unless the policy is `Delete`, in which case it is deleted here before the
/// finalizer is released.
async fn finalize(
    instance: &MessengerInstance,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Action, ReconcileError> {
    ctx.metrics.forget_instance(namespace, name);
    if !instance
        .finalizers()
        .iter()
        .any(|f| f == DELETE_DATA_FINALIZER)
    {
        return Ok(Action::await_change());
    }
    let applier = Applier {
        client: &ctx.client,
        metrics: &ctx.metrics,
    };
    for (resource, object) in ctx.stores.of_instance(namespace, name) {
        if object
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(Vec::is_empty)
        {
            let api: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), namespace, &resource);
            applier
                .delete(&api, &resource.kind, &object.name_any())
                .await?;
        }
    }
    info!(instance = %name, "deleted retained data as deletionPolicy Delete asks");
    let remaining: Vec<String> = instance
        .finalizers()
        .iter()
        .filter(|f| *f != DELETE_DATA_FINALIZER)
        .cloned()
        .collect();
    patch_finalizers(instance, ctx, namespace, name, remaining).await?;
    Ok(Action::await_change())
}

/// The rollout decision of one stage, from its recorded status, the status
/// decided for its promotion source earlier in this reconcile, and the
/// cached Synapse and Jobs.
fn plan_rollout(
    instance: &MessengerInstance,
    ctx: &Context,
    stage: &Stage,
    names: &StageNames,
    namespace: &str,
    before: Option<&StageStatus>,
    earlier: &[StageOutcome],
) -> Decision {
    let desired = build::desired_release(instance, stage);
    let suffix = backup::release_suffix(desired.synapse.as_str());
    let job_state = |name: String| match ctx.stores.get_typed::<Job>(namespace, &name) {
        None => JobState::Absent,
        Some(job) => rollout_job_state(&job),
    };
    let synapse = ctx
        .stores
        .get_typed::<StatefulSet>(namespace, &names.synapse());
    let source = stage.promotion.as_ref().map(|promotion| Source {
        name: &promotion.from,
        status: earlier
            .iter()
            .map(|outcome| &outcome.status)
            .find(|status| status.name == promotion.from),
    });
    let facts = Facts {
        desired,
        previous: before,
        promotion: stage.promotion.as_ref(),
        source,
        paused: instance.spec.paused || stage.paused,
        backups: instance.spec.backups.is_some(),
        backup_job: job_state(names.backup_job(&suffix)),
        smoke_job: job_state(names.smoke_test_job(&suffix)),
        workload: Workload {
            release: synapse.as_ref().and_then(synapse_release),
            readiness: status::stateful_set_readiness(synapse.as_ref())
                .map_err(|waiting| format!("Synapse: {waiting}"))
                .and_then(|()| database_readiness(instance, ctx, names, namespace)),
        },
        now: ctx.now().0,
    };
    machine::decide(&facts)
}

/// The Jobs a rollout decision starts.
fn rollout_jobs(
    instance: &MessengerInstance,
    stage: &Stage,
    names: &StageNames,
    namespace: &str,
    decision: &Decision,
) -> Vec<Child> {
    let spec = &instance.spec;
    let mut jobs = Vec::new();
    if let (Some(release), Some(inputs)) = (
        &decision.start_backup,
        backup::BackupInputs::new(spec, stage, names, namespace),
    ) {
        let job = backup::pre_upgrade_backup_job(&inputs, release.synapse.as_str());
        jobs.push(Child::new(job, Ownership::Owned));
    }
    if let Some(release) = &decision.start_smoke_test {
        // The smoke test's private room comes out encrypted under `all` and
        // `invite`; it checks that when the configuration promises it.
        let encrypted = matches!(
            build::homeserver::homeserver_config(spec, stage)
                .get("encryption_enabled_by_default_for_room_type")
                .and_then(|v| v.as_str()),
            Some("all" | "invite")
        );
        let job = build::smoke::job(spec, names, namespace, release, encrypted);
        jobs.push(Child::new(job, Ownership::Owned));
    }
    let owner = build::owner_reference(instance);
    for job in &mut jobs {
        job.object.metadata.owner_references = owner.clone().map(|owner| vec![owner]);
    }
    jobs
}

/// A Job's state as the rollout sees it.
fn rollout_job_state(job: &Job) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|status| status.conditions.clone())
        .unwrap_or_default();
    let holds = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    if holds("Complete").is_some() {
        JobState::Succeeded
    } else if let Some(failed) = holds("Failed") {
        JobState::Failed(format!(
            "Job {} failed: {}",
            job.metadata.name.as_deref().unwrap_or_default(),
            failed
                .message
                .clone()
                .unwrap_or_else(|| failed.reason.clone().unwrap_or_default())
        ))
    } else {
        JobState::Running
    }
}

/// The Synapse release of a StatefulSet's pod template (its image tag).
fn synapse_release(set: &StatefulSet) -> Option<String> {
    let image = set
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()?;
    let name = image.rsplit('/').next()?;
    name.split_once(':').map(|(_, tag)| tag.to_owned())
}

/// Refuses a database engine change on a stage that already has a database:
/// that needs a migration, not a reconcile.
fn check_engine(
    instance: &MessengerInstance,
    ctx: &Context,
    stage: &Stage,
    names: &StageNames,
    namespace: &str,
    before: Option<&StageStatus>,
) -> Result<(), Stall> {
    let cluster_kind = build::database::cloudnative_pg_cluster_resource();
    let managed = ctx
        .stores
        .get_typed::<StatefulSet>(namespace, &names.database())
        .is_some();
    let cluster = ctx
        .stores
        .get(&cluster_kind, namespace, &names.database())
        .is_some();
    let running =
        build::database::running_engine(before.and_then(|b| b.database_engine), managed, cluster);
    build::database::check_engine(
        &stage.name,
        &instance.spec,
        running,
        ctx.stores.watches(&cluster_kind),
    )
    .map_err(|error| Stall {
        reason: "InvalidSpec".into(),
        message: error.to_string(),
    })
}

/// The cached objects of one kind that belong to a stage.
fn stage_objects<K>(ctx: &Context, namespace: &str, instance: &str, stage: &str) -> Vec<K>
where
    K: Resource<DynamicType = ()> + serde::de::DeserializeOwned,
{
    let kind = K::kind(&());
    ctx.stores
        .of_instance(namespace, instance)
        .into_iter()
        .filter(|(resource, object)| {
            resource.kind == kind
                && object.labels().get(STAGE_LABEL).map(String::as_str) == Some(stage)
        })
        .filter_map(|(_, object)| (*object).clone().try_parse::<K>().ok())
        .collect()
}

/// Stage warnings for the `Degraded` condition: backups failing or stale.
fn backup_warnings(
    instance: &MessengerInstance,
    stages: &[StageStatus],
    now: &Time,
) -> Vec<String> {
    let Some(backups) = instance.spec.backups.as_ref() else {
        return Vec::new();
    };
    let since = instance
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now.0, |created| created.0);
    stages
        .iter()
        .filter_map(|stage| {
            let health = backup::backup_health(
                &stage.name,
                &backups.schedule,
                stage.backups.as_ref(),
                since,
                now.0,
            );
            match health {
                Ok(health) => health
                    .condition()
                    .map(|(_, reason, message)| format!("{reason}: {message}")),
                Err(error) => Some(error.to_string()),
            }
        })
        .collect()
}

/// Whether the stage's database is ready, for the engines the operator runs.
fn database_readiness(
    instance: &MessengerInstance,
    ctx: &Context,
    names: &StageNames,
    namespace: &str,
) -> Result<(), String> {
    let managed = ctx
        .stores
        .get_typed::<StatefulSet>(namespace, &names.database());
    let cluster = ctx.stores.get(
        &build::database::cloudnative_pg_cluster_resource(),
        namespace,
        &names.database(),
    );
    build::database::readiness(
        instance.spec.database.engine,
        managed.as_ref(),
        cluster.as_deref(),
    )
}

/// A stage whose Synapse is held stopped for a restore is not Ready, even
/// though its StatefulSet (scaled to zero) reports every wanted pod ready:
/// it provisions until the restore succeeded, and its soak has not begun.
fn hold_status_for_restore(status: &mut StageStatus, restore: Option<&RestoreStatus>) {
    status.phase = StagePhase::Provisioning;
    status.ready_since = None;
    status.message = Some(
        restore
            .and_then(|r| r.message.clone())
            .unwrap_or_else(|| "restoring from a backup; Synapse stays stopped".into()),
    );
}

#[cfg(test)]
mod restore_hold_tests {
    use super::*;
    use crate::api::RestorePhase;

    #[test]
    fn a_stage_held_for_its_restore_is_not_ready() {
        let mut status = StageStatus {
            phase: StagePhase::Ready,
            ready_since: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            )),
            ..StageStatus::default()
        };
        let restore = RestoreStatus {
            requested: "latest".into(),
            phase: RestorePhase::Running,
            message: Some("restoring the database, media and keys; Synapse stays stopped".into()),
            ..RestoreStatus::default()
        };
        hold_status_for_restore(&mut status, Some(&restore));
        assert_eq!(status.phase, StagePhase::Provisioning);
        assert_eq!(status.ready_since, None);
        assert_eq!(status.message, restore.message);
    }
}
