//! Backups and restores of a stage: the scheduled backup CronJob, one-off
//! backup Jobs (the pre-upgrade backup of a rollout), the restore Job of a
//! declared restore, the restic repository's claim and the ConfigMap with
//! the scripts. What the Jobs reported is read by `observe::jobs` and
//! planned in `plan::backups` and `plan::restore`.
//!
//! The scripts in `scripts/` are compiled in and mounted into every Job, so
//! the Jobs run exactly the scripts the tests run. Each script writes its
//! result as one JSON line to the container's termination message; the
//! operator reads it from the pod's status (no extra permissions, no
//! side channel), and falls back to the Job's own conditions once the pod
//! is gone.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, PodAffinity, PodAffinityTerm,
    PodSpec, PodTemplateSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ObjectMeta;

use crate::api::{Backups, MessengerInstanceSpec, Stage};

use super::database::{self, secret_env};
use super::placement;
use super::pod::{
    container_resources, image, pull_policy, restricted_container, restricted_pod_spec, stage_meta,
};
use super::synapse::{self, SYNAPSE_UID, volume_claim};
use crate::names::{StageNames, release_suffix, restore_suffix};
use crate::validate::schedule::BackupSchedule;

/// The backup script, as in `scripts/backup.sh`.
pub const BACKUP_SCRIPT: &str = include_str!("../../scripts/backup.sh");
/// The restore script, as in `scripts/restore.sh`.
pub const RESTORE_SCRIPT: &str = include_str!("../../scripts/restore.sh");
/// What both scripts source from their own directory (result line,
/// failures, clean-up on every exit), as in `scripts/lib.sh`.
pub const SCRIPTS_LIB: &str = include_str!("../../scripts/lib.sh");

/// How long a restore waits for the stage's database to accept connections
/// before it fails: the database of a new stage starts with the restore Job.
const RESTORE_DATABASE_WAIT_SECONDS: u32 = 300;

/// The default image of backup and restore Jobs: it needs restic and the
/// PostgreSQL client tools (at least the server's major version), and there
/// is no official image with both. This one is built from
/// `images/backup/Dockerfile` (the official PostgreSQL image plus Debian's
/// restic); `spec.images.backup` replaces it.
pub const BACKUP_IMAGE: &str = "ghcr.io/caduceus-dev/backup:pg17-restic0.14";

pub use crate::names::{BACKUP_COMPONENT as COMPONENT, RESTORE_COMPONENT};
/// The annotation of a backup Job that names why it runs (`scheduled` or
/// `pre-upgrade:<release>`).
pub const REASON_ANNOTATION: &str = "caduceus.dev/backup-reason";

/// Where things are mounted in backup and restore pods. `/backup` is
/// scratch space with the media store mounted inside it, so snapshots have
/// the same layout wherever they were taken.
const BACKUP_ROOT: &str = "/backup";
const MEDIA_MOUNT: &str = "/backup/media";
const KEYS_MOUNT: &str = "/keys";
const SCRIPTS_MOUNT: &str = "/scripts";
const REPOSITORY_MOUNT: &str = "/repository";
/// The repository inside its claim, not the claim's root, so `lost+found`
/// is no part of it.
const REPOSITORY_PATH: &str = "/repository/restic";

/// What the backup objects of a stage are built from.
#[derive(Clone, Copy, Debug)]
pub struct BackupInputs<'a> {
    pub spec: &'a MessengerInstanceSpec,
    pub backups: &'a Backups,
    pub stage: &'a Stage,
    pub names: &'a StageNames,
    pub namespace: &'a str,
}

impl<'a> BackupInputs<'a> {
    /// The inputs of a stage, or `None` when the instance takes no backups.
    pub fn new(
        spec: &'a MessengerInstanceSpec,
        stage: &'a Stage,
        names: &'a StageNames,
        namespace: &'a str,
    ) -> Option<Self> {
        Some(Self {
            spec,
            backups: spec.backups.as_ref()?,
            stage,
            names,
            namespace,
        })
    }
}

/// The backup objects applied with every reconcile.
#[derive(Clone, Debug, Default)]
pub struct BackupResources {
    pub scripts: Option<ConfigMap>,
    /// The repository's claim (retained), for `repository.pvc`.
    pub repository: Option<PersistentVolumeClaim>,
    pub schedule: Option<CronJob>,
}

