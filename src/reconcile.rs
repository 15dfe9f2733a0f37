//! One reconcile of one MessengerInstance: read what is cached, build what
//! is desired, apply the difference, prune what is no longer wanted, and
//! write the status only when it changed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;
use thiserror::Error;
use tracing::{info, warn};

use crate::api::{
    DeletionPolicy, MessengerInstance, MessengerInstanceStatus, ReleaseStatus, StagePhase,
    StageStatus,
};
use crate::apply::{Applier, ApplyError};
use crate::build::keys::{self, StageSecrets};
use crate::build::names::{MANAGER, STAGE_LABEL, StageNames};
use crate::build::{self, Child, Ownership, StageInputs};
use crate::context::Context;
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
    for stage in &instance.spec.stages {
        let names = StageNames::new(&name, &stage.name);
        let before = previous.stages.iter().find(|s| s.name == stage.name);
        let secrets =
            match stage_secrets(&instance, &ctx, &applier, &names, &namespace, before).await? {
                Ok(secrets) => secrets,
                Err(stall) => {
                    outcomes.push(StageOutcome {
                        status: StageStatus {
                            name: stage.name.clone(),
                            phase: StagePhase::Blocked,
                            message: Some(stall.message.clone()),
                            ..before.cloned().unwrap_or_default()
                        },
                        stall: Some(stall),
                    });
                    continue;
                }
            };
        let release = build::desired_release(&instance, stage);
        let inputs = StageInputs {
            stage,
            secrets: &secrets,
            release: release.clone(),
        };
        let resources = match build::build_stage(&instance, &inputs) {
            Ok(resources) => resources,
            Err(error) => {
                let stall = Stall {
                    reason: "InvalidSpec".into(),
                    message: error.to_string(),
                };
                outcomes.push(StageOutcome {
                    status: StageStatus {
                        name: stage.name.clone(),
                        phase: StagePhase::Blocked,
                        message: Some(stall.message.clone()),
                        ..before.cloned().unwrap_or_default()
                    },
                    stall: Some(stall),
                });
                continue;
            }
        };
        desired.push(resources);
        let synapse = ctx
            .stores
            .get_typed::<StatefulSet>(&namespace, &names.synapse());
        let readiness = status::stateful_set_readiness(synapse.as_ref());
        let running = ReleaseStatus {
            synapse: Some(release.synapse.to_string()),
            element_web: Some(release.element_web.to_string()),
        };
        let status = match readiness {
            Ok(()) => StageStatus {
                name: stage.name.clone(),
                phase: StagePhase::Ready,
                ready_since: before
                    .filter(|b| {
                        b.phase == StagePhase::Ready && b.release.as_ref() == Some(&running)
                    })
                    .and_then(|b| b.ready_since.clone())
                    .or_else(|| Some(now.clone())),
                release: Some(running),
                target: None,
                message: Some(format!("Synapse {} is ready", release.synapse)),
                signing_key_id: secrets.signing_key_id().map(str::to_owned),
                ..before.cloned().unwrap_or_default()
            },
            Err(waiting) => StageStatus {
                name: stage.name.clone(),
                phase: StagePhase::Provisioning,
                ready_since: None,
                release: Some(running),
                target: None,
                message: Some(format!("waiting for Synapse: {waiting}")),
                signing_key_id: secrets.signing_key_id().map(str::to_owned),
                ..before.cloned().unwrap_or_default()
            },
        };
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
    // A stalled stage keeps its workloads as they are: pruning them would
    // turn a missing Secret into an outage.
    let held: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.stall.is_some())
        .map(|o| o.status.name.as_str())
        .collect();
    prune(&ctx, &applier, &namespace, &name, &children, &held, &instance).await?;

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
        if owned_by_us && !held && !wanted.contains(&key) {
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
    let next = status::instance_status(
        Some(previous),
        instance.meta().generation,
        stages,
        stall,
        now,
    );
    if &next == previous {
        return Ok(());
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
