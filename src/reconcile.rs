//! One reconcile of one MessengerInstance, as a pipeline: `observe` the
//! caches, `validate` the spec, `plan` each stage and build its `desired`
//! objects (`pipeline`), `apply` them, prune what is no longer wanted, and
//! derive the `status`, written only when it changed. Only the steps here
//! that say `.await` touch the API server, all through `apply`.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use thiserror::Error;
use tracing::{info, warn};

use crate::api::{MessengerInstance, MessengerInstanceStatus, StagePhase, StageStatus};
use crate::apply::{Applier, ApplyError};
use crate::context::Context;
use crate::desired::keys::{StageSecrets, keys_secret};
use crate::desired::{Child, Ownership};
use crate::observe;
use crate::observe::referenced;
use crate::pipeline;
use crate::plan::keys::{self, Keys};
use crate::plan::{self, StageView};
use crate::status::{self, Stall, StallReason};

pub use crate::plan::DELETE_DATA_FINALIZER;

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
    #[error("the instance has no namespace")]
    NoNamespace,
}

impl ReconcileError {
    /// See `ApplyError::refusal`.
    pub fn refusal(&self) -> Option<(&str, &str)> {
        match self {
            Self::Apply(error) => error.refusal(),
            Self::NoNamespace => None,
        }
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Apply(error) => error.reason(),
            Self::NoNamespace => "no_namespace",
        }
    }
}

pub async fn reconcile(
    instance: Arc<MessengerInstance>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    ctx.stores.wait_ready().await;
    if let Some(store) = &ctx.referenced_secrets {
        // A cache still listing would report every Secret missing.
        let _ = store.wait_until_ready().await;
    }
    let namespace = instance.namespace().ok_or(ReconcileError::NoNamespace)?;
    let applier = ctx.applier();
    if instance.metadata.deletion_timestamp.is_some() {
        return finalize(&instance, &ctx, &applier, &namespace).await;
    }
    if let Some(finalizers) = plan::finalizers(&instance) {
        applier.set_finalizers(&instance, finalizers).await?;
    }
    let now = ctx.now();
    let previous = instance.status.clone().unwrap_or_default();

    let validated = match crate::validate::validate(&instance.spec) {
        Ok(validated) => validated,
        Err(problems) => {
            let message = problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            let stall = Stall::new(crate::validate::stall_reason(&problems), message);
            let stages = previous.stages.clone();
            let schedule = crate::validate::schedule::backup_schedule(&instance.spec);
            let next = status::next_status(
                &instance,
                &previous,
                stages,
                Some(&stall),
                &now,
                schedule.as_ref().map(Result::as_ref),
            );
            write_status(&instance, &ctx, &applier, &previous, next, Some(&stall)).await?;
            // Nothing changes until the spec does.
            return Ok(Action::await_change());
        }
    };

    let observed = observe::observe_instance(&ctx.stores, &namespace, &instance);
    let views = StageView::all(&instance, &validated, &namespace, &observed);
    let mut stage_keys = Vec::with_capacity(views.len());
    for view in &views {
        stage_keys.push(resolve_keys(&ctx, &applier, view).await?);
    }
    let plan = pipeline::plan_instance(&views, stage_keys, now.0);

    if let Err(error) = apply_children(&ctx, &applier, &plan).await {
        // A refused object stays refused until the spec changes: say so in
        // the status now, then retry with backoff.
        if let Some((object, message)) = error.refusal() {
            let stall = Stall::new(
                StallReason::ApplyRefused,
                format!(
                    "the API server refused {object}: {message}; fix the spec field this object is made from (the message names it), the operator retries with backoff"
                ),
            );
            let stages: Vec<StageStatus> = plan.stages.iter().map(|o| o.status.clone()).collect();
            let next = status::next_status(
                &instance,
                &previous,
                stages,
                Some(&stall),
                &now,
                validated.backup_schedule.as_ref().map(Ok),
            );
            write_status(&instance, &ctx, &applier, &previous, next, Some(&stall)).await?;
        }
        return Err(error);
    }
    for (resource, name) in plan::prune(
        &instance,
        &plan.children,
        &plan.held_stages(),
        &observed.objects,
    ) {
        applier.delete(&resource, &namespace, &name).await?;
    }

    let stall = plan.stall().cloned();
    let stages: Vec<StageStatus> = plan.stages.into_iter().map(|o| o.status).collect();
    record_metrics(&ctx, &namespace, &instance.name_any(), &stages);
    let settled = stall.is_some() || stages.iter().all(|s| s.phase == StagePhase::Ready);
    let mut next = status::next_status(
        &instance,
        &previous,
        stages,
        stall.as_ref(),
        &now,
        validated.backup_schedule.as_ref().map(Ok),
    );
    if let Some(store) = &ctx.referenced_secrets {
        let missing = referenced::missing_secrets(&instance.spec, |name| {
            referenced::cached_keys(store, &namespace, name)
        });
        next.conditions.push(status::secrets_resolved(
            &previous,
            &missing,
            instance.metadata.generation,
            &now,
        ));
    }
    write_status(&instance, &ctx, &applier, &previous, next, stall.as_ref()).await?;
    Ok(Action::requeue(if settled {
        RESYNC
    } else {
        PROGRESS_CHECK
    }))
}

