//! The operator against a real kube-apiserver and etcd, under the ClusterRole
//! the project ships. There is no kubelet or controller-manager: tests report
//! workload readiness themselves and check owner references instead of
//! garbage collection.

mod common;

use std::time::Duration;

use caduceus::api::{MessengerInstance, StagePhase};
use caduceus::desired::keys::{SIGNING_KEY, StageSecrets};
use common::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

async fn instance(admin: &Client, namespace: &str, name: &str) -> MessengerInstance {
    Api::<MessengerInstance>::namespaced(admin.clone(), namespace)
        .get(name)
        .await
        .expect("reading the instance")
}

async fn wait_ready(admin: &Client, namespace: &str, name: &str) -> MessengerInstance {
    eventually(&format!("{name} Ready"), WAIT, || async {
        let current = instance(admin, namespace, name).await;
        let ready = condition(&current, "Ready").is_some_and(|(status, _, _)| status == "True");
        let observed = current.status.as_ref().and_then(|s| s.observed_generation)
            == current.metadata.generation;
        (ready && observed).then_some(current)
    })
    .await
}

/// Brings the minimal example to Ready and returns the namespace.
async fn ready_minimal(admin: &Client, prefix: &str) -> (String, Operator) {
    let namespace = namespace(admin, prefix).await;
    let operator = Operator::start(&namespace).await;
    apply_instance(admin, &example("minimal.yaml", &namespace)).await;
    mark_stage_ready(admin, &namespace, "minimal-main").await;
    wait_ready(admin, &namespace, "minimal").await;
    (namespace, operator)
}

#[tokio::test]
async fn every_child_is_created_with_its_owner_and_the_stage_becomes_ready() {
    let admin = admin().await;
    let namespace = namespace(&admin, "children").await;
    let operator = Operator::start(&namespace).await;
    let created = apply_instance(&admin, &example("umessenger.yaml", &namespace)).await;
    let uid = created.uid().unwrap();

    for stage in ["beta", "production"] {
        let base = format!("umessenger-{stage}");
        let set: StatefulSet = eventually(&format!("{base}-synapse"), WAIT, || {
            let api = Api::<StatefulSet>::namespaced(admin.clone(), &namespace);
            let name = format!("{base}-synapse");
            async move { api.get_opt(&name).await.unwrap() }
        })
        .await;
        let owner = &set.owner_references()[0];
        assert_eq!(owner.uid, uid);
        assert_eq!(owner.controller, Some(true));
        for owned in [
            Api::<ConfigMap>::namespaced(admin.clone(), &namespace)
                .get(&format!("{base}-homeserver"))
                .await
                .unwrap()
                .owner_references()
                .to_vec(),
            Api::<Secret>::namespaced(admin.clone(), &namespace)
                .get(&format!("{base}-homeserver-secrets"))
                .await
                .unwrap()
                .owner_references()
                .to_vec(),
            Api::<Service>::namespaced(admin.clone(), &namespace)
                .get(&format!("{base}-synapse"))
                .await
                .unwrap()
                .owner_references()
                .to_vec(),
        ] {
            assert_eq!(owned.len(), 1);
            assert_eq!(owned[0].uid, uid);
        }
        // Data outlives the instance: no owner reference on keys and media.
        let keys = Api::<Secret>::namespaced(admin.clone(), &namespace)
            .get(&format!("{base}-keys"))
            .await
            .unwrap();
        assert!(keys.owner_references().is_empty());
        let secrets = StageSecrets::from_secret(&keys).expect("every key present");
        assert!(secrets.signing_key.starts_with("ed25519 a_"));
        let media = Api::<PersistentVolumeClaim>::namespaced(admin.clone(), &namespace)
            .get(&format!("{base}-media"))
            .await
            .unwrap();
        assert!(media.owner_references().is_empty());
    }

    // The status is written after the last child of the last stage, which
    // may come a moment after the StatefulSets.
    let waiting = eventually("the first status", WAIT, || async {
        let current = instance(&admin, &namespace, "umessenger").await;
        condition(&current, "Ready").is_some().then_some(current)
    })
    .await;
    assert_eq!(condition(&waiting, "Ready").unwrap().0, "False");
    assert_eq!(condition(&waiting, "Reconciling").unwrap().0, "True");

    mark_stage_ready(&admin, &namespace, "umessenger-beta").await;
    mark_stage_ready(&admin, &namespace, "umessenger-production").await;
    let ready = wait_ready(&admin, &namespace, "umessenger").await;
    let status = ready.status.unwrap();
    assert!(status.stages.iter().all(|s| s.phase == StagePhase::Ready));
    assert_eq!(
        status.summary.as_deref(),
        Some("beta=Ready(v1.163.2) production=Ready(v1.163.2)")
    );
    assert_eq!(
        condition(&instance(&admin, &namespace, "umessenger").await, "Stalled")
            .unwrap()
            .0,
        "False"
    );
    operator.stop().await;
}

