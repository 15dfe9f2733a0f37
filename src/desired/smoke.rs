//! The smoke-test Job a stage runs after a rollout: the repository's
//! `scripts/smoke-test.py`, mounted from a ConfigMap, run in the Synapse
//! image of the new release against the stage's Service.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, PodSpec, PodTemplateSpec,
    SecretKeySelector, Volume, VolumeMount,
};
use kube::api::ObjectMeta;

use crate::api::{MessengerInstanceSpec, Release};

use super::homeserver::CLIENT_PORT;
use super::keys::REGISTRATION_SHARED_SECRET;
use super::pod::{
    SYNAPSE_REPOSITORY, container_resources, image, pull_policy, restricted_container,
    restricted_pod_spec, stage_meta,
};
use super::synapse::SYNAPSE_UID;
use crate::names::release_suffix;
use crate::names::{SMOKE_TEST_COMPONENT, StageNames};

/// The script, as in the repository.
pub const SMOKE_TEST_SCRIPT: &str = include_str!("../../scripts/smoke-test.py");
const SCRIPT_FILE: &str = "smoke-test.py";
const SCRIPT_DIR: &str = "/scripts";

/// The ConfigMap with the smoke-test script.
pub fn script_config_map(names: &StageNames, namespace: &str) -> ConfigMap {
    ConfigMap {
        metadata: stage_meta(
            names,
            namespace,
            names.smoke_test_script(),
            SMOKE_TEST_COMPONENT,
        ),
        data: Some(BTreeMap::from([(
            SCRIPT_FILE.to_owned(),
            SMOKE_TEST_SCRIPT.to_owned(),
        )])),
        ..ConfigMap::default()
    }
}

/// The smoke-test Job of `release`, named after it so a restarted operator
/// finds it instead of running a second one. It does not retry: a failed
/// smoke test is an answer, not a glitch.
pub fn job(
    spec: &MessengerInstanceSpec,
    names: &StageNames,
    namespace: &str,
    release: &Release,
    encrypted: bool,
) -> Job {
    let env = vec![
        EnvVar {
            name: "SYNAPSE_URL".into(),
            value: Some(format!("http://{}:{CLIENT_PORT}", names.synapse())),
            ..EnvVar::default()
        },
        EnvVar {
            name: "EXPECT_ENCRYPTION".into(),
            value: Some(encrypted.to_string()),
            ..EnvVar::default()
        },
        EnvVar {
            name: "REGISTRATION_SHARED_SECRET".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: names.keys_secret(),
                    key: REGISTRATION_SHARED_SECRET.into(),
                    ..SecretKeySelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
    ];
    let container = Container {
        name: SMOKE_TEST_COMPONENT.into(),
        image: Some(image(
            &spec.images,
            spec.images.synapse.as_ref(),
            SYNAPSE_REPOSITORY,
            Some(release.synapse.as_str()),
        )),
        image_pull_policy: pull_policy(&spec.images),
        command: Some(vec![
            "python3".into(),
            format!("{SCRIPT_DIR}/{SCRIPT_FILE}"),
        ]),
        env: Some(env),
        security_context: Some(restricted_container()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        resources: Some(container_resources("50m", "64Mi", "256Mi")),
        volume_mounts: Some(vec![VolumeMount {
            name: "script".into(),
            mount_path: SCRIPT_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    Job {
        metadata: stage_meta(
            names,
            namespace,
            names.smoke_test_job(&release_suffix(release.synapse.as_str())),
            SMOKE_TEST_COMPONENT,
        ),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names.labels(SMOKE_TEST_COMPONENT)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    volumes: Some(vec![Volume {
                        name: "script".into(),
                        config_map: Some(ConfigMapVolumeSource {
                            name: names.smoke_test_script(),
                            default_mode: Some(0o555),
                            ..ConfigMapVolumeSource::default()
                        }),
                        ..Volume::default()
                    }]),
                    ..restricted_pod_spec(container, SYNAPSE_UID, &spec.images)
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}
