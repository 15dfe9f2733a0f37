//! The database of a stage, for each engine: how Synapse reaches it, the
//! managed PostgreSQL StatefulSet, the CloudNativePG `Cluster`,
//! and its basic-auth Secret.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction,
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, PodSpec, Probe, Secret,
    SecretKeySelector, Service, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ApiResource, DynamicObject};
use serde_json::json;

use crate::api::{DatabaseEngine, MessengerInstanceSpec, SecretKeyRef, SslMode, Stage};

use super::keys::{DATABASE_PASSWORD, StageSecrets};
use super::placement::{self, PodPlacement};
use super::pod::{
    POSTGRES_IMAGE, container_resources, image, pull_policy, restricted_container,
    restricted_pod_spec, stage_meta, stage_stateful_set,
};
use super::synapse::{service_port, volume_claim};
use crate::names::StageNames;

/// The port PostgreSQL listens on in the managed and CloudNativePG engines.
pub const POSTGRES_PORT: i32 = 5432;
/// The database and user Synapse uses in the engines the operator runs.
pub const SYNAPSE_DATABASE: &str = "synapse";
/// The component label of the database's objects.
pub const COMPONENT: &str = "database";
/// The uid of the `postgres` user in the official PostgreSQL image.
pub const POSTGRES_UID: i64 = 999;
/// Where the managed database's volume is mounted.
const DATA_MOUNT: &str = "/var/lib/postgresql/data";
/// PGDATA lives one level below the mount: a fresh volume's root may hold
/// `lost+found`, which initdb refuses.
const PGDATA: &str = "/var/lib/postgresql/data/pgdata";
/// `initdb` arguments: Synapse requires UTF8 with C collation and ctype.
pub const INITDB_ARGS: &str = "--encoding=UTF8 --locale=C";

/// CloudNativePG's API group and version.
pub const CNPG_GROUP: &str = "postgresql.cnpg.io";
pub const CNPG_VERSION: &str = "v1";

/// Where and as whom Synapse connects. The password is not here: it comes
/// from a Secret and goes only into Secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseConnection {
    pub host: String,
    pub port: i32,
    pub database: String,
    pub user: String,
    pub ssl_mode: Option<String>,
}

/// The connection of a stage's database.
pub fn connection(spec: &MessengerInstanceSpec, names: &StageNames) -> DatabaseConnection {
    match (&spec.database.engine, &spec.database.external) {
        (DatabaseEngine::External, Some(external)) => DatabaseConnection {
            host: external.host.clone(),
            port: external.port,
            database: external.database.clone(),
            user: external.user.clone(),
            ssl_mode: external.ssl_mode.map(ssl_mode_name),
        },
        // CloudNativePG's read-write service is `<cluster>-rw`.
        (DatabaseEngine::CloudnativePg, _) => DatabaseConnection {
            host: format!("{}-rw", names.database()),
            port: POSTGRES_PORT,
            database: SYNAPSE_DATABASE.into(),
            user: SYNAPSE_DATABASE.into(),
            ssl_mode: Some("require".into()),
        },
        _ => DatabaseConnection {
            host: names.database(),
            port: POSTGRES_PORT,
            database: SYNAPSE_DATABASE.into(),
            user: SYNAPSE_DATABASE.into(),
            ssl_mode: None,
        },
    }
}

/// The Secret key holding the database password: the stage's keys Secret for
/// the engines the operator runs (CloudNativePG is bootstrapped with the same
/// password), the referenced Secret for an external database.
pub fn password_source(spec: &MessengerInstanceSpec, names: &StageNames) -> SecretKeyRef {
    match (&spec.database.engine, &spec.database.external) {
        (DatabaseEngine::External, Some(external)) => external.password_secret_ref.clone(),
        _ => SecretKeyRef {
            name: names.keys_secret(),
            key: DATABASE_PASSWORD.into(),
        },
    }
}

fn ssl_mode_name(mode: SslMode) -> String {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
    .into()
}

/// The objects of a stage's database, by engine. Claims and the
/// CloudNativePG Cluster hold data and are retained; the rest is owned.
#[derive(Clone, Debug, Default)]
pub struct DatabaseResources {
    /// The managed engine's StatefulSet.
    pub stateful_set: Option<StatefulSet>,
    /// The managed engine's Service (the host Synapse connects to).
    pub service: Option<Service>,
    /// The managed engine's data claim (retained).
    pub claim: Option<PersistentVolumeClaim>,
    /// CloudNativePG's Cluster (retained: its volumes go with it).
    pub cluster: Option<DynamicObject>,
    /// The basic-auth Secret CloudNativePG creates the `synapse` role with.
    pub credentials: Option<Secret>,
}

