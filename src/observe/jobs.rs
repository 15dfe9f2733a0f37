//! The one reader of Job outcomes, shared by the rollout (pre-upgrade backup
//! and smoke-test Jobs), backups and restores.
//!
//! The scripts in `scripts/` write their result as one JSON line to the
//! container's termination message; it is read from the pod's status (no
//! extra permissions, no side channel), falling back to the Job's own
//! conditions once the pod is gone.

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Deserialize;

/// What a script says of its own run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScriptVerdict {
    Success,
    Failure,
    /// A restore that changed nothing because the target was not empty.
    Refused,
    /// No result, or one this operator does not know.
    #[default]
    #[serde(other)]
    Unknown,
}

/// The result line the scripts print and write to the termination message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ScriptResult {
    pub result: ScriptVerdict,
    #[serde(default)]
    pub snapshot: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub warning: Option<String>,
}

/// Parses the script's result from a termination message (the last line
/// that is a JSON object, since a log tail may precede it).
pub fn parse_result(message: &str) -> Option<ScriptResult> {
    message
        .lines()
        .rev()
        .map(str::trim)
        .filter(|line| line.starts_with('{'))
        .find_map(|line| serde_json::from_str(line).ok())
}

/// A Job's state from its conditions alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    Absent,
    Running,
    Succeeded,
    /// Failed, with a message naming the Job and its reason.
    Failed(String),
}

/// The condition that ended a Job (`Complete` or `Failed`), and whether it
/// succeeded; `None` while it runs. The only place Job conditions are read.
fn finished_condition(job: &Job) -> Option<(bool, &JobCondition)> {
    let conditions = job.status.as_ref()?.conditions.as_deref()?;
    let holds = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    holds("Complete")
        .map(|c| (true, c))
        .or_else(|| holds("Failed").map(|c| (false, c)))
}

/// The state of an optional Job, as the rollout sees it.
pub fn job_state(job: Option<&Job>) -> JobState {
    let Some(job) = job else {
        return JobState::Absent;
    };
    match finished_condition(job) {
        None => JobState::Running,
        Some((true, _)) => JobState::Succeeded,
        Some((false, failed)) => JobState::Failed(format!(
            "Job {} failed: {}",
            job.metadata.name.as_deref().unwrap_or_default(),
            failed
                .message
                .clone()
                .unwrap_or_else(|| failed.reason.clone().unwrap_or_default())
        )),
    }
}

/// How a finished Job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobOutcome {
    pub job: String,
    pub succeeded: bool,
    pub finished: Time,
    /// The script's result, if a pod of the Job still shows it.
    pub result: Option<ScriptResult>,
    /// The Job's own reason for failing (for example a deadline).
    pub job_message: Option<String>,
}

/// The script result in the termination messages of a Job's pods (the
/// newest pod that has one).
fn pod_result(job: &Job, pods: &[Pod]) -> Option<ScriptResult> {
    let uid = job.metadata.uid.as_deref()?;
    let mut results: Vec<(Option<Time>, ScriptResult)> = pods
        .iter()
        .filter(|pod| {
            pod.metadata
                .owner_references
                .as_ref()
                .is_some_and(|owners| owners.iter().any(|owner| owner.uid == uid))
        })
        .filter_map(|pod| {
            let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
            statuses.iter().find_map(|status| {
                let terminated = status.state.as_ref()?.terminated.as_ref()?;
                let result = parse_result(terminated.message.as_deref()?)?;
                Some((terminated.finished_at.clone(), result))
            })
        })
        .collect();
    results.sort_by_key(|(finished, _)| finished.as_ref().map(|t| t.0));
    results.pop().map(|(_, result)| result)
}

/// The outcome of a Job, or `None` while it runs.
pub fn job_outcome(job: &Job, pods: &[Pod]) -> Option<JobOutcome> {
    let (succeeded, finished) = finished_condition(job)?;
    let status = job.status.as_ref()?;
    let time = status
        .completion_time
        .clone()
        .filter(|_| succeeded)
        .or_else(|| finished.last_transition_time.clone())
        .or_else(|| job.metadata.creation_timestamp.clone())?;
    Some(JobOutcome {
        job: job.metadata.name.clone().unwrap_or_default(),
        succeeded,
        finished: time,
        result: pod_result(job, pods),
        job_message: finished.message.clone().filter(|m| !m.is_empty()),
    })
}
