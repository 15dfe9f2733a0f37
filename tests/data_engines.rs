//! The database engines and backups on a real kube-apiserver: every object
//! the operator writes for each engine is accepted with strict field
//! validation (CloudNativePG's Cluster against CloudNativePG's own CRDs,
//! fetched from its Go module by `hack/cnpg-crds.sh`), the API refuses a
//! restore it cannot honour, and deleting an instance under the default
//! `Retain` policy leaves every claim and the CloudNativePG Cluster.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use caduceus::api::{
    Backups, DatabaseEngine, ExternalDatabase, Keep, MessengerInstance, PvcRepository, Repository,
    S3Repository, SecretKeyRef, SecretRef, StageRestore, StorageSize,
};
use caduceus::desired::backup::{self, BackupInputs};
use caduceus::desired::database::cloudnative_pg_cluster_resource;
use caduceus::desired::keys::StageSecrets;
use caduceus::desired::{self, Child, StageInputs};
use caduceus::names::StageNames;
use common::*;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, ValidationDirective};
use kube::{Client, ResourceExt};

const WAIT: Duration = Duration::from_secs(30);

/// The CRD directory `hack/cnpg-crds.sh` prints; it fails the test, never
/// skips it, when the CRDs cannot be had.
fn cnpg_crd_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(root.join("hack/cnpg-crds.sh"))
        .output()
        .expect("running hack/cnpg-crds.sh");
    assert!(
        output.status.success(),
        "hack/cnpg-crds.sh failed (it needs go and the Go module proxy):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("the directory on the last line"),
    )
}

/// Installs CloudNativePG's CRDs (idempotent) and waits until the Cluster
/// kind is served.
async fn install_cnpg_crds(admin: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let mut entries: Vec<_> = std::fs::read_dir(cnpg_crd_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(path).unwrap();
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        api.patch(
            &crd.name_any(),
            &PatchParams::apply("caduceus-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("installing {}: {e}", path.display()));
    }
    eventually("CloudNativePG's Cluster CRD established", WAIT, || async {
        let crd = api.get("clusters.postgresql.cnpg.io").await.ok()?;
        let established = crd
            .status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        established.then_some(())
    })
    .await;
    assert!(
        caduceus::observe::stores::cloudnative_pg_installed(admin).await,
        "discovery finds CloudNativePG once its CRDs are installed"
    );
}

fn backups(s3: bool) -> Backups {
    Backups {
        schedule: "30 1 * * *".into(),
        keep: Keep::default(),
        repository: if s3 {
            Repository {
                pvc: None,
                s3: Some(S3Repository {
                    endpoint: "https://s3.eu-de.example.net".into(),
                    bucket: "messenger-backups".into(),
                    prefix: Some("caduceus".into()),
                    credentials_secret_ref: SecretRef {
                        name: "s3-credentials".into(),
                    },
                }),
            }
        } else {
            Repository {
                pvc: Some(PvcRepository {
                    size: StorageSize("10Gi".into()),
                    storage_class_name: None,
                }),
                s3: None,
            }
        },
        password_secret_ref: SecretRef {
            name: "backup-password".into(),
        },
    }
}

/// The minimal example under another name, with an engine and backups.
fn instance_with(
    namespace: &str,
    name: &str,
    engine: DatabaseEngine,
    s3: bool,
) -> MessengerInstance {
    let mut instance = example("minimal.yaml", namespace);
    instance.metadata.name = Some(name.into());
    instance.spec.database.engine = engine;
    instance.spec.database.instances = (engine == DatabaseEngine::CloudnativePg).then_some(3);
    if engine == DatabaseEngine::External {
        instance.spec.database.external = Some(ExternalDatabase {
            host: "postgres.hospital.internal".into(),
            port: 5432,
            database: format!("synapse_{name}"),
            user: "synapse".into(),
            password_secret_ref: SecretKeyRef {
                name: "external-db".into(),
                key: "password".into(),
            },
            ssl_mode: Some(caduceus::api::SslMode::VerifyFull),
        });
    }
    instance.spec.backups = Some(backups(s3));
    instance
}

/// Server-side apply with strict field validation: a field the schema does
/// not know fails instead of being dropped silently.
async fn apply_strict(admin: &Client, namespace: &str, child: &Child) {
    let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), namespace, &child.resource);
    let mut params = PatchParams::apply("caduceus-tests").force();
    params.field_validation = Some(ValidationDirective::Strict);
    api.patch(
        child.object.metadata.name.as_deref().unwrap(),
        &params,
        &Patch::Apply(&child.object),
    )
    .await
    .unwrap_or_else(|e| panic!("the API server refused {}: {e}", child.describe()));
}

