use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::api::{
    BackupResult, BackupStatus, Keep, PvcRepository, Repository, RestorePhase, S3Repository,
    SecretRef, StagePhase, StageRestore, StageStatus, StorageSize,
};
use crate::observe::jobs::parse_result;
use crate::plan::backups::{BackupHealth, backup_status};
use crate::validate::schedule::{BackupSchedule, ScheduleError};

/// The backup objects as the pipeline builds them: `validate` parses the
/// schedule (and refuses a bad one) before anything is built.
fn resources(inputs: Option<BackupInputs<'_>>) -> Result<BackupResources, ScheduleError> {
    let schedule = inputs
        .as_ref()
        .map(|inputs| BackupSchedule::parse(&inputs.backups.schedule))
        .transpose()?;
    Ok(super::resources(inputs, schedule.as_ref()))
}

/// The CronJob of a stage, its schedule validated first.
fn cron_job(inputs: &BackupInputs<'_>) -> Result<CronJob, ScheduleError> {
    let schedule = BackupSchedule::parse(&inputs.backups.schedule)?;
    Ok(super::cron_job(inputs, &schedule))
}

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
use crate::plan::restore::{RestoreAction, hold_synapse, may_mint_keys, plan_restore};

fn backups() -> Backups {
    Backups {
        schedule: "30 1 * * *".into(),
        keep: Keep {
            daily: 7,
            weekly: 4,
            monthly: 12,
        },
        repository: Repository {
            pvc: Some(PvcRepository {
                size: StorageSize("200Gi".into()),
                storage_class_name: None,
            }),
            s3: None,
        },
        password_secret_ref: SecretRef {
            name: "umessenger-backup-password".into(),
        },
    }
}

fn spec() -> MessengerInstanceSpec {
    MessengerInstanceSpec {
        backups: Some(backups()),
        ..MessengerInstanceSpec::default()
    }
}

fn stage() -> Stage {
    Stage {
        name: "beta".into(),
        ..Stage::default()
    }
}

fn names() -> StageNames {
    StageNames::new("umessenger", "beta")
}

fn env_of(template: &PodTemplateSpec) -> BTreeMap<String, EnvVar> {
    template.spec.as_ref().unwrap().containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name.clone(), e))
        .collect()
}

fn value<'a>(env: &'a BTreeMap<String, EnvVar>, name: &str) -> &'a str {
    env[name]
        .value
        .as_deref()
        .unwrap_or_else(|| panic!("{name} has a value"))
}

#[test]
fn the_cron_job_runs_the_backup_script_with_the_stage_repository_and_keep() {
    let (spec, names) = (spec(), names());
    let base_stage = stage();
    let inputs = BackupInputs::new(&spec, &base_stage, &names, "ns").unwrap();
    let cron = cron_job(&inputs).unwrap();
    assert_eq!(
        cron.metadata.name.as_deref(),
        Some("umessenger-beta-backup")
    );
    let cron_spec = cron.spec.unwrap();
    assert_eq!(cron_spec.schedule, "30 1 * * *");
    assert_eq!(cron_spec.concurrency_policy.as_deref(), Some("Forbid"));
    let template = cron_spec.job_template.spec.unwrap().template;
    let env = env_of(&template);
    assert_eq!(value(&env, "RESTIC_REPOSITORY"), "/repository/restic");
    assert_eq!(value(&env, "CADUCEUS_REASON"), "scheduled");
    assert_eq!(value(&env, "CADUCEUS_KEEP_DAILY"), "7");
    assert_eq!(value(&env, "CADUCEUS_KEEP_WEEKLY"), "4");
    assert_eq!(value(&env, "CADUCEUS_KEEP_MONTHLY"), "12");
    assert_eq!(value(&env, "CADUCEUS_HOST"), "umessenger-beta");
    assert_eq!(value(&env, "PGHOST"), "umessenger-beta-db");
    let password = env["RESTIC_PASSWORD"]
        .value_from
        .clone()
        .unwrap()
        .secret_key_ref
        .unwrap();
    assert_eq!(
        (password.name.as_str(), password.key.as_str()),
        ("umessenger-backup-password", "password")
    );
    let db_password = env["PGPASSWORD"]
        .value_from
        .clone()
        .unwrap()
        .secret_key_ref
        .unwrap();
    assert_eq!(db_password.name, "umessenger-beta-keys");
    let pod = template.spec.unwrap();
    let container = &pod.containers[0];
    assert_eq!(
        container.command.as_ref().unwrap(),
        &["/bin/sh", "/scripts/backup.sh"]
    );
    assert_eq!(container.image.as_deref(), Some(BACKUP_IMAGE));
    assert_eq!(
        container.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    assert_eq!(
        container
            .security_context
            .as_ref()
            .unwrap()
            .read_only_root_filesystem,
        Some(true)
    );
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_user,
        Some(SYNAPSE_UID)
    );
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let volumes = pod.volumes.unwrap();
    let claims: Vec<_> = volumes
        .iter()
        .filter_map(|v| {
            v.persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str())
        })
        .collect();
    assert_eq!(
        claims,
        ["umessenger-beta-media", "umessenger-beta-backup-repository"]
    );
    // Backups run on Synapse's node, where the ReadWriteOnce media claim is.
    let affinity = pod.affinity.unwrap().pod_affinity.unwrap();
    let term = &affinity
        .required_during_scheduling_ignored_during_execution
        .unwrap()[0];
    assert_eq!(term.topology_key, "kubernetes.io/hostname");
}

