//! The `MessengerInstance` status: what the operator observed and did.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::DatabaseEngine;

/// The observed state of a MessengerInstance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessengerInstanceStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, as Kubernetes tools (Argo CD,
    /// kstatus) read them; `Degraded` when a stage runs but needs attention.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// One line for `kubectl get`: each stage with its phase and release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// One entry per stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageStatus>,
}

/// The observed state of one stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    /// The stage's name.
    pub name: String,
    /// Where the stage is in its life: Provisioning, Ready, Waiting,
    /// BackingUp, Upgrading, Verifying, Blocked or Failed.
    pub phase: StagePhase,
    /// The release the stage runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseStatus>,
    /// The release the stage is moving to, while it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ReleaseStatus>,
    /// What the stage is doing or waiting for, and what to do if it is stuck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Since when the stage has been in phase Ready on its current release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<Time>,
    /// The id of the stage's signing key (for example `a_Xk3q`). Once
    /// recorded, the operator never mints another identity for the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_id: Option<String>,
    /// The database engine the stage was provisioned with. Changing
    /// `spec.database.engine` afterwards is refused: it needs a migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_engine: Option<DatabaseEngine>,
    /// The stage's last backup and last successful backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backups: Option<BackupStatus>,
    /// The progress of the restore declared in `stages[].restore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreStatus>,
    /// The rollout in progress, if any: its target and current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// A release whose smoke test failed and was rolled back; the stage does
    /// not try it again until the spec names another release or the failed
    /// smoke-test Job is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_target: Option<ReleaseStatus>,
    /// The database's schema compatibility version: the highest
    /// `SCHEMA_COMPAT_VERSION` of any Synapse that has run on it. No release
    /// whose schema version is below it can run on this database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_compat_version: Option<u32>,
    /// Past rollouts, newest last (at most ten).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RolloutRecord>,
}

/// A stage's backups, as the backup Jobs reported them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// When the last backup finished, successfully or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_time: Option<Time>,
    /// How the last backup ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<BackupResult>,
    /// The Job that ran the last backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job: Option<String>,
    /// What the last backup reported: its warning or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<String>,
    /// When the last successful backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<Time>,
    /// The restic snapshot id of the last successful backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_snapshot: Option<String>,
}

/// How a backup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BackupResult {
    Succeeded,
    Failed,
}

/// The progress of a declared restore.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// The snapshot asked for in `stages[].restore.snapshot`.
    pub requested: String,
    /// Pending, Running, Succeeded, Failed or Refused.
    pub phase: RestorePhase,
    /// The snapshot id that was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The restore Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// What happened, and what to do when the restore did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the restore finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}

/// Where a restore is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestorePhase {
    /// Declared; the restore Job is about to start. Synapse is held stopped.
    #[default]
    Pending,
    /// The restore Job runs. Synapse is held stopped.
    Running,
    /// The database, media and keys are back; Synapse starts.
    Succeeded,
    /// The restore Job failed; the message says why. Synapse stays stopped
    /// until the restore is fixed or removed from the spec.
    Failed,
    /// Not restored, because the stage has data: a restore never writes over
    /// live data. Nothing was changed.
    Refused,
}

/// A stage's phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StagePhase {
    /// Objects are being created and the stage has not been ready yet.
    #[default]
    Provisioning,
    /// Running its desired release, healthy.
    Ready,
    /// A newer release is wanted, but a gate holds it back.
    Waiting,
    /// Taking the pre-upgrade backup.
    BackingUp,
    /// Rolling out the new release.
    Upgrading,
    /// Running the smoke test on the new release.
    Verifying,
    /// Cannot continue without a person; the message says what to do.
    Blocked,
    /// Not working; the message says why.
    Failed,
}

impl std::fmt::Display for StagePhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// The releases a stage runs or moves to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    /// The Synapse release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synapse: Option<String>,
    /// The Element Web release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_web: Option<String>,
}

/// A rollout in progress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The release being rolled out.
    pub target: ReleaseStatus,
    /// The step the rollout is in.
    pub step: RolloutStep,
    /// When the rollout left its gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Time>,
}

/// The steps of a rollout, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RolloutStep {
    /// Waiting for the soak time, a window, or the schema check.
    #[default]
    Gates,
    /// Taking the pre-upgrade backup.
    Backup,
    /// Running the new release until it is ready.
    Deploy,
    /// Running the smoke test against the new release.
    Verify,
}

/// One finished rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRecord {
    /// The Synapse release before the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The Synapse release rolled out.
    pub to: String,
    /// When the rollout started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Time>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Time>,
    /// `Succeeded`, `RolledBack` or `Blocked`.
    pub result: String,
    /// What happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
