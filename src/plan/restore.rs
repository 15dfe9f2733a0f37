//! A stage's declared restore (`stages[].restore`), planned from its
//! previous status and the restore Job: what to record, whether to run the
//! Job, and whether Synapse stays stopped meanwhile.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

use crate::api::{RestorePhase, RestoreStatus, Stage, StagePhase, StageStatus};
use crate::names::{RESTORE_COMPONENT, StageNames, restore_suffix};
use crate::observe::jobs::{ScriptVerdict, job_outcome};

use super::backups::is_stage_job;

/// What the operator does about a stage's declared restore.
#[derive(Clone, Debug, PartialEq)]
pub enum RestoreAction {
    /// No restore is declared, or it is finished: nothing to do.
    None,
    /// Run (or keep running) the restore Job of this request; Synapse stays
    /// stopped meanwhile.
    Run(RestoreRun),
    /// Keep Synapse stopped and wait for a person: the restore failed.
    Hold,
}

/// The restore Job to run: `desired::backup::restore_job` builds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreRun {
    /// The requested snapshot (`latest` or an id).
    pub snapshot: String,
}

/// The gate before a restore: only a stage that has never been ready is
/// restored; a running stage has live data.
pub fn restore_refusal(stage: &Stage, previous: Option<&StageStatus>) -> Option<String> {
    let request = stage.restore.as_ref()?;
    let previous = previous?;
    // A restore of this request that started or finished is no refusal: the
    // stage was not running when it began.
    let underway = previous
        .restore
        .as_ref()
        .is_some_and(|r| r.requested == request.snapshot && r.phase != RestorePhase::Refused);
    let has_run = previous.phase == StagePhase::Ready || previous.ready_since.is_some();
    (has_run && !underway).then(|| {
        format!(
            "stage {}: stages[].restore is refused because the stage is running with live data; a restore only goes into a stage that has never been ready. \
             Remove stages[].restore, or add a new stage with the restore",
            stage.name
        )
    })
}

/// The restore status and the action for a stage, from its declared
/// restore, its previous status, and the restore Job (if any) with its pods.
/// `names` is `None` when the instance takes no backups (there is nothing to
/// restore from). `None` status when no restore was ever declared.
pub fn plan_restore(
    names: Option<&StageNames>,
    stage: &Stage,
    previous: Option<&StageStatus>,
    jobs: &[Job],
    pods: &[Pod],
) -> (Option<RestoreStatus>, RestoreAction) {
    let before = previous.and_then(|p| p.restore.clone());
    let (Some(request), Some(names)) = (stage.restore.as_ref(), names) else {
        // Removing the field ends a restore; the record stays.
        return (before, RestoreAction::None);
    };
    let snapshot = request.snapshot.as_str();
    if let Some(done) = before.as_ref().filter(|b| b.requested == snapshot)
        && matches!(done.phase, RestorePhase::Succeeded | RestorePhase::Refused)
    {
        return (before, RestoreAction::None);
    }
    if let Some(message) = restore_refusal(stage, previous) {
        let status = RestoreStatus {
            requested: snapshot.to_owned(),
            phase: RestorePhase::Refused,
            message: Some(message),
            ..RestoreStatus::default()
        };
        return (Some(status), RestoreAction::None);
    }
    let job_name = names.restore_job(&restore_suffix(snapshot));
    let run = || {
        RestoreAction::Run(RestoreRun {
            snapshot: snapshot.to_owned(),
        })
    };
    let live = jobs.iter().find(|j| {
        j.metadata.name.as_deref() == Some(job_name.as_str())
            && is_stage_job(j, names, RESTORE_COMPONENT)
    });
    let Some(live) = live else {
        let status = RestoreStatus {
            requested: snapshot.to_owned(),
            phase: RestorePhase::Pending,
            job: Some(job_name),
            message: Some(
                "starting the restore Job; Synapse stays stopped until it finishes".into(),
            ),
            ..RestoreStatus::default()
        };
        return (Some(status), run());
    };
    let Some(outcome) = job_outcome(live, pods) else {
        let status = RestoreStatus {
            requested: snapshot.to_owned(),
            phase: RestorePhase::Running,
            job: Some(job_name),
            message: Some("restoring the database, media and keys; Synapse stays stopped".into()),
            ..RestoreStatus::default()
        };
        return (Some(status), run());
    };
    let result = outcome.result.clone().unwrap_or_default();
    let (phase, message, action) = if outcome.succeeded && result.result != ScriptVerdict::Failure {
        (
            RestorePhase::Succeeded,
            format!(
                "restored snapshot {}; Synapse starts",
                result.snapshot.as_deref().unwrap_or(snapshot)
            ),
            RestoreAction::None,
        )
    } else if result.result == ScriptVerdict::Refused {
        // Nothing was changed, so Synapse may run again on its data.
        (
            RestorePhase::Refused,
            result
                .message
                .unwrap_or_else(|| "the database is not empty".into()),
            RestoreAction::None,
        )
    } else {
        let why = result
            .message
            .or(outcome.job_message.clone())
            .unwrap_or_else(|| format!("Job {} failed; see its pod's log", outcome.job));
        (
            RestorePhase::Failed,
            format!(
                "{why}. Synapse stays stopped; fix the cause, then delete Job {} to retry, or remove stages[].restore",
                outcome.job
            ),
            RestoreAction::Hold,
        )
    };
    let status = RestoreStatus {
        requested: snapshot.to_owned(),
        phase,
        snapshot: result.snapshot.filter(|_| phase == RestorePhase::Succeeded),
        job: Some(job_name),
        message: Some(message),
        finished_at: Some(outcome.finished),
    };
    (Some(status), action)
}

/// Whether Synapse must stay stopped (zero replicas) for a restore: from the
/// moment it is declared until it succeeded or was refused.
pub fn hold_synapse(action: &RestoreAction) -> bool {
    !matches!(action, RestoreAction::None)
}

/// A stage whose Synapse is held stopped for a restore is not Ready, even
/// though its StatefulSet (scaled to zero) reports every wanted pod ready:
/// it provisions until the restore succeeded, and no soak has begun.
pub fn hold_status(status: &mut StageStatus, restore: Option<&RestoreStatus>) {
    status.phase = StagePhase::Provisioning;
    status.ready_since = None;
    status.message = Some(
        restore
            .and_then(|r| r.message.clone())
            .unwrap_or_else(|| "restoring from a backup; Synapse stays stopped".into()),
    );
}

/// Whether the operator may mint a new identity (keys Secret) for a stage
/// that has none: not when the stage is to be restored, since the restore
/// brings the stage's identity back and a new one would be refused by it.
pub fn may_mint_keys(stage: &Stage) -> bool {
    stage.restore.is_none()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    #[test]
    fn a_stage_held_for_its_restore_is_not_ready() {
        let mut status = StageStatus {
            phase: StagePhase::Ready,
            ready_since: Some(Time(jiff::Timestamp::UNIX_EPOCH)),
            ..StageStatus::default()
        };
        let restore = RestoreStatus {
            requested: "latest".into(),
            phase: RestorePhase::Running,
            message: Some("restoring the database, media and keys; Synapse stays stopped".into()),
            ..RestoreStatus::default()
        };
        hold_status(&mut status, Some(&restore));
        assert_eq!(status.phase, StagePhase::Provisioning);
        assert_eq!(status.ready_since, None);
        assert_eq!(status.message, restore.message);
    }
}
