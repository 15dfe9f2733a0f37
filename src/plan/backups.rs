//! Backups of a stage, planned from what its Jobs reported: the backup
//! status (last success, last result) and whether backups are healthy.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::{BackupResult, BackupStatus};
use crate::names::BACKUP_COMPONENT as COMPONENT;
use crate::names::StageNames;
use crate::observe::jobs::{JobOutcome, ScriptVerdict, job_outcome};
use crate::validate::schedule::{BackupSchedule, ScheduleError};

/// Whether a Job is one of this stage's Jobs of a component.
pub fn is_stage_job(job: &Job, names: &StageNames, component: &str) -> bool {
    let labels = job.metadata.labels.as_ref();
    let selector = names.selector(component);
    labels.is_some_and(|labels| {
        selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
    })
}

/// The stage's backup status from its backup Jobs (scheduled and one-off)
/// and their pods, keeping what the previous status recorded about Jobs
/// that are gone since (history limits delete old Jobs).
pub fn backup_status(
    previous: Option<&BackupStatus>,
    names: &StageNames,
    jobs: &[Job],
    pods: &[Pod],
) -> Option<BackupStatus> {
    let mut outcomes: Vec<JobOutcome> = jobs
        .iter()
        .filter(|job| is_stage_job(job, names, COMPONENT))
        .filter_map(|job| job_outcome(job, pods))
        .collect();
    outcomes.sort_by_key(|outcome| outcome.finished.0);
    let mut status = previous.cloned().unwrap_or_default();
    let is_newer =
        |time: &Time, than: &Option<Time>| than.as_ref().is_none_or(|than| time.0 > than.0);
    for outcome in outcomes {
        let script = outcome.result.as_ref();
        // A Job can complete while the script reported a failure only if the
        // image's shell hid the exit status; trust the script's own word.
        let succeeded =
            outcome.succeeded && script.is_none_or(|r| r.result == ScriptVerdict::Success);
        if succeeded && is_newer(&outcome.finished, &status.last_success_time) {
            status.last_success_time = Some(outcome.finished.clone());
            status.last_success_snapshot = script.and_then(|r| r.snapshot.clone());
        }
        if is_newer(&outcome.finished, &status.last_time)
            || (status.last_time.as_ref() == Some(&outcome.finished)
                && status.last_job.as_deref() != Some(outcome.job.as_str()))
        {
            status.last_time = Some(outcome.finished.clone());
            status.last_job = Some(outcome.job.clone());
            status.last_result = Some(if succeeded {
                BackupResult::Succeeded
            } else {
                BackupResult::Failed
            });
            status.last_message = if succeeded {
                script.and_then(|r| r.warning.clone())
            } else {
                Some(
                    script
                        .and_then(|r| r.message.clone())
                        .or(outcome.job_message.clone())
                        .unwrap_or_else(|| {
                            format!("Job {} failed; see its pod's log", outcome.job)
                        }),
                )
            };
        }
    }
    (status != BackupStatus::default()).then_some(status)
}

/// Whether a stage's backups are healthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackupHealth {
    /// The last backup succeeded and is recent.
    Healthy,
    /// No backup was due yet.
    Pending,
    /// The last backup failed, but the last success is still recent.
    Failing { message: String },
    /// No success within two scheduled runs.
    Stale { message: String },
}

impl BackupHealth {
    /// The condition the instance shows for it: `(type, reason, message)`,
    /// or `None` when all is well.
    pub fn condition(&self) -> Option<(&'static str, &'static str, String)> {
        match self {
            Self::Healthy | Self::Pending => None,
            Self::Failing { message } => Some(("BackupsFailing", "BackupFailed", message.clone())),
            Self::Stale { message } => Some(("BackupsStale", "NoRecentBackup", message.clone())),
        }
    }
}

/// Judges a stage's backups: stale when the schedule has fired twice since
/// the last success (for a regular schedule: the last success is older
/// than twice the interval), with a grace of half an interval (at most an
/// hour) for the running backup to finish. `since` is when backups began
/// (the CronJob's creation), for a stage that never had a success.
pub fn backup_health(
    stage: &str,
    schedule: &BackupSchedule,
    status: Option<&BackupStatus>,
    since: Timestamp,
    now: Timestamp,
) -> Result<BackupHealth, ScheduleError> {
    let never = || schedule.never_fires();
    let last_success = status
        .and_then(|s| s.last_success_time.as_ref())
        .map(|t| t.0);
    let reference = last_success.unwrap_or(since);
    let first = schedule.fires_after(reference).ok_or_else(never)?;
    let second = schedule.fires_after(first).ok_or_else(never)?;
    let grace = SignedDuration::from_secs(((second.as_second() - first.as_second()) / 2).min(3600));
    let deadline = second.checked_add(grace).unwrap_or(second);
    let last_failure = status
        .filter(|s| s.last_result == Some(BackupResult::Failed))
        .map(|s| {
            format!(
                "the last backup (Job {}) failed: {}",
                s.last_job.as_deref().unwrap_or("?"),
                s.last_message.as_deref().unwrap_or("no message")
            )
        });
    if now > deadline {
        let since_text = match (
            last_success,
            status.and_then(|s| s.last_success_snapshot.as_deref()),
        ) {
            (Some(time), Some(snapshot)) => {
                format!("the last successful backup was at {time} (snapshot {snapshot})")
            }
            (Some(time), None) => format!("the last successful backup was at {time}"),
            (None, _) => format!("no backup has succeeded since backups began at {since}"),
        };
        let mut message = format!(
            "stage {stage}: {since_text}, more than two runs of schedule \"{}\" ago",
            schedule.text
        );
        if let Some(failure) = last_failure {
            message.push_str("; ");
            message.push_str(&failure);
        }
        message.push_str("; check the backup Jobs (kubectl get jobs -l app.kubernetes.io/component=backup) and spec.backups");
        return Ok(BackupHealth::Stale { message });
    }
    if let Some(failure) = last_failure {
        return Ok(BackupHealth::Failing {
            message: format!("stage {stage}: {failure}"),
        });
    }
    Ok(if last_success.is_some() {
        BackupHealth::Healthy
    } else {
        BackupHealth::Pending
    })
}