/// Builds the database objects of a stage for its engine.
pub fn resources(
    spec: &MessengerInstanceSpec,
    stage: &Stage,
    names: &StageNames,
    namespace: &str,
    secrets: &StageSecrets,
) -> DatabaseResources {
    let placement = placement::pod_placement(
        spec,
        stage,
        placement::Component::Database,
        &names.selector(COMPONENT),
    );
    match spec.database.engine {
        DatabaseEngine::Managed => DatabaseResources {
            stateful_set: Some(managed_stateful_set(spec, names, namespace, &placement)),
            service: Some(managed_service(names, namespace)),
            claim: Some(managed_claim(spec, names, namespace)),
            ..DatabaseResources::default()
        },
        DatabaseEngine::CloudnativePg => DatabaseResources {
            cluster: Some(cloudnative_pg_cluster(spec, names, namespace, &placement)),
            credentials: Some(cloudnative_pg_credentials(names, namespace, secrets)),
            ..DatabaseResources::default()
        },
        DatabaseEngine::External => DatabaseResources::default(),
    }
}

/// The managed engine's data claim.
pub fn managed_claim(
    spec: &MessengerInstanceSpec,
    names: &StageNames,
    namespace: &str,
) -> PersistentVolumeClaim {
    volume_claim(
        stage_meta(names, namespace, names.database_data(), COMPONENT),
        &spec.database.storage,
        spec.database.storage_class_name.clone(),
    )
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// An environment variable read from a Secret key.
pub fn secret_env(name: &str, secret: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn volume_mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str, medium: Option<&str>, size: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(Into::into),
            size_limit: size.map(|size| Quantity(size.into())),
        }),
        ..Volume::default()
    }
}