/// The scripts ConfigMap, the repository claim and the CronJob of a stage;
/// nothing when the instance takes no backups. `schedule` is the validated
/// `spec.backups.schedule` (set exactly when `inputs` is).
pub fn resources(
    inputs: Option<BackupInputs<'_>>,
    schedule: Option<&BackupSchedule>,
) -> BackupResources {
    let (Some(inputs), Some(schedule)) = (inputs, schedule) else {
        return BackupResources::default();
    };
    BackupResources {
        scripts: Some(scripts_config_map(inputs.names, inputs.namespace)),
        repository: repository_claim(&inputs),
        schedule: Some(cron_job(&inputs, schedule)),
    }
}

/// The ConfigMap with `backup.sh`, `restore.sh` and the `lib.sh` they
/// source (mounted together, so the Jobs run the very files the tests run).
pub fn scripts_config_map(names: &StageNames, namespace: &str) -> ConfigMap {
    ConfigMap {
        metadata: stage_meta(names, namespace, names.backup_scripts(), COMPONENT),
        data: Some(BTreeMap::from([
            ("backup.sh".to_owned(), BACKUP_SCRIPT.to_owned()),
            ("restore.sh".to_owned(), RESTORE_SCRIPT.to_owned()),
            ("lib.sh".to_owned(), SCRIPTS_LIB.to_owned()),
        ])),
        ..ConfigMap::default()
    }
}

/// The claim holding the restic repository, for `repository.pvc`. Retained:
/// backups outlive the instance unless the deletion policy says otherwise.
pub fn repository_claim(inputs: &BackupInputs<'_>) -> Option<PersistentVolumeClaim> {
    let pvc = inputs.backups.repository.pvc.as_ref()?;
    Some(volume_claim(
        stage_meta(
            inputs.names,
            inputs.namespace,
            inputs.names.backup_repository(),
            COMPONENT,
        ),
        &pvc.size,
        pvc.storage_class_name.clone(),
    ))
}

/// The restic repository URL of a stage.
pub fn repository_url(backups: &Backups, names: &StageNames) -> String {
    match &backups.repository.s3 {
        Some(s3) => {
            let endpoint = s3.endpoint.trim_end_matches('/');
            let prefix = s3
                .prefix
                .as_deref()
                .map(|p| p.trim_matches('/'))
                .filter(|p| !p.is_empty());
            match prefix {
                Some(prefix) => format!("s3:{endpoint}/{}/{prefix}/{}", s3.bucket, names.base()),
                None => format!("s3:{endpoint}/{}/{}", s3.bucket, names.base()),
            }
        }
        None => REPOSITORY_PATH.to_owned(),
    }
}

/// The restic host every snapshot of the stage is written under; retention
/// groups by it, so it must not change between runs.
pub fn restic_host(names: &StageNames) -> String {
    names.base()
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// The environment shared by backup and restore: repository, database,
/// stage and paths.
fn common_env(inputs: &BackupInputs<'_>) -> Vec<EnvVar> {
    let BackupInputs {
        spec,
        backups,
        names,
        namespace,
        ..
    } = *inputs;
    let connection = database::connection(spec, names);
    let mut vars = vec![
        env("CADUCEUS_STAGE", names.stage.clone()),
        env("CADUCEUS_HOST", restic_host(names)),
        env("CADUCEUS_BACKUP_ROOT", BACKUP_ROOT),
        env("CADUCEUS_KEYS_DIR", KEYS_MOUNT),
        env("CADUCEUS_KEYS_SECRET", names.keys_secret()),
        env("CADUCEUS_NAMESPACE", namespace),
        env("RESTIC_REPOSITORY", repository_url(backups, names)),
        secret_env(
            "RESTIC_PASSWORD",
            &crate::api::SecretKeyRef {
                name: backups.password_secret_ref.name.clone(),
                key: "password".into(),
            },
        ),
        // The root file system is read-only.
        env("HOME", "/tmp"),
        env("RESTIC_CACHE_DIR", "/tmp/restic-cache"),
        env("PGHOST", connection.host),
        env("PGPORT", connection.port.to_string()),
        env("PGDATABASE", connection.database),
        env("PGUSER", connection.user),
        secret_env("PGPASSWORD", &database::password_source(spec, names)),
        env("PGCONNECT_TIMEOUT", "15"),
    ];
    if let Some(mode) = connection.ssl_mode {
        vars.push(env("PGSSLMODE", mode));
    }
    if let Some(s3) = &backups.repository.s3 {
        for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            vars.push(secret_env(
                key,
                &crate::api::SecretKeyRef {
                    name: s3.credentials_secret_ref.name.clone(),
                    key: key.into(),
                },
            ));
        }
    }
    vars
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn claim_volume(name: &str, claim: String, read_only: bool) -> Volume {
    Volume {
        name: name.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim,
            read_only: Some(read_only),
        }),
        ..Volume::default()
    }
}