/// Applies the planned children, then creates the planned Jobs.
async fn apply_children(
    ctx: &Context,
    applier: &Applier<'_>,
    plan: &pipeline::InstancePlan,
) -> Result<(), ReconcileError> {
    for child in &plan.children {
        let live = observe::live(&ctx.stores, child);
        applier.apply(child, live.as_deref()).await?;
    }
    for job in &plan.jobs {
        applier.create_once(job).await?;
    }
    Ok(())
}

/// The stage's keys: as planned, after storing a minted identity (created
/// once; if someone created it first, theirs is used).
async fn resolve_keys(
    ctx: &Context,
    applier: &Applier<'_>,
    view: &StageView<'_>,
) -> Result<Result<StageSecrets, Stall>, ReconcileError> {
    let secrets = match keys::prerequisites(view, StageSecrets::generate) {
        Err(stall) => return Ok(Err(stall)),
        Ok(Keys::Existing(secrets)) => return Ok(Ok(secrets)),
        Ok(Keys::Mint(secrets)) => secrets,
    };
    let names = &view.names;
    let child = Child::new(
        keys_secret(names, view.namespace, &secrets),
        Ownership::Retained,
    );
    if applier.create_once(&child).await? {
        ctx.publish(
            view.instance,
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
        let secret = applier
            .read_secret(view.namespace, &names.keys_secret())
            .await?;
        Ok(keys::from_live_secret(names, &secret))
    }
}

fn record_metrics(ctx: &Context, namespace: &str, name: &str, stages: &[StageStatus]) {
    for stage in stages {
        if let Some(success) = stage
            .backups
            .as_ref()
            .and_then(|b| b.last_success_time.as_ref())
        {
            ctx.metrics
                .backup_succeeded(namespace, name, &stage.name, success.0.as_second());
        }
        let release = stage
            .release
            .as_ref()
            .and_then(|r| r.synapse.as_deref())
            .unwrap_or("");
        ctx.metrics
            .stage(namespace, name, &stage.name, stage.phase, release);
    }
}

/// Writes the derived status when it differs from what is stored, then
/// publishes the Events the change is worth.
async fn write_status(
    instance: &MessengerInstance,
    ctx: &Context,
    applier: &Applier<'_>,
    previous: &MessengerInstanceStatus,
    next: MessengerInstanceStatus,
    stall: Option<&Stall>,
) -> Result<(), ReconcileError> {
    if &next == previous {
        return Ok(());
    }
    if let (Ok(new_value), Ok(old_value)) =
        (serde_json::to_value(&next), serde_json::to_value(previous))
    {
        let changed = crate::apply::difference(&new_value, &old_value)
            .or_else(|| crate::apply::difference(&old_value, &new_value));
        tracing::debug!(
            changed = changed.as_deref().unwrap_or("-"),
            "status changed"
        );
    }
    applier.write_status(instance, &next).await?;
    for notice in status::notices(previous, &next, stall) {
        if notice.stalled {
            warn!(reason = %notice.reason, message = %notice.note, "stalled");
        }
        let kind = if notice.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        ctx.publish(instance, kind, &notice.reason, "Reconcile", notice.note)
            .await;
    }
    Ok(())
}

/// Deletion: owned children go by garbage collection. Retained data stays,
/// unless the policy is `Delete`, in which case it is deleted here before the
/// finalizer is released.
async fn finalize(
    instance: &MessengerInstance,
    ctx: &Context,
    applier: &Applier<'_>,
    namespace: &str,
) -> Result<Action, ReconcileError> {
    let name = instance.name_any();
    ctx.metrics.forget_instance(namespace, &name);
    if !plan::has_data_finalizer(instance) {
        return Ok(Action::await_change());
    }
    let existing = observe::instance_objects(&ctx.stores, namespace, &name);
    for (resource, object) in plan::retained_data(&existing) {
        applier.delete(&resource, namespace, &object).await?;
    }
    info!(instance = %name, "deleted retained data as deletionPolicy Delete asks");
    applier
        .set_finalizers(instance, plan::without_data_finalizer(instance))
        .await?;
    Ok(Action::await_change())
}