#[tokio::test]
async fn every_object_of_each_engine_is_accepted_by_the_api_server() {
    let admin = admin().await;
    install_cnpg_crds(&admin).await;
    let namespace = namespace(&admin, "engines").await;
    let cases = [
        ("managed", DatabaseEngine::Managed, false),
        ("cnpg", DatabaseEngine::CloudnativePg, false),
        ("external", DatabaseEngine::External, true),
    ];
    for (name, engine, s3) in cases {
        let instance = instance_with(&namespace, name, engine, s3);
        let stored = apply_instance(&admin, &instance).await;
        assert_eq!(stored.spec.database.engine, engine);
        let stage = &instance.spec.stages[0];
        let secrets = StageSecrets::generate();
        let validated = caduceus::validate::validate(&instance.spec).expect("the spec is valid");
        let inputs = StageInputs {
            settings: &validated.stages[0],
            secrets: &secrets,
            release: desired::desired_release(&instance, stage),
        };
        let resources = desired::build_stage(&instance, &inputs).expect("the stage builds");
        let mut children = desired::children(&instance, vec![resources]);
        // The one-off Jobs: the pre-upgrade backup and a restore.
        let names = StageNames::new(name, &stage.name);
        let backup_inputs = BackupInputs::new(&instance.spec, stage, &names, &namespace).unwrap();
        children.push(Child::new(
            backup::pre_upgrade_backup_job(&backup_inputs, "v1.163.2"),
            desired::Ownership::Owned,
        ));
        children.push(Child::new(
            backup::restore_job(&backup_inputs, "latest"),
            desired::Ownership::Owned,
        ));
        let kinds: Vec<String> = children.iter().map(Child::describe).collect();
        for child in &children {
            apply_strict(&admin, &namespace, child).await;
        }
        match engine {
            DatabaseEngine::Managed => {
                assert!(
                    kinds.contains(&format!("StatefulSet/{name}-main-db")),
                    "{kinds:?}"
                );
                assert!(
                    kinds.contains(&format!("PersistentVolumeClaim/{name}-main-db-data")),
                    "{kinds:?}"
                );
                assert!(kinds.contains(&format!(
                    "PersistentVolumeClaim/{name}-main-backup-repository"
                )));
            }
            DatabaseEngine::CloudnativePg => {
                let clusters: Api<DynamicObject> = Api::namespaced_with(
                    admin.clone(),
                    &namespace,
                    &cloudnative_pg_cluster_resource(),
                );
                let cluster = clusters.get(&format!("{name}-main-db")).await.unwrap();
                let initdb = &cluster.data["spec"]["bootstrap"]["initdb"];
                assert_eq!(initdb["localeCollate"], "C");
                assert_eq!(initdb["localeCType"], "C");
                assert_eq!(initdb["owner"], "synapse");
                assert_eq!(cluster.data["spec"]["instances"], 3);
                assert!(
                    !kinds
                        .iter()
                        .any(|k| k.starts_with("StatefulSet/") && k.ends_with("-db"))
                );
            }
            DatabaseEngine::External => {
                assert!(!kinds.iter().any(|k| k.contains("-main-db")), "{kinds:?}");
                assert!(
                    !kinds.iter().any(|k| k.ends_with("-backup-repository")),
                    "S3 needs no claim"
                );
            }
        }
        assert!(
            kinds.contains(&format!("CronJob/{name}-main-backup")),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&format!("ConfigMap/{name}-main-backup-scripts")),
            "{kinds:?}"
        );
    }
}

