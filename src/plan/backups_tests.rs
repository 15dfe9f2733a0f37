//! The backup and restore planners' tests: Job results, backup status and
//! health, and restores, on the fixtures of `desired::backup`'s tests.

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

use crate::api::{
    BackupResult, BackupStatus, RestorePhase, Stage, StagePhase, StageRestore, StageStatus,
};
use crate::desired::backup::tests::{names, spec, stage};
use crate::desired::backup::{BackupInputs, COMPONENT, RESTORE_COMPONENT, restore_job};
use crate::names::StageNames;
use crate::observe::jobs::parse_result;
use crate::plan::backups::{BackupHealth, backup_status};
use crate::plan::restore::{RestoreAction, hold_synapse, may_mint_keys, plan_restore};
use crate::validate::schedule::{BackupSchedule, ScheduleError};

/// A stage's backup health against a validated schedule.
fn backup_health(
    stage: &str,
    schedule: &str,
    status: Option<&BackupStatus>,
    since: Timestamp,
    now: Timestamp,
) -> Result<BackupHealth, ScheduleError> {
    let schedule = BackupSchedule::parse(schedule)?;
    crate::plan::backups::backup_health(stage, &schedule, status, since, now)
}
// --- reading Jobs -----------------------------------------------------------

fn at(seconds: i64) -> Time {
    Time(Timestamp::from_second(seconds).unwrap())
}

const DAY: i64 = 86_400;
/// 2026-01-01T00:00:00Z
const JAN_1: i64 = 1_767_225_600;

fn finished_job(name: &str, uid: &str, component: &str, succeeded: bool, time: i64) -> Job {
    let names = names();
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(uid.into()),
            labels: Some(names.labels(component)),
            ..ObjectMeta::default()
        },
        status: Some(JobStatus {
            completion_time: succeeded.then(|| at(time)),
            conditions: Some(vec![JobCondition {
                type_: if succeeded { "Complete" } else { "Failed" }.into(),
                status: "True".into(),
                last_transition_time: Some(at(time)),
                message: (!succeeded).then(|| "Job has reached the specified backoff limit".into()),
                ..JobCondition::default()
            }]),
            ..JobStatus::default()
        }),
        ..Job::default()
    }
}

fn running_job(name: &str, component: &str) -> Job {
    let mut job = finished_job(name, "uid-running", component, true, 0);
    job.status = Some(JobStatus {
        active: Some(1),
        ..JobStatus::default()
    });
    job
}

fn pod_of(uid: &str, message: &str, time: i64) -> Pod {
    Pod {
        metadata: ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                uid: uid.into(),
                kind: "Job".into(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        status: Some(PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        message: Some(message.into()),
                        finished_at: Some(at(time)),
                        ..ContainerStateTerminated::default()
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        }),
        ..Pod::default()
    }
}

#[test]
fn the_result_line_is_found_after_a_log_tail() {
    let message = "pg_dump: dumping contents\n{\"result\":\"success\",\"snapshot\":\"1a2b3c4d\",\"seconds\":3}\n";
    let result = parse_result(message).unwrap();
    assert_eq!(result.snapshot.as_deref(), Some("1a2b3c4d"));
    assert!(parse_result("Killed").is_none());
}

