//! The `MessengerInstance` status: what the operator observed and did.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