#[tokio::test]
async fn the_api_refuses_a_restore_it_cannot_honour() {
    let admin = admin().await;
    let namespace = namespace(&admin, "restore-admission").await;
    let api: Api<MessengerInstance> = Api::namespaced(admin.clone(), &namespace);
    let mut without_backups = example("minimal.yaml", &namespace);
    without_backups.spec.stages[0].restore = Some(StageRestore {
        snapshot: "latest".into(),
    });
    let mut bad_id = instance_with(&namespace, "badid", DatabaseEngine::Managed, false);
    bad_id.spec.stages[0].restore = Some(StageRestore {
        snapshot: "yesterday".into(),
    });
    for (instance, message) in [
        (&without_backups, "stages[].restore needs spec.backups"),
        (
            &bad_id,
            "restore.snapshot must be 'latest' or a snapshot id",
        ),
    ] {
        let mut body = serde_json::to_value(instance).unwrap();
        body["apiVersion"] = "caduceus.dev/v1alpha1".into();
        body["kind"] = "MessengerInstance".into();
        let error = api
            .patch(
                instance.metadata.name.as_deref().unwrap(),
                &PatchParams::apply("test-user"),
                &Patch::Apply(&body),
            )
            .await
            .expect_err("the API server refuses it");
        assert!(error.to_string().contains(message), "{error}");
    }
    let mut good = instance_with(&namespace, "good", DatabaseEngine::Managed, false);
    good.spec.stages[0].restore = Some(StageRestore {
        snapshot: "1a2b3c4d".into(),
    });
    let stored = apply_instance(&admin, &good).await;
    assert_eq!(
        stored.spec.stages[0].restore.as_ref().unwrap().snapshot,
        "1a2b3c4d"
    );
}

#[tokio::test]
async fn deleting_an_instance_with_retain_leaves_the_claims_and_the_cluster() {
    // The operator's log, shown when the test fails.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .try_init();
    let admin = admin().await;
    // Before the operator starts, so its discovery finds CloudNativePG.
    install_cnpg_crds(&admin).await;
    let namespace = namespace(&admin, "retain-data").await;
    let operator = Operator::start(&namespace).await;
    let managed = instance_with(&namespace, "managed", DatabaseEngine::Managed, false);
    let cnpg = instance_with(&namespace, "cnpg", DatabaseEngine::CloudnativePg, false);
    apply_instance(&admin, &managed).await;
    apply_instance(&admin, &cnpg).await;

    let claims = Api::<PersistentVolumeClaim>::namespaced(admin.clone(), &namespace);
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &namespace,
        &cloudnative_pg_cluster_resource(),
    );
    let retained = [
        "managed-main-media",
        "managed-main-db-data",
        "managed-main-backup-repository",
        "cnpg-main-media",
        "cnpg-main-backup-repository",
    ];
    for name in retained {
        let claim = eventually(&format!("claim {name}"), WAIT, || async {
            claims.get_opt(name).await.unwrap()
        })
        .await;
        assert!(
            claim.owner_references().is_empty(),
            "{name} has no owner to be collected with"
        );
    }
    let cluster = eventually("the CloudNativePG Cluster", WAIT, || async {
        clusters.get_opt("cnpg-main-db").await.unwrap()
    })
    .await;
    assert!(
        cluster.owner_references().is_empty(),
        "the Cluster (and so its volumes) is retained"
    );
    let credentials = eventually("the database credentials", WAIT, || async {
        Api::<Secret>::namespaced(admin.clone(), &namespace)
            .get_opt("cnpg-main-db-credentials")
            .await
            .unwrap()
    })
    .await;
    assert_eq!(
        credentials.type_.as_deref(),
        Some("kubernetes.io/basic-auth")
    );
    let cron = eventually("the backup CronJob", WAIT, || async {
        Api::<CronJob>::namespaced(admin.clone(), &namespace)
            .get_opt("managed-main-backup")
            .await
            .unwrap()
    })
    .await;
    assert_eq!(
        cron.owner_references().len(),
        1,
        "the CronJob goes with the instance"
    );

    let instances = Api::<MessengerInstance>::namespaced(admin.clone(), &namespace);
    for name in ["managed", "cnpg"] {
        instances
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually("both instances gone", WAIT, || async {
        let left = instances.list(&Default::default()).await.unwrap();
        left.items.is_empty().then_some(())
    })
    .await;
    // Give a (wrong) operator the chance to delete something.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in retained {
        let claim = claims.get(name).await.unwrap();
        assert!(
            claim.metadata.deletion_timestamp.is_none(),
            "{name} is kept under Retain"
        );
    }
    let cluster = clusters.get("cnpg-main-db").await.unwrap();
    assert!(cluster.metadata.deletion_timestamp.is_none());
    operator.stop().await;
}
