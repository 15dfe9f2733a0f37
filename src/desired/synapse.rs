//! The Synapse workload of a stage: its configuration objects, StatefulSet,
//! Service and media volume claim.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, KeyToPath,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSpec,
    Probe, Secret, SecretVolumeSource, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use sha2::{Digest, Sha256};

use crate::api::{MessengerInstanceSpec, StorageSize};

use super::homeserver::{
    CLIENT_PORT, CONFIG_DIR, FEDERATION_PORT, HOMESERVER_FILE, HomeserverFiles, KEYS_DIR,
    LOG_CONFIG_FILE, MEDIA_DIR, METRICS_PORT, SECRET_CONFIG_DIR, SECRETS_FILE, TMP_DIR,
};
use super::keys::SIGNING_KEY;
use super::placement::PodPlacement;
use super::pod::SYNAPSE_REPOSITORY;
use super::pod::{
    annotation, component_container, container_resources, http_probe, restricted_container,
    restricted_pod_spec, stage_meta, stage_stateful_set,
};
use crate::names::{CONFIG_HASH_ANNOTATION, StageNames};

/// The component label of Synapse's objects.
pub const COMPONENT: &str = "synapse";
/// The uid the Synapse image runs as.
pub const SYNAPSE_UID: i64 = 991;

/// The ConfigMap with `homeserver.yaml` and the log config.
pub fn config_map(names: &StageNames, namespace: &str, files: &HomeserverFiles) -> ConfigMap {
    ConfigMap {
        metadata: stage_meta(names, namespace, names.homeserver_config(), COMPONENT),
        data: Some(BTreeMap::from([
            (HOMESERVER_FILE.to_owned(), files.homeserver_yaml.clone()),
            (LOG_CONFIG_FILE.to_owned(), files.log_yaml.clone()),
        ])),
        ..ConfigMap::default()
    }
}