/// What a backup or restore pod does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Task<'a> {
    Backup { reason: &'a str },
    Restore { snapshot: &'a str },
}

/// The pod of a backup or restore Job.
fn pod_template(inputs: &BackupInputs<'_>, task: Task<'_>) -> PodTemplateSpec {
    let BackupInputs {
        spec,
        backups,
        stage,
        names,
        ..
    } = *inputs;
    let mut vars = common_env(inputs);
    let (script, component, media_read_only) = match task {
        Task::Backup { reason } => {
            vars.push(env("CADUCEUS_REASON", reason));
            vars.push(env("CADUCEUS_KEEP_DAILY", backups.keep.daily.to_string()));
            vars.push(env("CADUCEUS_KEEP_WEEKLY", backups.keep.weekly.to_string()));
            vars.push(env(
                "CADUCEUS_KEEP_MONTHLY",
                backups.keep.monthly.to_string(),
            ));
            // The repository claim is the stage's own and starts empty; an
            // S3 location without a repository is one the platform team
            // chose for this stage. A wrong password or an unreachable
            // repository is never mistaken for a missing one.
            vars.push(env("CADUCEUS_REPOSITORY_INIT", "allow"));
            ("backup.sh", COMPONENT, true)
        }
        Task::Restore { snapshot } => {
            vars.push(env("CADUCEUS_SNAPSHOT", snapshot));
            // The keys Secret is read-only here: it must already hold the
            // snapshot's keys (the script says how to recreate it if not).
            vars.push(env("CADUCEUS_KEYS_RESTORE", "verify"));
            // The restore Job starts together with the new stage's database.
            vars.push(env(
                "CADUCEUS_DATABASE_WAIT_SECONDS",
                RESTORE_DATABASE_WAIT_SECONDS.to_string(),
            ));
            ("restore.sh", RESTORE_COMPONENT, false)
        }
    };
    let mut mounts = vec![
        mount("work", BACKUP_ROOT, false),
        mount("media", MEDIA_MOUNT, media_read_only),
        mount("keys", KEYS_MOUNT, true),
        mount("scripts", SCRIPTS_MOUNT, true),
        mount("tmp", "/tmp", false),
    ];
    let mut volumes = vec![
        empty_dir("work"),
        claim_volume("media", names.media(), media_read_only),
        {
            let mut keys = synapse::secret_volume("keys", names.keys_secret(), None);
            if let Some(secret) = keys.secret.as_mut() {
                // A restore in a new cluster starts without the Secret; the
                // script then says how to recreate it from the snapshot.
                secret.optional = Some(matches!(task, Task::Restore { .. }));
            }
            keys
        },
        Volume {
            name: "scripts".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names.backup_scripts(),
                default_mode: Some(0o555),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        empty_dir("tmp"),
    ];
    if backups.repository.pvc.is_some() {
        mounts.push(mount(
            "repository",
            REPOSITORY_MOUNT,
            matches!(task, Task::Restore { .. }),
        ));
        volumes.push(claim_volume(
            "repository",
            names.backup_repository(),
            matches!(task, Task::Restore { .. }),
        ));
    }
    let container = Container {
        name: component.into(),
        image: Some(image(
            &spec.images,
            spec.images.backup.as_ref(),
            BACKUP_IMAGE,
            None,
        )),
        image_pull_policy: pull_policy(&spec.images),
        command: Some(vec!["/bin/sh".into(), format!("{SCRIPTS_MOUNT}/{script}")]),
        env: Some(vars),
        resources: Some(container_resources("100m", "256Mi", "2Gi")),
        security_context: Some(restricted_container()),
        volume_mounts: Some(mounts),
        termination_message_path: Some("/dev/termination-log".into()),
        // The script's result line; its log tail if it died without one.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    };
    // The media claim is ReadWriteOnce and Synapse holds it: a backup runs on
    // Synapse's node. A restore runs while Synapse is stopped.
    let co_location = matches!(task, Task::Backup { .. }).then(|| PodAffinity {
        required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some(names.selector(synapse::COMPONENT)),
                ..LabelSelector::default()
            }),
            topology_key: placement::HOSTNAME_KEY.into(),
            ..PodAffinityTerm::default()
        }]),
        ..PodAffinity::default()
    });
    let mut pod = PodSpec {
        restart_policy: Some("Never".into()),
        volumes: Some(volumes),
        // Same uid and group as Synapse: the media files stay Synapse's
        // and no volume is re-owned between the two.
        ..restricted_pod_spec(container, SYNAPSE_UID, &spec.images)
    };
    placement::pod_placement(
        spec,
        stage,
        placement::Component::Backups,
        &names.selector(component),
    )
    .apply_to(&mut pod);
    if let Some(co_location) = co_location {
        pod.affinity
            .get_or_insert_with(Affinity::default)
            .pod_affinity = Some(co_location);
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(names.labels(component)),
            ..ObjectMeta::default()
        }),
        spec: Some(pod),
    }
}

