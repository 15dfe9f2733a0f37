//! Status: pure derivation of the instance status from what was planned —
//! stage entries, the conditions Kubernetes tools read (`Ready`,
//! `Reconciling`, `Stalled`, `Degraded`) and the Events a change is worth.
//! `apply` writes it, only when it changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{MessengerInstance, MessengerInstanceStatus, StagePhase, StageStatus};
use crate::desired::placement::placement_warnings;
use crate::plan::backups::backup_health;
use crate::validate::schedule::{BackupSchedule, ScheduleError};

/// `spec.backups.schedule` as `validate` found it: `None` without backups.
pub type BackupScheduleCheck<'a> = Option<Result<&'a BackupSchedule, &'a ScheduleError>>;

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const DEGRADED: &str = "Degraded";
pub const SECRETS_RESOLVED: &str = "SecretsResolved";

/// Why the instance cannot make progress without a change from a person;
/// shown as the `Stalled` condition's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallReason {
    /// A rule the schema cannot express is broken (several rules, or one
    /// without a name of its own).
    InvalidSpec,
    /// One named rule of `validate` is broken, for example
    /// `DurationTooLarge` or `MaintenanceWindow`.
    SpecRule(&'static str),
    /// A stage's keys Secret is gone, or a restore needs it first.
    KeysMissing,
    /// A stage's keys Secret lacks some of its keys.
    KeysIncomplete,
    /// A stage's Synapse release is not in the operator's schema table and
    /// not acknowledged.
    UnlistedRelease,
    /// The API server refused an object the operator applied.
    ApplyRefused,
}

impl StallReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidSpec => "InvalidSpec",
            Self::SpecRule(rule) => rule,
            Self::KeysMissing => "KeysMissing",
            Self::KeysIncomplete => "KeysIncomplete",
            Self::UnlistedRelease => "UnlistedRelease",
            Self::ApplyRefused => "ApplyRefused",
        }
    }
}

impl std::fmt::Display for StallReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the instance cannot make progress without a change from a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    pub reason: StallReason,
    /// What is wrong, naming the field and the fix.
    pub message: String,
}

impl Stall {
    pub fn new(reason: StallReason, message: String) -> Self {
        Self { reason, message }
    }
}