#[test]
fn the_scripts_config_map_holds_the_repository_scripts() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let map = scripts_config_map(&names(), "ns");
    let data = map.data.unwrap();
    for file in ["backup.sh", "restore.sh"] {
        let on_disk = std::fs::read_to_string(root.join(file)).unwrap();
        assert_eq!(
            data[file], on_disk,
            "{file} in the ConfigMap is the file in scripts/"
        );
    }
}

#[test]
fn an_s3_repository_uses_the_bucket_prefix_and_credentials() {
    let mut spec = spec();
    spec.backups.as_mut().unwrap().repository = Repository {
        pvc: None,
        s3: Some(S3Repository {
            endpoint: "https://s3.eu-de.example.net/".into(),
            bucket: "backups".into(),
            prefix: Some("/messenger/".into()),
            credentials_secret_ref: SecretRef { name: "s3".into() },
        }),
    };
    let names = names();
    let base_stage = stage();
    let inputs = BackupInputs::new(&spec, &base_stage, &names, "ns").unwrap();
    assert!(repository_claim(&inputs).is_none());
    let job = backup_job(&inputs, "manual-1", "scheduled");
    let template = job.spec.unwrap().template;
    let env = env_of(&template);
    assert_eq!(
        value(&env, "RESTIC_REPOSITORY"),
        "s3:https://s3.eu-de.example.net/backups/messenger/umessenger-beta"
    );
    let key = env["AWS_SECRET_ACCESS_KEY"]
        .value_from
        .clone()
        .unwrap()
        .secret_key_ref
        .unwrap();
    assert_eq!(
        (key.name.as_str(), key.key.as_str()),
        ("s3", "AWS_SECRET_ACCESS_KEY")
    );
    let pod = template.spec.unwrap();
    assert!(pod.volumes.unwrap().iter().all(|v| v.name != "repository"));
}

#[test]
fn the_pre_upgrade_backup_is_named_after_the_target_release() {
    let (spec, names) = (spec(), names());
    let base_stage = stage();
    let inputs = BackupInputs::new(&spec, &base_stage, &names, "ns").unwrap();
    let job = pre_upgrade_backup_job(&inputs, "v1.163.2");
    assert_eq!(
        job.metadata.name.as_deref(),
        Some("umessenger-beta-backup-v1-163-2")
    );
    assert_eq!(
        job.metadata.annotations.as_ref().unwrap()[REASON_ANNOTATION],
        "pre-upgrade:v1.163.2"
    );
    let env = env_of(&job.spec.unwrap().template);
    assert_eq!(value(&env, "CADUCEUS_REASON"), "pre-upgrade:v1.163.2");
    assert_eq!(release_suffix("v1.164.0rc1"), "v1-164-0rc1");
}

#[test]
fn names_fit_kubernetes_limits_for_the_longest_instance_and_stage() {
    // The CRD allows 30 characters of instance and 42 of instance + stage.
    let names = StageNames::new(&"i".repeat(22), &"s".repeat(20));
    assert!(
        names.backup().len() <= 52,
        "a CronJob name is at most 52 characters"
    );
    assert!(names.backup_job(&release_suffix("v1.164.10rc1")).len() <= 63);
    assert!(names.restore_job("01234567").len() <= 63);
}

#[test]
fn a_bad_schedule_names_the_field() {
    let mut spec = spec();
    spec.backups.as_mut().unwrap().schedule = "every night".into();
    let names = names();
    let error = resources(BackupInputs::new(&spec, &stage(), &names, "ns")).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("spec.backups.schedule 'every night' is not a cron schedule"),
        "{error}"
    );
    spec.backups.as_mut().unwrap().schedule = "0 0 31 2 *".into();
    let error = resources(BackupInputs::new(&spec, &stage(), &names, "ns")).unwrap_err();
    assert!(error.to_string().contains("never fires"), "{error}");
    assert!(resources(None).unwrap().schedule.is_none());
}

#[test]
fn restore_jobs_verify_keys_and_do_not_retry() {
    let (spec, names) = (spec(), names());
    let base_stage = stage();
    let inputs = BackupInputs::new(&spec, &base_stage, &names, "ns").unwrap();
    let job = restore_job(&inputs, "latest");
    assert_eq!(
        job.metadata.name.as_deref(),
        Some("umessenger-beta-restore-latest")
    );
    let job_spec = job.spec.unwrap();
    assert_eq!(job_spec.backoff_limit, Some(0));
    let env = env_of(&job_spec.template);
    assert_eq!(value(&env, "CADUCEUS_SNAPSHOT"), "latest");
    assert_eq!(value(&env, "CADUCEUS_KEYS_RESTORE"), "verify");
    let pod = job_spec.template.spec.unwrap();
    assert!(
        pod.affinity.is_none(),
        "a restore runs while Synapse is stopped"
    );
    let keys = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "keys")
        .unwrap();
    assert_eq!(keys.secret.unwrap().optional, Some(true));
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