fn job_spec(template: PodTemplateSpec, retries: i32) -> JobSpec {
    JobSpec {
        template,
        backoff_limit: Some(retries),
        // A hung dump must not block every later backup.
        active_deadline_seconds: Some(12 * 3600),
        ..JobSpec::default()
    }
}

/// The scheduled backup CronJob of a stage.
pub fn cron_job(inputs: &BackupInputs<'_>, schedule: &BackupSchedule) -> CronJob {
    let names = inputs.names;
    CronJob {
        metadata: stage_meta(names, inputs.namespace, names.backup(), COMPONENT),
        spec: Some(CronJobSpec {
            schedule: schedule.text.clone(),
            time_zone: Some("Etc/UTC".into()),
            // Never two backups of a stage at once; restic would serialise
            // them on its lock anyway.
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(3600),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names.labels(COMPONENT)),
                    annotations: Some(BTreeMap::from([(
                        REASON_ANNOTATION.to_owned(),
                        "scheduled".to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(job_spec(
                    pod_template(
                        inputs,
                        Task::Backup {
                            reason: "scheduled",
                        },
                    ),
                    2,
                )),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    }
}

/// A one-off backup Job named `<instance>-<stage>-backup-<name_suffix>`,
/// tagged with `reason` (`scheduled` or `pre-upgrade:<release>`). The name
/// is the idempotency key: the same suffix never runs twice.
pub fn backup_job(inputs: &BackupInputs<'_>, name_suffix: &str, reason: &str) -> Job {
    let names = inputs.names;
    let mut metadata = stage_meta(
        names,
        inputs.namespace,
        names.backup_job(name_suffix),
        COMPONENT,
    );
    metadata.annotations = Some(BTreeMap::from([(
        REASON_ANNOTATION.to_owned(),
        reason.to_owned(),
    )]));
    Job {
        metadata,
        spec: Some(job_spec(pod_template(inputs, Task::Backup { reason }), 2)),
        ..Job::default()
    }
}

/// The pre-upgrade backup before moving a stage to `release`, named after
/// it (`…-backup-v1-163-2`), so a restarted operator finds the Job of a
/// rollout instead of taking a second backup.
pub fn pre_upgrade_backup_job(inputs: &BackupInputs<'_>, release: &str) -> Job {
    backup_job(
        inputs,
        &release_suffix(release),
        &format!("pre-upgrade:{release}"),
    )
}

/// The restore Job of a requested snapshot (`latest` or an id), named after
/// the request. It is not retried: a refusal is final and a failure needs a
/// person.
pub fn restore_job(inputs: &BackupInputs<'_>, snapshot: &str) -> Job {
    let names = inputs.names;
    Job {
        metadata: stage_meta(
            names,
            inputs.namespace,
            names.restore_job(&restore_suffix(snapshot)),
            RESTORE_COMPONENT,
        ),
        spec: Some(job_spec(
            pod_template(inputs, Task::Restore { snapshot }),
            0,
        )),
        ..Job::default()
    }
}

#[cfg(test)]
#[path = "backup_tests.rs"]
pub(crate) mod tests;