/// The instance status for the observed stages.
pub fn instance_status(
    previous: Option<&MessengerInstanceStatus>,
    generation: Option<i64>,
    stages: Vec<StageStatus>,
    stall: Option<&Stall>,
    now: &Time,
) -> MessengerInstanceStatus {
    let not_ready: Vec<&StageStatus> = stages
        .iter()
        .filter(|s| s.phase != StagePhase::Ready)
        .collect();
    let ready = if let Some(stall) = stall {
        (false, stall.reason.to_string(), stall.message.clone())
    } else if stages.is_empty() {
        (
            false,
            "NoStages".into(),
            "the instance has no stages".into(),
        )
    } else if !not_ready.is_empty() {
        (
            false,
            "StagesNotReady".into(),
            not_ready
                .iter()
                .map(|s| {
                    format!(
                        "{}: {} ({})",
                        s.name,
                        s.phase,
                        s.message.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        )
    } else {
        (
            true,
            "AllStagesReady".into(),
            "every stage runs its desired release".into(),
        )
    };
    let reconciling = match (stall, not_ready.is_empty()) {
        (None, false) => (true, "Progressing".into(), ready.2.clone()),
        _ => (false, "Settled".into(), "nothing in progress".into()),
    };
    let stalled = match stall {
        Some(stall) => (true, stall.reason.to_string(), stall.message.clone()),
        None => (
            false,
            "NotStalled".into(),
            "the operator can make progress".into(),
        ),
    };
    let previous_conditions = previous
        .map(|p| p.conditions.as_slice())
        .unwrap_or_default();
    let conditions = [
        (READY, ready),
        (RECONCILING, reconciling),
        (STALLED, stalled),
    ]
    .into_iter()
    .map(|(kind, (status, reason, message))| {
        condition(
            previous_conditions,
            kind,
            status,
            reason,
            message,
            generation,
            now,
        )
    })
    .collect();
    MessengerInstanceStatus {
        observed_generation: generation,
        conditions,
        summary: Some(summary(&stages)),
        stages,
    }
}

/// `beta=Ready(v1.163.2) production=Waiting(v1.160.0)`, for `kubectl get`.
pub fn summary(stages: &[StageStatus]) -> String {
    stages
        .iter()
        .map(|stage| {
            let release = stage
                .release
                .as_ref()
                .and_then(|r| r.synapse.as_deref())
                .unwrap_or("-");
            format!("{}={}({})", stage.name, stage.phase, release)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A condition that keeps its transition time while its status stays.
fn condition(
    previous: &[Condition],
    kind: &str,
    status: bool,
    reason: String,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_owned();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: kind.into(),
        status,
        reason,
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// `Degraded`: the instance runs, but something needs attention (a stage's
/// data placed away from its Synapse, a stage rolled back).
/// The reason is the rule's when every warning comes from one rule (for
/// example `AdminRangeOpen`), else `NeedsAttention`.
pub fn degraded(
    previous: &MessengerInstanceStatus,
    warnings: &[(&'static str, String)],
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let (status, reason, message) = match warnings.first() {
        None => (false, "NoWarnings", "nothing needs attention".to_owned()),
        Some((first, _)) => {
            let reason = if warnings.iter().all(|(reason, _)| reason == first) {
                first
            } else {
                "NeedsAttention"
            };
            let messages: Vec<&str> = warnings.iter().map(|(_, m)| m.as_str()).collect();
            (true, reason, messages.join("; "))
        }
    };
    condition(
        &previous.conditions,
        DEGRADED,
        status,
        reason.into(),
        message,
        generation,
        now,
    )
}

/// `SecretsResolved`: every Secret key the spec refers to exists
/// (`missing` from `observe::referenced::missing_secrets`).
pub fn secrets_resolved(
    previous: &MessengerInstanceStatus,
    missing: &[String],
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let (status, reason, message) = if missing.is_empty() {
        (
            true,
            "AllSecretsFound",
            "every referenced Secret and key exists".to_owned(),
        )
    } else {
        (false, "SecretMissing", missing.join("; "))
    };
    condition(
        &previous.conditions,
        SECRETS_RESOLVED,
        status,
        reason.into(),
        message,
        generation,
        now,
    )
}

/// The condition of one type.
pub fn find_condition<'a>(
    status: &'a MessengerInstanceStatus,
    kind: &str,
) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == kind)
}

/// The instance's next status: stage entries and conditions from what was
/// planned, with `Degraded` from placement, failed stages and backups
/// (judged against `backup_schedule`, as `validate` found it).
/// Timestamps of unchanged conditions are kept, so an unchanged instance
/// derives a status equal to the stored one and nothing is written.
pub fn next_status(
    instance: &MessengerInstance,
    previous: &MessengerInstanceStatus,
    stages: Vec<StageStatus>,
    stall: Option<&Stall>,
    now: &Time,
    backup_schedule: BackupScheduleCheck<'_>,
) -> MessengerInstanceStatus {
    let warnings: Vec<(&'static str, String)> = instance
        .spec
        .stages
        .iter()
        .flat_map(|stage| placement_warnings(&instance.spec, stage))
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
        .chain(backup_warnings(instance, backup_schedule, &stages, now))
        .map(|warning| ("NeedsAttention", warning))
        .chain(
            crate::validate::warnings::spec_warnings(&instance.spec)
                .into_iter()
                .map(|warning| (warning.reason, warning.message)),
        )
        .collect();
    let generation = instance.metadata.generation;
    let mut next = instance_status(Some(previous), generation, stages, stall, now);
    next.conditions
        .push(degraded(previous, &warnings, generation, now));
    next
}

/// Stage warnings for the `Degraded` condition: backups failing or stale.
fn backup_warnings(
    instance: &MessengerInstance,
    schedule: BackupScheduleCheck<'_>,
    stages: &[StageStatus],
    now: &Time,
) -> Vec<String> {
    let schedule = match schedule {
        None => return Vec::new(),
        Some(Ok(schedule)) => schedule,
        Some(Err(error)) => return stages.iter().map(|_| error.to_string()).collect(),
    };
    let since = instance
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now.0, |created| created.0);
    stages
        .iter()
        .filter_map(|stage| {
            let health = backup_health(&stage.name, schedule, stage.backups.as_ref(), since, now.0);
            match health {
                Ok(health) => health
                    .condition()
                    .map(|(_, reason, message)| format!("{reason}: {message}")),
                Err(error) => Some(error.to_string()),
            }
        })
        .collect()
}

/// An Event to publish on the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    /// Whether it announces that the instance stalled.
    pub stalled: bool,
    pub reason: String,
    pub note: String,
}

/// The Events a status change is worth: one per stage whose phase changed,
/// and one when the instance became stalled.
pub fn notices(
    previous: &MessengerInstanceStatus,
    next: &MessengerInstanceStatus,
    stall: Option<&Stall>,
) -> Vec<Notice> {
    let mut notices: Vec<Notice> = next
        .stages
        .iter()
        .filter(|stage| {
            let before = previous
                .stages
                .iter()
                .find(|s| s.name == stage.name)
                .map(|s| s.phase);
            before != Some(stage.phase)
        })
        .map(|stage| Notice {
            warning: matches!(stage.phase, StagePhase::Blocked | StagePhase::Failed),
            stalled: false,
            reason: format!("Stage{}", stage.phase),
            note: format!(
                "stage {}: {}",
                stage.name,
                stage.message.as_deref().unwrap_or_default()
            ),
        })
        .collect();
    // A new warning is worth an Event, not only a changed condition.
    if let Some(degraded) = find_condition(next, DEGRADED).filter(|c| c.status == "True")
        && find_condition(previous, DEGRADED).map(|c| &c.message) != Some(&degraded.message)
    {
        notices.push(Notice {
            warning: true,
            stalled: false,
            reason: degraded.reason.clone(),
            note: degraded.message.clone(),
        });
    }
    if let Some(missing) = find_condition(next, SECRETS_RESOLVED).filter(|c| c.status == "False")
        && find_condition(previous, SECRETS_RESOLVED).map(|c| &c.message) != Some(&missing.message)
    {
        notices.push(Notice {
            warning: true,
            stalled: false,
            reason: missing.reason.clone(),
            note: missing.message.clone(),
        });
    }
    let was_stalled = find_condition(previous, STALLED).is_some_and(|c| c.status == "True");
    if let (Some(stall), false) = (stall, was_stalled) {
        notices.push(Notice {
            warning: true,
            stalled: true,
            reason: stall.reason.to_string(),
            note: stall.message.clone(),
        });
    }
    notices
}

/// A human-readable report of an instance's stages, for `caduceus status`.
pub fn describe(instance: &crate::api::MessengerInstance) -> String {
    let status = instance.status.clone().unwrap_or_default();
    let generation = instance.metadata.generation.unwrap_or_default();
    let mut out = format!(
        "MessengerInstance {}/{} (generation {}, observed {})\n",
        instance.metadata.namespace.as_deref().unwrap_or_default(),
        instance.metadata.name.as_deref().unwrap_or_default(),
        generation,
        status
            .observed_generation
            .map_or("never".into(), |g| g.to_string()),
    );
    for condition in &status.conditions {
        out.push_str(&format!(
            "  {:<12} {:<5} {}: {}\n",
            condition.type_, condition.status, condition.reason, condition.message
        ));
    }
    let release = |r: &Option<crate::api::ReleaseStatus>| {
        r.as_ref()
            .and_then(|r| r.synapse.clone())
            .unwrap_or_else(|| "-".into())
    };
    out.push_str(&format!(
        "\n  {:<14} {:<13} {:<10} {:<10} {}\n",
        "STAGE", "PHASE", "RELEASE", "TARGET", "MESSAGE"
    ));
    for stage in &status.stages {
        out.push_str(&format!(
            "  {:<14} {:<13} {:<10} {:<10} {}\n",
            stage.name,
            stage.phase.to_string(),
            release(&stage.release),
            release(&stage.target),
            stage.message.as_deref().unwrap_or_default()
        ));
    }
    let rollouts: Vec<String> = status
        .stages
        .iter()
        .flat_map(|stage| {
            stage.history.iter().map(move |record| {
                format!(
                    "  {:<14} {} -> {}  {}  finished {}{}",
                    stage.name,
                    record.from.as_deref().unwrap_or("-"),
                    record.to,
                    record.result,
                    record
                        .finished
                        .as_ref()
                        .map_or("-".into(), |t| t.0.to_string()),
                    record
                        .message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                )
            })
        })
        .collect();
    if !rollouts.is_empty() {
        out.push_str("\n  ROLLOUTS\n");
        for line in rollouts {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ReleaseStatus;
    use k8s_openapi::jiff::Timestamp;

    /// The next status of an instance without backups.
    fn next_status(
        instance: &crate::api::MessengerInstance,
        previous: &MessengerInstanceStatus,
        stages: Vec<StageStatus>,
        stall: Option<&Stall>,
        now: &Time,
    ) -> MessengerInstanceStatus {
        assert!(instance.spec.backups.is_none());
        super::next_status(instance, previous, stages, stall, now, None)
    }

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn stage(name: &str, phase: StagePhase) -> StageStatus {
        StageStatus {
            name: name.into(),
            phase,
            release: Some(ReleaseStatus {
                synapse: Some("v1.163.2".into()),
                element_web: None,
            }),
            message: Some("waiting".into()),
            ..StageStatus::default()
        }
    }

    #[test]
    fn ready_only_when_every_stage_is() {
        let status = instance_status(
            None,
            Some(3),
            vec![stage("beta", StagePhase::Ready)],
            None,
            &at(1),
        );
        assert_eq!(find_condition(&status, READY).unwrap().status, "True");
        assert_eq!(
            find_condition(&status, RECONCILING).unwrap().status,
            "False"
        );
        assert_eq!(status.summary.as_deref(), Some("beta=Ready(v1.163.2)"));
        let status = instance_status(
            None,
            Some(3),
            vec![
                stage("beta", StagePhase::Ready),
                stage("production", StagePhase::Provisioning),
            ],
            None,
            &at(1),
        );
        assert_eq!(find_condition(&status, READY).unwrap().status, "False");
        assert_eq!(find_condition(&status, RECONCILING).unwrap().status, "True");
        assert_eq!(
            find_condition(&status, READY).unwrap().observed_generation,
            Some(3)
        );
    }

    #[test]
    fn a_stall_is_not_reconciling() {
        let stall = Stall {
            reason: StallReason::InvalidSpec,
            message: "spec.x: bad".into(),
        };
        let status = instance_status(None, Some(1), vec![], Some(&stall), &at(1));
        assert_eq!(find_condition(&status, STALLED).unwrap().status, "True");
        assert_eq!(
            find_condition(&status, STALLED).unwrap().message,
            "spec.x: bad"
        );
        assert_eq!(
            find_condition(&status, RECONCILING).unwrap().status,
            "False"
        );
    }

    #[test]
    fn transition_times_stay_while_status_stays() {
        let first = instance_status(
            None,
            Some(1),
            vec![stage("beta", StagePhase::Ready)],
            None,
            &at(1),
        );
        let again = instance_status(
            Some(&first),
            Some(1),
            vec![stage("beta", StagePhase::Ready)],
            None,
            &at(99),
        );
        assert_eq!(first, again);
        let changed = instance_status(
            Some(&first),
            Some(1),
            vec![stage("beta", StagePhase::Failed)],
            None,
            &at(99),
        );
        assert_eq!(
            find_condition(&changed, READY)
                .unwrap()
                .last_transition_time,
            at(99)
        );
    }
    #[test]
    fn a_failed_stage_degrades_the_instance_and_is_announced_once() {
        let instance = crate::api::MessengerInstance::new("m", Default::default());
        let previous = instance_status(
            None,
            None,
            vec![stage("beta", StagePhase::Ready)],
            None,
            &at(1),
        );
        let mut failed = stage("beta", StagePhase::Failed);
        failed.message = Some("the smoke test failed".into());
        let next = next_status(&instance, &previous, vec![failed.clone()], None, &at(2));
        let degraded = find_condition(&next, DEGRADED).unwrap();
        assert_eq!(degraded.status, "True");
        assert_eq!(degraded.message, "stage beta: the smoke test failed");
        let notices = notices(&previous, &next, None);
        assert_eq!(notices.len(), 2, "{notices:?}");
        assert!(notices[0].warning);
        assert_eq!(notices[0].reason, "StageFailed");
        assert_eq!(notices[1].reason, "NeedsAttention");
        assert_eq!(notices[1].note, "stage beta: the smoke test failed");
        let again = next_status(&instance, &next, vec![failed], None, &at(3));
        assert_eq!(
            again, next,
            "an unchanged instance derives the stored status"
        );
        assert!(super::notices(&next, &again, None).is_empty());
    }

    #[test]
    fn a_stall_is_announced_when_it_begins() {
        let instance = crate::api::MessengerInstance::new("m", Default::default());
        let stall = Stall::new(StallReason::KeysMissing, "stage beta: restore it".into());
        let previous = MessengerInstanceStatus::default();
        let next = next_status(&instance, &previous, vec![], Some(&stall), &at(1));
        let first = notices(&previous, &next, Some(&stall));
        assert!(first.iter().any(|n| n.stalled && n.reason == "KeysMissing"));
        assert!(notices(&next, &next, Some(&stall)).is_empty());
    }
}