/// The managed PostgreSQL: one replica of the official image, initialised
/// UTF8 with C collation, the password from the stage's keys Secret, data on
/// the retained claim.
pub fn managed_stateful_set(
    spec: &MessengerInstanceSpec,
    names: &StageNames,
    namespace: &str,
    placement: &PodPlacement,
) -> StatefulSet {
    let probe = |period: i32, failures: i32| Probe {
        exec: Some(ExecAction {
            command: Some(vec![
                "pg_isready".into(),
                "--host=127.0.0.1".into(),
                format!("--port={POSTGRES_PORT}"),
                format!("--username={SYNAPSE_DATABASE}"),
                format!("--dbname={SYNAPSE_DATABASE}"),
            ]),
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(5),
        ..Probe::default()
    };
    let password = SecretKeyRef {
        name: names.keys_secret(),
        key: DATABASE_PASSWORD.into(),
    };
    let container = Container {
        name: "postgres".into(),
        image: Some(image(
            &spec.images,
            spec.images.postgres.as_ref(),
            POSTGRES_IMAGE,
            None,
        )),
        image_pull_policy: pull_policy(&spec.images),
        env: Some(vec![
            env("POSTGRES_USER", SYNAPSE_DATABASE),
            env("POSTGRES_DB", SYNAPSE_DATABASE),
            secret_env("POSTGRES_PASSWORD", &password),
            env("POSTGRES_INITDB_ARGS", INITDB_ARGS),
            env("PGDATA", PGDATA),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("postgres".into()),
            container_port: POSTGRES_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        // Crash recovery after an unclean stop can take minutes.
        startup_probe: Some(probe(10, 60)),
        readiness_probe: Some(probe(10, 3)),
        liveness_probe: Some(probe(30, 5)),
        resources: Some(container_resources("250m", "512Mi", "2Gi")),
        security_context: Some(restricted_container()),
        volume_mounts: Some(vec![
            volume_mount("data", DATA_MOUNT),
            // The root file system is read-only: the socket directory, /tmp
            // and shared memory are writable volumes.
            volume_mount("run", "/var/run/postgresql"),
            volume_mount("tmp", "/tmp"),
            volume_mount("shm", "/dev/shm"),
        ]),
        ..Container::default()
    };
    stage_stateful_set(names, namespace, names.database(), COMPONENT, None, {
        let mut pod = PodSpec {
            // A clean shutdown (checkpoint) avoids crash recovery.
            termination_grace_period_seconds: Some(120),
            volumes: Some(vec![
                Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: names.database_data(),
                        ..PersistentVolumeClaimVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                empty_dir("run", None, Some("16Mi")),
                empty_dir("tmp", None, Some("1Gi")),
                empty_dir("shm", Some("Memory"), Some("256Mi")),
            ]),
            ..restricted_pod_spec(container, POSTGRES_UID, &spec.images)
        };
        placement.apply_to(&mut pod);
        pod
    })
}

/// The managed database's Service: the host in Synapse's configuration.
pub fn managed_service(names: &StageNames, namespace: &str) -> Service {
    let mut port = service_port("postgres", POSTGRES_PORT);
    port.app_protocol = Some("postgresql".into());
    Service {
        metadata: stage_meta(names, namespace, names.database(), COMPONENT),
        spec: Some(ServiceSpec {
            selector: Some(names.selector(COMPONENT)),
            ports: Some(vec![port]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// CloudNativePG's `Cluster` kind.
pub fn cloudnative_pg_cluster_resource() -> ApiResource {
    ApiResource {
        group: CNPG_GROUP.into(),
        version: CNPG_VERSION.into(),
        api_version: format!("{CNPG_GROUP}/{CNPG_VERSION}"),
        kind: "Cluster".into(),
        plural: "clusters".into(),
    }
}

/// The CloudNativePG Cluster of a stage: `instances` PostgreSQL pods, a
/// `synapse` database owned by `synapse`, UTF8 with C collation, the role's
/// password from the stage's keys (through the credentials Secret), so
/// Synapse's configuration is the same as with the managed engine.
pub fn cloudnative_pg_cluster(
    spec: &MessengerInstanceSpec,
    names: &StageNames,
    namespace: &str,
    placement: &PodPlacement,
) -> DynamicObject {
    let resource = cloudnative_pg_cluster_resource();
    let mut storage = json!({"size": spec.database.storage.as_str()});
    if let Some(class) = &spec.database.storage_class_name {
        storage["storageClass"] = class.as_str().into();
    }
    let mut cluster_spec = json!({
        "instances": spec.database.instances.unwrap_or(1),
        "storage": storage,
        // Synapse connects as its own role; nobody needs the superuser.
        "enableSuperuserAccess": false,
        "bootstrap": {
            "initdb": {
                "database": SYNAPSE_DATABASE,
                "owner": SYNAPSE_DATABASE,
                "secret": {"name": names.database_credentials()},
                "encoding": "UTF8",
                "localeCollate": "C",
                "localeCType": "C",
            }
        },
    });
    if let Some(image) = &spec.images.postgres {
        // Only an explicit choice: CloudNativePG needs its own operand images
        // (the official image lacks Barman), so the default is CNPG's.
        cluster_spec["imageName"] = image.as_str().into();
    }
    if !spec.images.pull_secrets.is_empty() {
        cluster_spec["imagePullSecrets"] = spec
            .images
            .pull_secrets
            .iter()
            .map(|name| json!({"name": name}))
            .collect::<Vec<_>>()
            .into();
    }
    // CloudNativePG spreads its instances itself; the location's nodes and
    // taints carry over.
    let mut affinity = serde_json::Map::new();
    if let Some(selector) = &placement.node_selector {
        affinity.insert("nodeSelector".into(), json!(selector));
    }
    if let Some(tolerations) = &placement.tolerations {
        affinity.insert("tolerations".into(), json!(tolerations));
    }
    if !affinity.is_empty() {
        cluster_spec["affinity"] = affinity.into();
    }
    let mut object = DynamicObject::new(&names.database(), &resource).within(namespace);
    object.metadata.labels = Some(names.labels(COMPONENT));
    object.data = json!({"spec": cluster_spec});
    object
}

/// The basic-auth Secret CloudNativePG bootstraps the `synapse` role from,
/// holding the stage's database password.
pub fn cloudnative_pg_credentials(
    names: &StageNames,
    namespace: &str,
    secrets: &StageSecrets,
) -> Secret {
    Secret {
        metadata: stage_meta(names, namespace, names.database_credentials(), COMPONENT),
        type_: Some("kubernetes.io/basic-auth".into()),
        data: Some(BTreeMap::from([
            (
                "username".to_owned(),
                ByteString(SYNAPSE_DATABASE.as_bytes().to_vec()),
            ),
            (
                "password".to_owned(),
                ByteString(secrets.database_password.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ExternalDatabase;

    fn names() -> StageNames {
        StageNames::new("umessenger", "beta")
    }

    fn stage() -> Stage {
        Stage {
            name: "beta".into(),
            ..Stage::default()
        }
    }

    use crate::api::fixtures::spec_with_engine as spec;

    #[test]
    fn managed_postgres_is_utf8_with_c_collation_and_restricted() {
        let set = managed_stateful_set(
            &spec(DatabaseEngine::Managed),
            &names(),
            "ns",
            &PodPlacement::default(),
        );
        let pod = set.spec.unwrap().template.spec.unwrap();
        let container = &pod.containers[0];
        let env: BTreeMap<_, _> = container
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect();
        assert_eq!(
            env["POSTGRES_INITDB_ARGS"].value.as_deref(),
            Some("--encoding=UTF8 --locale=C")
        );
        assert_eq!(env["PGDATA"].value.as_deref(), Some(PGDATA));
        let password = env["POSTGRES_PASSWORD"]
            .value_from
            .clone()
            .unwrap()
            .secret_key_ref
            .unwrap();
        assert_eq!(password.name, "umessenger-beta-keys");
        assert_eq!(password.key, DATABASE_PASSWORD);
        assert!(PGDATA.starts_with(DATA_MOUNT) && PGDATA != DATA_MOUNT);
        let security = pod.security_context.unwrap();
        assert_eq!(security.run_as_user, Some(POSTGRES_UID));
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(
            container
                .security_context
                .as_ref()
                .unwrap()
                .read_only_root_filesystem,
            Some(true)
        );
        let probe = container
            .readiness_probe
            .as_ref()
            .unwrap()
            .exec
            .as_ref()
            .unwrap();
        assert_eq!(probe.command.as_ref().unwrap()[0], "pg_isready");
        assert!(container.resources.as_ref().unwrap().requests.is_some());
        let claim = pod.volumes.unwrap()[0]
            .persistent_volume_claim
            .clone()
            .unwrap();
        assert_eq!(claim.claim_name, "umessenger-beta-db-data");
    }

    #[test]
    fn each_engine_builds_its_own_objects() {
        let secrets = StageSecrets::generate();
        let managed = resources(
            &spec(DatabaseEngine::Managed),
            &stage(),
            &names(),
            "ns",
            &secrets,
        );
        assert!(
            managed.stateful_set.is_some() && managed.claim.is_some() && managed.service.is_some()
        );
        assert!(managed.cluster.is_none());
        let cnpg = resources(
            &spec(DatabaseEngine::CloudnativePg),
            &stage(),
            &names(),
            "ns",
            &secrets,
        );
        assert!(cnpg.stateful_set.is_none() && cnpg.claim.is_none());
        let cluster = cnpg.cluster.unwrap();
        let initdb = &cluster.data["spec"]["bootstrap"]["initdb"];
        assert_eq!(initdb["database"], "synapse");
        assert_eq!(initdb["owner"], "synapse");
        assert_eq!(initdb["localeCollate"], "C");
        assert_eq!(initdb["localeCType"], "C");
        assert_eq!(initdb["encoding"], "UTF8");
        assert_eq!(initdb["secret"]["name"], "umessenger-beta-db-credentials");
        let credentials = cnpg.credentials.unwrap();
        assert_eq!(
            credentials.type_.as_deref(),
            Some("kubernetes.io/basic-auth")
        );
        assert_eq!(
            credentials.data.unwrap()["password"].0,
            secrets.database_password.as_bytes()
        );
        let external = resources(
            &spec(DatabaseEngine::External),
            &stage(),
            &names(),
            "ns",
            &secrets,
        );
        assert!(
            external.stateful_set.is_none()
                && external.cluster.is_none()
                && external.credentials.is_none()
        );
    }

    #[test]
    fn connections_and_passwords_per_engine() {
        let cnpg = connection(&spec(DatabaseEngine::CloudnativePg), &names());
        assert_eq!(cnpg.host, "umessenger-beta-db-rw");
        let managed = connection(&spec(DatabaseEngine::Managed), &names());
        assert_eq!(managed.host, "umessenger-beta-db");
        let mut external = spec(DatabaseEngine::External);
        external.database.external = Some(ExternalDatabase {
            host: "pg.hospital.internal".into(),
            port: 5433,
            database: "synapse_beta".into(),
            user: "synapse".into(),
            password_secret_ref: SecretKeyRef {
                name: "pg".into(),
                key: "password".into(),
            },
            ssl_mode: Some(SslMode::VerifyFull),
        });
        assert_eq!(
            connection(&external, &names()).ssl_mode.as_deref(),
            Some("verify-full")
        );
        assert_eq!(password_source(&external, &names()).name, "pg");
        assert_eq!(
            password_source(&spec(DatabaseEngine::Managed), &names()).key,
            DATABASE_PASSWORD
        );
    }
}
