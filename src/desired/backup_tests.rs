use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::*;
use crate::api::{Keep, PvcRepository, Repository, S3Repository, SecretRef, StorageSize};
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

pub(crate) fn backups() -> Backups {
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

pub(crate) fn spec() -> MessengerInstanceSpec {
    MessengerInstanceSpec {
        backups: Some(backups()),
        ..MessengerInstanceSpec::default()
    }
}

pub(crate) fn stage() -> Stage {
    Stage {
        name: "beta".into(),
        ..Stage::default()
    }
}

pub(crate) fn names() -> StageNames {
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