#[test]
fn backup_status_records_the_last_run_and_keeps_the_last_success() {
    let names = names();
    let ok = finished_job("umessenger-beta-backup-1", "u1", COMPONENT, true, JAN_1);
    let failed = finished_job(
        "umessenger-beta-backup-2",
        "u2",
        COMPONENT,
        false,
        JAN_1 + DAY,
    );
    let other_stage = {
        let mut job = finished_job(
            "umessenger-prod-backup-9",
            "u9",
            COMPONENT,
            true,
            JAN_1 + 2 * DAY,
        );
        job.metadata.labels = Some(StageNames::new("umessenger", "prod").labels(COMPONENT));
        job
    };
    let pods = vec![
        pod_of("u1", r#"{"result":"success","snapshot":"1a2b3c4d"}"#, JAN_1),
        pod_of(
            "u2",
            r#"{"result":"failure","message":"the backup repository at /repository/restic is full (no space left on device)"}"#,
            JAN_1 + DAY,
        ),
    ];
    let status = backup_status(None, &names, &[ok.clone(), failed, other_stage], &pods).unwrap();
    assert_eq!(status.last_success_time, Some(at(JAN_1)));
    assert_eq!(status.last_success_snapshot.as_deref(), Some("1a2b3c4d"));
    assert_eq!(status.last_time, Some(at(JAN_1 + DAY)));
    assert_eq!(status.last_result, Some(BackupResult::Failed));
    assert!(status.last_message.as_deref().unwrap().contains("is full"));
    assert_eq!(status.last_job.as_deref(), Some("umessenger-beta-backup-2"));

    // The Jobs are gone (history limits); what was recorded stays.
    assert_eq!(
        backup_status(Some(&status), &names, &[], &[]),
        Some(status.clone())
    );
    // A success whose pod is gone still counts, without a snapshot id.
    let later = finished_job(
        "umessenger-beta-backup-3",
        "u3",
        COMPONENT,
        true,
        JAN_1 + 2 * DAY,
    );
    let next = backup_status(Some(&status), &names, &[later], &[]).unwrap();
    assert_eq!(next.last_result, Some(BackupResult::Succeeded));
    assert_eq!(next.last_success_time, Some(at(JAN_1 + 2 * DAY)));
    assert_eq!(next.last_success_snapshot, None);
    assert_eq!(next.last_message, None);
    assert_eq!(backup_status(None, &names, &[], &[]), None);
    assert_eq!(
        backup_status(
            None,
            &names,
            &[running_job("umessenger-beta-backup-4", COMPONENT)],
            &[]
        ),
        None
    );
}

#[test]
fn backups_are_stale_after_two_missed_runs_and_failing_before() {
    let schedule = "30 1 * * *";
    let success = |time: i64, failed: bool| BackupStatus {
        last_success_time: Some(at(time)),
        last_success_snapshot: Some("1a2b3c4d".into()),
        last_time: Some(at(if failed { time + DAY } else { time })),
        last_result: Some(if failed {
            BackupResult::Failed
        } else {
            BackupResult::Succeeded
        }),
        last_job: Some("umessenger-beta-backup-2".into()),
        last_message: failed.then(|| "the database is unreachable".into()),
    };
    let since = Timestamp::from_second(JAN_1 - 30 * DAY).unwrap();
    let now = |seconds: i64| Timestamp::from_second(seconds).unwrap();
    // Succeeded Jan 1 at 01:40; the schedule fires Jan 2 and Jan 3 at 01:30.
    let last = JAN_1 + 6000;
    assert_eq!(
        backup_health(
            "beta",
            schedule,
            Some(&success(last, false)),
            since,
            now(last + DAY)
        )
        .unwrap(),
        BackupHealth::Healthy
    );
    let failing = backup_health(
        "beta",
        schedule,
        Some(&success(last, true)),
        since,
        now(last + DAY + 60),
    )
    .unwrap();
    let (kind, _, message) = failing.condition().unwrap();
    assert_eq!(kind, "BackupsFailing");
    assert!(message.contains("the database is unreachable"), "{message}");
    // Jan 3 01:30 plus the grace of an hour is the deadline.
    let deadline = JAN_1 + 2 * DAY + 5400 + 3600;
    assert!(matches!(
        backup_health(
            "beta",
            schedule,
            Some(&success(last, false)),
            since,
            now(deadline)
        )
        .unwrap(),
        BackupHealth::Healthy
    ));
    let stale = backup_health(
        "beta",
        schedule,
        Some(&success(last, true)),
        since,
        now(deadline + 1),
    )
    .unwrap();
    let (kind, reason, message) = stale.condition().unwrap();
    assert_eq!((kind, reason), ("BackupsStale", "NoRecentBackup"));
    assert!(message.contains("snapshot 1a2b3c4d"), "{message}");
    assert!(message.contains("the database is unreachable"), "{message}");
    // A stage that never had a backup is pending until two runs were missed.
    assert_eq!(
        backup_health("beta", schedule, None, now(JAN_1), now(JAN_1 + DAY)).unwrap(),
        BackupHealth::Pending
    );
    assert!(matches!(
        backup_health("beta", schedule, None, now(JAN_1), now(JAN_1 + 3 * DAY)).unwrap(),
        BackupHealth::Stale { .. }
    ));
    // An hourly schedule is stale after a little over two hours.
    assert!(matches!(
        backup_health(
            "beta",
            "0 * * * *",
            Some(&success(JAN_1, false)),
            since,
            now(JAN_1 + 2 * 3600 + 1801)
        )
        .unwrap(),
        BackupHealth::Stale { .. }
    ));
}

// --- restores ---------------------------------------------------------------

fn restoring_stage(snapshot: &str) -> Stage {
    Stage {
        name: "beta".into(),
        restore: Some(StageRestore {
            snapshot: snapshot.into(),
        }),
        ..Stage::default()
    }
}

#[test]
fn a_restore_runs_its_job_holds_synapse_and_reports_progress() {
    let (spec, names) = (spec(), names());
    let base_stage = stage();
    let inputs = BackupInputs::new(&spec, &base_stage, &names, "ns").unwrap();
    let stage = restoring_stage("latest");
    let fresh = StageStatus {
        name: "beta".into(),
        phase: StagePhase::Provisioning,
        ..StageStatus::default()
    };

    let (status, action) = plan_restore(Some(inputs.names), &stage, Some(&fresh), &[], &[]);
    assert_eq!(status.as_ref().unwrap().phase, RestorePhase::Pending);
    let RestoreAction::Run(run) = &action else {
        panic!("expected a Job, got {action:?}")
    };
    let job = restore_job(&inputs, &run.snapshot);
    assert_eq!(
        job.metadata.name.as_deref(),
        Some("umessenger-beta-restore-latest")
    );
    assert!(hold_synapse(&action));
    assert!(!may_mint_keys(&stage));

    let running = running_job("umessenger-beta-restore-latest", RESTORE_COMPONENT);
    let (status, action) = plan_restore(Some(inputs.names), &stage, Some(&fresh), &[running], &[]);
    assert_eq!(status.unwrap().phase, RestorePhase::Running);
    assert!(hold_synapse(&action));

    let done = finished_job(
        "umessenger-beta-restore-latest",
        "r1",
        RESTORE_COMPONENT,
        true,
        JAN_1,
    );
    let pods = [pod_of(
        "r1",
        r#"{"result":"success","snapshot":"1a2b3c4d","mediaFiles":3}"#,
        JAN_1,
    )];
    let (status, action) = plan_restore(Some(inputs.names), &stage, Some(&fresh), &[done], &pods);
    let status = status.unwrap();
    assert_eq!(status.phase, RestorePhase::Succeeded);
    assert_eq!(status.snapshot.as_deref(), Some("1a2b3c4d"));
    assert_eq!(status.finished_at, Some(at(JAN_1)));
    assert_eq!(action, RestoreAction::None);

    // Once succeeded, the stage runs and the field may stay in git.
    let ready = StageStatus {
        phase: StagePhase::Ready,
        ready_since: Some(at(JAN_1 + 60)),
        restore: Some(status.clone()),
        ..fresh.clone()
    };
    let (again, action) = plan_restore(Some(inputs.names), &stage, Some(&ready), &[], &[]);
    assert_eq!(again, Some(status));
    assert_eq!(action, RestoreAction::None);
}

#[test]
fn a_restore_is_refused_on_a_running_stage_and_on_a_database_with_tables() {
    let (spec, names) = (spec(), names());
    let base_stage = stage();
    let inputs = BackupInputs::new(&spec, &base_stage, &names, "ns").unwrap();
    let stage = restoring_stage("1a2b3c4d");
    let running = StageStatus {
        name: "beta".into(),
        phase: StagePhase::Ready,
        ready_since: Some(at(JAN_1)),
        ..StageStatus::default()
    };
    let (status, action) = plan_restore(Some(inputs.names), &stage, Some(&running), &[], &[]);
    let status = status.unwrap();
    assert_eq!(status.phase, RestorePhase::Refused);
    assert!(status.message.unwrap().contains("live data"));
    assert_eq!(action, RestoreAction::None);

    let fresh = StageStatus {
        name: "beta".into(),
        ..StageStatus::default()
    };
    let refused = finished_job(
        "umessenger-beta-restore-1a2b3c4d",
        "r2",
        RESTORE_COMPONENT,
        false,
        JAN_1,
    );
    let pods = [pod_of(
        "r2",
        r#"{"result":"refused","message":"the database synapse is not empty (120 tables)"}"#,
        JAN_1,
    )];
    let (status, action) =
        plan_restore(Some(inputs.names), &stage, Some(&fresh), &[refused], &pods);
    assert_eq!(status.unwrap().phase, RestorePhase::Refused);
    assert!(
        !hold_synapse(&action),
        "a refused restore changed nothing, so Synapse runs"
    );

    let failed = finished_job(
        "umessenger-beta-restore-1a2b3c4d",
        "r3",
        RESTORE_COMPONENT,
        false,
        JAN_1,
    );
    let pods = [pod_of(
        "r3",
        r#"{"result":"failure","message":"wrong repository password"}"#,
        JAN_1,
    )];
    let (status, action) = plan_restore(Some(inputs.names), &stage, Some(&fresh), &[failed], &pods);
    let status = status.unwrap();
    assert_eq!(status.phase, RestorePhase::Failed);
    let message = status.message.unwrap();
    assert!(
        message.contains("wrong repository password") && message.contains("delete Job"),
        "{message}"
    );
    assert_eq!(action, RestoreAction::Hold);

    // No restore declared: nothing to do, the old record stays.
    let plain = Stage {
        name: "beta".into(),
        ..Stage::default()
    };
    assert_eq!(
        plan_restore(Some(inputs.names), &plain, Some(&fresh), &[], &[]),
        (None, RestoreAction::None)
    );
    assert!(may_mint_keys(&plain));
}