/// The Secret with the secret part of the configuration.
pub fn config_secret(names: &StageNames, namespace: &str, files: &HomeserverFiles) -> Secret {
    Secret {
        metadata: stage_meta(names, namespace, names.homeserver_secret(), COMPONENT),
        data: Some(BTreeMap::from([(
            SECRETS_FILE.to_owned(),
            ByteString(files.secrets_yaml.as_bytes().to_vec()),
        )])),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// A hash of every configuration file, so pods roll exactly when one changes.
pub fn config_hash(files: &HomeserverFiles) -> String {
    let mut hasher = Sha256::new();
    for part in [&files.homeserver_yaml, &files.log_yaml, &files.secrets_yaml] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    format!("{:x}", hasher.finalize())[..16].to_owned()
}

/// The media volume claim. It carries no owner reference, so deleting the
/// instance leaves it unless the deletion policy says otherwise.
pub fn media_claim(
    names: &StageNames,
    namespace: &str,
    spec: &MessengerInstanceSpec,
) -> PersistentVolumeClaim {
    volume_claim(
        stage_meta(names, namespace, names.media(), COMPONENT),
        &spec.media.storage,
        spec.media.storage_class_name.clone(),
    )
}

/// A ReadWriteOnce volume claim of the given size.
pub fn volume_claim(
    metadata: ObjectMeta,
    size: &StorageSize,
    storage_class_name: Option<String>,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name,
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(size.0.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// Everything the StatefulSet needs to know beyond the spec.
pub struct SynapseInputs<'a> {
    pub names: &'a StageNames,
    pub namespace: &'a str,
    pub spec: &'a MessengerInstanceSpec,
    /// The Synapse release the stage runs.
    pub version: &'a str,
    pub config_hash: &'a str,
    pub federation: bool,
    /// Where the pod runs: its location's selectors, tolerations, affinity
    /// and spread.
    pub placement: PodPlacement,
}

/// The Synapse StatefulSet: one replica (Synapse's main process is a single
/// writer), configuration from the ConfigMap and Secret, media on its claim.
pub fn stateful_set(inputs: &SynapseInputs<'_>) -> StatefulSet {
    let SynapseInputs {
        names,
        namespace,
        spec,
        version,
        config_hash,
        federation,
        placement,
    } = inputs;
    let mut ports = vec![port("client", CLIENT_PORT), port("metrics", METRICS_PORT)];
    if *federation {
        ports.push(port("federation", FEDERATION_PORT));
    }
    let health = |period: i32, failures: i32| Probe {
        failure_threshold: Some(failures),
        ..http_probe("/health", "client", period, 5)
    };
    let container = Container {
        command: Some(vec![
            "python".into(),
            "-m".into(),
            "synapse.app.homeserver".into(),
            "-c".into(),
            format!("{CONFIG_DIR}/{HOMESERVER_FILE}"),
            "-c".into(),
            format!("{SECRET_CONFIG_DIR}/{SECRETS_FILE}"),
        ]),
        ports: Some(ports),
        // Database migrations on a new release may take long; the startup
        // probe allows up to an hour before liveness takes over.
        startup_probe: Some(health(10, 360)),
        readiness_probe: Some(health(10, 3)),
        liveness_probe: Some(health(30, 5)),
        resources: Some(container_resources("500m", "1Gi", "4Gi")),
        security_context: Some(restricted_container()),
        volume_mounts: Some(vec![
            mount("config", CONFIG_DIR),
            mount("config-secrets", SECRET_CONFIG_DIR),
            mount("keys", KEYS_DIR),
            mount("media", MEDIA_DIR),
            mount("tmp", TMP_DIR),
        ]),
        ..component_container(
            COMPONENT,
            &spec.images,
            spec.images.synapse.as_ref(),
            SYNAPSE_REPOSITORY,
            version,
        )
    };
    stage_stateful_set(
        names,
        namespace,
        names.synapse(),
        COMPONENT,
        Some(annotation(CONFIG_HASH_ANNOTATION, config_hash.to_string())),
        PodSpec {
            termination_grace_period_seconds: Some(60),
            node_selector: placement.node_selector.clone(),
            tolerations: placement.tolerations.clone(),
            affinity: placement.affinity.clone(),
            topology_spread_constraints: placement.topology_spread_constraints.clone(),
            volumes: Some(vec![
                Volume {
                    name: "config".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: names.homeserver_config(),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                secret_volume("config-secrets", names.homeserver_secret(), None),
                secret_volume(
                    "keys",
                    names.keys_secret(),
                    Some(vec![KeyToPath {
                        key: SIGNING_KEY.into(),
                        path: SIGNING_KEY.into(),
                        ..KeyToPath::default()
                    }]),
                ),
                Volume {
                    name: "media".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: names.media(),
                        ..PersistentVolumeClaimVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "tmp".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Volume::default()
                },
            ]),
            ..restricted_pod_spec(container, SYNAPSE_UID, &spec.images)
        },
    )
}

/// The Service in front of Synapse.
pub fn service(names: &StageNames, namespace: &str, federation: bool) -> Service {
    let mut ports = vec![
        service_port("client", CLIENT_PORT),
        service_port("metrics", METRICS_PORT),
    ];
    if federation {
        ports.push(service_port("federation", FEDERATION_PORT));
    }
    Service {
        metadata: stage_meta(names, namespace, names.synapse(), COMPONENT),
        spec: Some(ServiceSpec {
            selector: Some(names.selector(COMPONENT)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

/// A Service port named like the container port it targets.
pub fn service_port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: number,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(!matches!(path, MEDIA_DIR | TMP_DIR)),
        ..VolumeMount::default()
    }
}

/// A volume from a Secret, readable only by the pod's user and group.
pub fn secret_volume(name: &str, secret: String, items: Option<Vec<KeyToPath>>) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            items,
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// Mounts each OIDC provider's client secret where `homeserver.yaml`'s
/// `client_secret_path` expects it: `(Secret, key, file path)` from
/// `homeserver::oidc_secret_mounts`. Synapse reads the files at start, so a
/// secret never passes through the operator.
pub fn mount_oidc_secrets(set: &mut StatefulSet, mounts: &[(String, String, String)]) {
    let Some(pod) = set
        .spec
        .as_mut()
        .and_then(|spec| spec.template.spec.as_mut())
    else {
        return;
    };
    for (index, (secret, key, path)) in mounts.iter().enumerate() {
        let (dir, file) = path.rsplit_once('/').unwrap_or(("/secrets/oidc", path));
        let name = format!("oidc-{index}");
        pod.volumes.get_or_insert_with(Vec::new).push(secret_volume(
            &name,
            secret.clone(),
            Some(vec![KeyToPath {
                key: key.clone(),
                path: file.to_owned(),
                ..KeyToPath::default()
            }]),
        ));
        if let Some(container) = pod.containers.first_mut() {
            container
                .volume_mounts
                .get_or_insert_with(Vec::new)
                .push(VolumeMount {
                    name,
                    mount_path: dir.to_owned(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                });
        }
    }
}