#[tokio::test]
async fn an_unchanged_instance_sends_no_mutating_requests() {
    let admin = admin().await;
    let (namespace, operator) = ready_minimal(&admin, "steady").await;
    // Let the writes that led to Ready settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let audit = AuditLog::open();

    // A running operator reconciling again (an annotation change triggers it).
    let mark = audit.mark();
    let api = Api::<MessengerInstance>::namespaced(admin.clone(), &namespace);
    api.patch(
        "minimal",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {"touched": "1"}}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes = audit.operator_writes_since(mark, &namespace);
    println!(
        "mutating requests during a second reconcile: {}",
        writes.len()
    );
    assert_eq!(
        writes,
        Vec::<String>::new(),
        "a second reconcile must not write"
    );

    // A restarted operator reconciles everything from scratch.
    operator.stop().await;
    let mark = audit.mark();
    let operator = Operator::start(&namespace).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let writes = audit.operator_writes_since(mark, &namespace);
    println!(
        "mutating requests after an operator restart: {}",
        writes.len()
    );
    assert_eq!(writes, Vec::<String>::new(), "a restart must not write");
    operator.stop().await;
}

#[tokio::test]
async fn a_child_edited_by_hand_is_restored() {
    let admin = admin().await;
    let (namespace, operator) = ready_minimal(&admin, "drift").await;
    let config_maps = Api::<ConfigMap>::namespaced(admin.clone(), &namespace);
    let original = config_maps
        .get("minimal-main-homeserver")
        .await
        .unwrap()
        .data
        .unwrap();
    config_maps
        .patch(
            "minimal-main-homeserver",
            &PatchParams::apply("someone").force(),
            &Patch::Apply(&json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "data": {"homeserver.yaml": "server_name: evil.example.org\n"},
            })),
        )
        .await
        .unwrap();
    eventually("the ConfigMap restored", WAIT, || async {
        let data = config_maps
            .get("minimal-main-homeserver")
            .await
            .unwrap()
            .data
            .unwrap();
        (data == original).then_some(())
    })
    .await;

    let sets = Api::<StatefulSet>::namespaced(admin.clone(), &namespace);
    sets.patch(
        "minimal-main-synapse",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    eventually("the replica count restored", WAIT, || async {
        let set = sets.get("minimal-main-synapse").await.unwrap();
        (set.spec.unwrap().replicas == Some(1)).then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn a_deleted_keys_secret_stalls_the_stage_instead_of_minting_a_new_identity() {
    let admin = admin().await;
    let (namespace, operator) = ready_minimal(&admin, "keys").await;
    let secrets = Api::<Secret>::namespaced(admin.clone(), &namespace);
    let original = secrets.get("minimal-main-keys").await.unwrap();
    let key_id = StageSecrets::from_secret(&original)
        .unwrap()
        .signing_key_id()
        .unwrap()
        .to_owned();
    secrets
        .delete("minimal-main-keys", &DeleteParams::default())
        .await
        .unwrap();

    let stalled = eventually("Stalled", WAIT, || async {
        let current = instance(&admin, &namespace, "minimal").await;
        condition(&current, "Stalled")
            .filter(|(status, _, _)| status == "True")
            .map(|c| (c, current))
    })
    .await;
    let ((_, reason, message), current) = stalled;
    assert_eq!(reason, "KeysMissing");
    assert!(
        message.contains("minimal-main-keys") && message.contains("restore"),
        "{message}"
    );
    assert_eq!(current.status.unwrap().stages[0].phase, StagePhase::Blocked);
    assert!(
        secrets
            .get_opt("minimal-main-keys")
            .await
            .unwrap()
            .is_none(),
        "no new identity was minted"
    );

    // Restoring the Secret (as from a backup) brings the stage back.
    let mut restored = original.clone();
    restored.metadata.resource_version = None;
    restored.metadata.uid = None;
    restored.metadata.creation_timestamp = None;
    restored.metadata.managed_fields = None;
    secrets
        .create(&Default::default(), &restored)
        .await
        .unwrap();
    let ready = wait_ready(&admin, &namespace, "minimal").await;
    let stage = &ready.status.unwrap().stages[0];
    assert_eq!(stage.signing_key_id.as_deref(), Some(key_id.as_str()));
    assert_eq!(
        secrets
            .get("minimal-main-keys")
            .await
            .unwrap()
            .data
            .unwrap()[SIGNING_KEY],
        original.data.unwrap()[SIGNING_KEY]
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_removed_stage_loses_its_workloads_but_keeps_its_data() {
    let admin = admin().await;
    let namespace = namespace(&admin, "prune").await;
    let operator = Operator::start(&namespace).await;
    let mut two = example("umessenger.yaml", &namespace);
    apply_instance(&admin, &two).await;
    let sets = Api::<StatefulSet>::namespaced(admin.clone(), &namespace);
    eventually("production's StatefulSet", WAIT, || async {
        sets.get_opt("umessenger-production-synapse").await.unwrap()
    })
    .await;
    two.spec.stages.retain(|s| s.name == "beta");
    apply_instance(&admin, &two).await;
    eventually("production's StatefulSet pruned", WAIT, || async {
        sets.get_opt("umessenger-production-synapse")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let claims = Api::<PersistentVolumeClaim>::namespaced(admin.clone(), &namespace);
    assert!(
        claims
            .get_opt("umessenger-production-media")
            .await
            .unwrap()
            .is_some()
    );
    let secrets = Api::<Secret>::namespaced(admin.clone(), &namespace);
    assert!(
        secrets
            .get_opt("umessenger-production-keys")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        sets.get_opt("umessenger-beta-synapse")
            .await
            .unwrap()
            .is_some()
    );
    operator.stop().await;
}

#[tokio::test]
async fn deletion_keeps_data_unless_the_policy_says_delete() {
    let admin = admin().await;
    let (namespace, operator) = ready_minimal(&admin, "delete").await;
    let instances = Api::<MessengerInstance>::namespaced(admin.clone(), &namespace);
    let claims = Api::<PersistentVolumeClaim>::namespaced(admin.clone(), &namespace);
    let secrets = Api::<Secret>::namespaced(admin.clone(), &namespace);

    // Retain (the default): no finalizer, and the data has no owner to be
    // collected with.
    let current = instances.get("minimal").await.unwrap();
    assert!(current.finalizers().is_empty());

    // Delete: the operator adds its finalizer, and on deletion removes the
    // retained data before letting the instance go.
    instances
        .patch(
            "minimal",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"deletionPolicy": "Delete"}})),
        )
        .await
        .unwrap();
    eventually("the data finalizer", WAIT, || async {
        let current = instances.get("minimal").await.unwrap();
        current
            .finalizers()
            .iter()
            .any(|f| f == "caduceus.dev/delete-data")
            .then_some(())
    })
    .await;
    instances
        .delete("minimal", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the instance gone", WAIT, || async {
        instances
            .get_opt("minimal")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    // The API server's pvc-protection finalizer keeps a deleted claim until
    // the (absent) controller-manager releases it: deletion was requested.
    let media = claims.get_opt("minimal-main-media").await.unwrap();
    assert!(media.is_none_or(|claim| claim.metadata.deletion_timestamp.is_some()));
    assert!(
        secrets
            .get_opt("minimal-main-keys")
            .await
            .unwrap()
            .is_none()
    );
    operator.stop().await;
}

#[tokio::test]
async fn retained_data_survives_deleting_the_instance() {
    let admin = admin().await;
    let (namespace, operator) = ready_minimal(&admin, "retain").await;
    let instances = Api::<MessengerInstance>::namespaced(admin.clone(), &namespace);
    let key = Api::<Secret>::namespaced(admin.clone(), &namespace)
        .get("minimal-main-keys")
        .await
        .unwrap();
    instances
        .delete("minimal", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the instance gone", WAIT, || async {
        instances
            .get_opt("minimal")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let claims = Api::<PersistentVolumeClaim>::namespaced(admin.clone(), &namespace);
    assert!(
        claims
            .get_opt("minimal-main-media")
            .await
            .unwrap()
            .unwrap()
            .owner_references()
            .is_empty()
    );
    // Re-creating the instance adopts the same identity.
    apply_instance(&admin, &example("minimal.yaml", &namespace)).await;
    mark_stage_ready(&admin, &namespace, "minimal-main").await;
    let ready = wait_ready(&admin, &namespace, "minimal").await;
    let again = Api::<Secret>::namespaced(admin.clone(), &namespace)
        .get("minimal-main-keys")
        .await
        .unwrap();
    assert_eq!(again.uid(), key.uid());
    assert_eq!(
        ready.status.unwrap().stages[0].signing_key_id,
        StageSecrets::from_secret(&key)
            .unwrap()
            .signing_key_id()
            .map(str::to_owned)
    );
    operator.stop().await;
}

#[tokio::test]
async fn invalid_instances_are_refused_where_the_fixture_says() {
    let admin = admin().await;
    let namespace = namespace(&admin, "invalid").await;
    let api = Api::<MessengerInstance>::namespaced(admin.clone(), &namespace);
    let fixtures = common::fixtures::invalid_fixtures();
    assert!(fixtures.len() >= 40, "the invalid fixtures are present");
    let operator = Operator::start(&namespace).await;
    // Strict, as kubectl applies: unknown fields are refused, not dropped.
    let mut strict = PatchParams::apply("test-user");
    strict.field_validation = Some(kube::api::ValidationDirective::Strict);
    let mut stalled = Vec::new();
    let mut failures = Vec::new();
    for (index, fixture) in fixtures.iter().enumerate() {
        let file = fixture.path.display();
        let mut body: serde_json::Value = serde_saphyr::from_str(&fixture.text).unwrap();
        body["metadata"]["namespace"] = namespace.clone().into();
        if fixture.refused_by == common::fixtures::RefusedBy::Operator {
            body["metadata"]["name"] = format!("op{index}").into();
        }
        let name = body["metadata"]["name"].as_str().unwrap().to_owned();
        // The offline check refuses it too, with its message.
        match caduceus::render::load_instance(&fixture.path)
            .and_then(|instance| caduceus::render::render_objects(&instance, None).map(|_| ()))
        {
            Ok(()) => failures.push(format!("{file}: render accepted it")),
            Err(error) if !error.to_string().contains(&fixture.render_message) => {
                failures.push(format!(
                    "{file}: render said {error}, expected {:?}",
                    fixture.render_message
                ))
            }
            Err(_) => {}
        }
        let result = api.patch(&name, &strict, &Patch::Apply(&body)).await;
        match (fixture.refused_by, result) {
            (common::fixtures::RefusedBy::Admission, Ok(_)) => {
                failures.push(format!("{file}: admission accepted it"))
            }
            (common::fixtures::RefusedBy::Admission, Err(kube::Error::Api(status))) => {
                if !status.message.contains(&fixture.message) {
                    failures.push(format!(
                        "{file}: expected {:?} in {:?}",
                        fixture.message, status.message
                    ));
                }
            }
            (common::fixtures::RefusedBy::Admission, Err(error)) => {
                failures.push(format!("{file}: expected an API rejection, got {error}"))
            }
            (common::fixtures::RefusedBy::Operator, Err(error)) => {
                failures.push(format!("{file}: admission refused it: {error}"))
            }
            (common::fixtures::RefusedBy::Operator, Ok(_)) => stalled.push((name, fixture)),
        }
    }
    for (name, fixture) in stalled {
        let file = fixture.path.display();
        let (_, reason, message) = eventually(&format!("{file} Stalled"), WAIT, || async {
            let current = instance(&admin, &namespace, &name).await;
            condition(&current, "Stalled").filter(|(status, _, _)| status == "True")
        })
        .await;
        if !message.contains(&fixture.message) {
            failures.push(format!(
                "{file}: expected {:?} in the Stalled condition ({reason}): {message:?}",
                fixture.message
            ));
        }
        if fixture
            .reason
            .as_deref()
            .is_some_and(|expected| expected != reason)
        {
            failures.push(format!(
                "{file}: expected the Stalled reason {:?}, got {reason}",
                fixture.reason
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    operator.stop().await;

    // serverName cannot change once set.
    apply_instance(&admin, &example("minimal.yaml", &namespace)).await;
    let error = api
        .patch(
            "minimal",
            &PatchParams::apply("test-user"),
            &Patch::Apply(&json!({
                "apiVersion": "caduceus.dev/v1alpha1", "kind": "MessengerInstance",
                "spec": {"release": {"synapse": "v1.163.2", "elementWeb": "v1.12.3"},
                         "stages": [{"name": "main", "serverName": "other.example.org"}]},
            })),
        )
        .await
        .expect_err("changing serverName is refused");
    assert!(
        error.to_string().contains("serverName cannot change"),
        "{error}"
    );
}

#[tokio::test]
async fn an_object_the_api_server_refuses_shows_in_the_status() {
    let admin = admin().await;
    let namespace = namespace(&admin, "refused").await;
    let operator = Operator::start(&namespace).await;
    let mut minimal = example("minimal.yaml", &namespace);
    // Annotation keys are checked only when the Ingress is applied.
    minimal.spec.access.ingress = Some(caduceus::api::IngressAccess {
        annotations: [("not a key!".to_owned(), "x".to_owned())].into(),
        ..Default::default()
    });
    apply_instance(&admin, &minimal).await;
    let (reason, message) = eventually("the refusal in the status", WAIT, || async {
        let current = instance(&admin, &namespace, "minimal").await;
        condition(&current, "Stalled")
            .filter(|(status, _, _)| status == "True")
            .map(|(_, reason, message)| (reason, message))
    })
    .await;
    assert_eq!(reason, "ApplyRefused");
    assert!(
        message.contains("the API server refused Ingress") && message.contains("not a key!"),
        "{message}"
    );
    operator.stop().await;
}

#[tokio::test]
async fn children_of_accepted_generated_specs_pass_a_server_side_dry_run() {
    let admin = admin().await;
    let namespace = namespace(&admin, "dryrun").await;
    let mut params = PatchParams::apply("dry-run-test");
    params.dry_run = true;
    let mut accepted = 0;
    let mut failures = Vec::new();
    for (_, typed) in common::generated::generated_instances(40) {
        let Some(mut instance) = typed else { continue };
        instance.metadata.namespace = Some(namespace.clone());
        instance.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
        let Ok(children) = caduceus::render::render_objects(&instance, None) else {
            continue;
        };
        accepted += 1;
        for child in children {
            let api: Api<kube::api::DynamicObject> =
                Api::namespaced_with(admin.clone(), &namespace, &child.resource);
            if let Err(error) = api
                .patch(
                    &child.object.name_any(),
                    &params,
                    &Patch::Apply(&child.object),
                )
                .await
            {
                failures.push(format!("{}: {error}", child.describe()));
            }
        }
    }
    assert!(
        accepted >= 5,
        "enough generated specs are accepted ({accepted})"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_missing_referenced_secret_or_key_is_named_in_the_status_until_it_appears() {
    let admin = admin().await;
    let namespace = namespace(&admin, "referenced").await;
    let operator = Operator::start(&namespace).await;
    let mut minimal = example("minimal.yaml", &namespace);
    minimal.spec.backups = Some(caduceus::api::Backups {
        schedule: "30 1 * * *".into(),
        keep: Default::default(),
        repository: caduceus::api::Repository {
            pvc: Some(caduceus::api::PvcRepository {
                size: "1Gi".into(),
                storage_class_name: None,
            }),
            s3: None,
        },
        password_secret_ref: caduceus::api::SecretRef {
            name: "backup-password".into(),
        },
    });
    apply_instance(&admin, &minimal).await;
    let secrets_condition = |expected_status: &'static str, part: &'static str| {
        let admin = admin.clone();
        let namespace = namespace.clone();
        async move {
            eventually(
                &format!("SecretsResolved={expected_status} with {part:?}"),
                WAIT,
                || async {
                    let current = instance(&admin, &namespace, "minimal").await;
                    condition(&current, "SecretsResolved")
                        .filter(|(status, _, message)| {
                            status == expected_status && message.contains(part)
                        })
                        .map(|(_, _, message)| message)
                },
            )
            .await
        }
    };
    let missing = secrets_condition(
        "False",
        "spec.backups.passwordSecretRef: Secret backup-password does not exist",
    )
    .await;
    assert!(missing.contains("stages main"), "{missing}");

    // A Secret with the wrong key: named, and its value never shown.
    let secrets = Api::<Secret>::namespaced(admin.clone(), &namespace);
    let mut secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("backup-password".into()),
            ..Default::default()
        },
        string_data: Some([("passwd".to_owned(), "hunter2".to_owned())].into()),
        ..Default::default()
    };
    secrets
        .create(&kube::api::PostParams::default(), &secret)
        .await
        .unwrap();
    let wrong_key = secrets_condition(
        "False",
        "Secret backup-password has no key password (it has: passwd)",
    )
    .await;
    assert!(!wrong_key.contains("hunter2"), "{wrong_key}");

    secret.string_data = Some([("password".to_owned(), "hunter2".to_owned())].into());
    secrets
        .replace("backup-password", &kube::api::PostParams::default(), &{
            let mut current = secrets.get("backup-password").await.unwrap();
            current.string_data = secret.string_data.clone();
            current.data = None;
            current
        })
        .await
        .unwrap();
    secrets_condition("True", "every referenced Secret and key exists").await;
    operator.stop().await;
}

#[tokio::test]
async fn an_acknowledged_unlisted_release_runs_with_a_degraded_warning_and_an_event() {
    let admin = admin().await;
    let namespace = namespace(&admin, "unlisted").await;
    let operator = Operator::start(&namespace).await;
    let mut minimal = example("minimal.yaml", &namespace);
    minimal.spec.release.synapse = "v1.170.0".into();
    minimal.spec.release.acknowledge_unlisted = true;
    apply_instance(&admin, &minimal).await;
    // The stage proceeds: its workloads are created, nothing stalls.
    eventually("minimal-main-synapse", WAIT, || {
        let api = Api::<StatefulSet>::namespaced(admin.clone(), &namespace);
        async move { api.get_opt("minimal-main-synapse").await.unwrap() }
    })
    .await;
    let (reason, message) = eventually("Degraded", WAIT, || async {
        let current = instance(&admin, &namespace, "minimal").await;
        condition(&current, "Degraded")
            .filter(|(status, _, _)| status == "True")
            .map(|(_, reason, message)| (reason, message))
    })
    .await;
    assert_eq!(reason, "UnlistedReleaseAcknowledged");
    assert!(
        message.contains(
            "stage main: spec.release.synapse v1.170.0 is not in the operator's schema table"
        ),
        "{message}"
    );
    let stalled = condition(&instance(&admin, &namespace, "minimal").await, "Stalled").unwrap();
    assert_eq!(stalled.0, "False", "{stalled:?}");
    eventually("the UnlistedReleaseAcknowledged Event", WAIT, || async {
        let events =
            Api::<k8s_openapi::api::events::v1::Event>::namespaced(admin.clone(), &namespace)
                .list(&Default::default())
                .await
                .unwrap();
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("UnlistedReleaseAcknowledged"))
            .then_some(())
    })
    .await;
    operator.stop().await;
}
