//! Shared pieces of the control-plane tests: clients for the admin and the
//! operator identity, a namespace per test, the operator running in-process
//! under the shipped ClusterRole, and the API server's audit log.

#![allow(dead_code)]

pub mod fixtures;
pub mod generated;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use caduceus::api::MessengerInstance;
use caduceus::context::Clock;
use caduceus::controller::{self, Options};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An environment variable the control-plane script sets; a missing one
/// fails the test with what to do, never skips it.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the control-plane tests need the local control plane. \
             Start it with `hack/control-plane.sh start` and `source /tmp/caduceus-control-plane/env`, \
             or run the whole suite with `hack/test.sh`."
        )
    })
}

pub async fn client_from(path: &str) -> Client {
    let kubeconfig =
        Kubeconfig::read_from(path).unwrap_or_else(|e| panic!("reading kubeconfig {path}: {e}"));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("loading kubeconfig {path}: {e}"));
    Client::try_from(config).expect("a client from the kubeconfig")
}

/// A client with cluster-admin rights, for what a test does by hand.
pub async fn admin() -> Client {
    client_from(&required_env("CADUCEUS_ADMIN_KUBECONFIG")).await
}

/// A client with exactly the operator's identity and ClusterRole.
pub async fn operator_client() -> Client {
    client_from(&required_env("CADUCEUS_OPERATOR_KUBECONFIG")).await
}

/// A fresh namespace for one test.
pub async fn namespace(admin: &Client, prefix: &str) -> String {
    let suffix: u32 = rand_suffix();
    let name = format!("{prefix}-{suffix:08x}");
    let api: Api<Namespace> = Api::all(admin.clone());
    api.create(
        &PostParams::default(),
        &Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        },
    )
    .await
    .expect("creating the test namespace");
    name
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
}

/// The operator, running in this process, scoped to one namespace.
pub struct Operator {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), controller::RunError>>>,
}

impl Operator {
    pub async fn start(namespace: &str) -> Self {
        Self::start_with_clock(namespace, Arc::new(caduceus::context::SystemClock)).await
    }

    pub async fn start_with_clock(namespace: &str, clock: Arc<dyn Clock>) -> Self {
        // Operator logs, shown for failed tests (RUST_LOG=caduceus=info).
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let client = operator_client().await;
        let (stop, stopped) = oneshot::channel::<()>();
        let options = Options {
            namespace: Some(namespace.to_owned()),
            http_address: None,
            leader_election: None,
            identity: format!("test-{namespace}"),
        };
        let task = tokio::spawn(controller::run_with_clock(
            client,
            options,
            clock,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the operator and waits until it has.
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the operator stops within 30 s")
                .expect("the operator task does not panic")
                .expect("the operator stops cleanly");
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Polls `check` until it returns `Some`, or fails after `timeout` saying
/// what it waited for.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An example file as a MessengerInstance in `namespace`.
pub fn example(file: &str, namespace: &str) -> MessengerInstance {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut instance: MessengerInstance = serde_saphyr::from_str(&text).expect("examples parse");
    instance.metadata.namespace = Some(namespace.to_owned());
    instance
}

/// Applies an instance as a person would (server-side apply, own manager).
pub async fn apply_instance(admin: &Client, instance: &MessengerInstance) -> MessengerInstance {
    let namespace = instance.metadata.namespace.as_deref().unwrap();
    let api: Api<MessengerInstance> = Api::namespaced(admin.clone(), namespace);
    let mut body = serde_json::to_value(instance).unwrap();
    body["apiVersion"] = "caduceus.dev/v1alpha1".into();
    body["kind"] = "MessengerInstance".into();
    api.patch(
        instance.metadata.name.as_deref().unwrap(),
        &PatchParams::apply("test-user"),
        &Patch::Apply(&body),
    )
    .await
    .expect("applying the instance")
}

/// Plays the StatefulSet controller and kubelet: reports every replica of
/// the current spec ready.
pub async fn mark_ready(admin: &Client, namespace: &str, name: &str) {
    let api: Api<StatefulSet> = Api::namespaced(admin.clone(), namespace);
    let set = eventually(
        &format!("StatefulSet {name}"),
        Duration::from_secs(20),
        || {
            let api = api.clone();
            async move { api.get_opt(name).await.ok().flatten() }
        },
    )
    .await;
    let replicas = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = json!({"status": {
        "observedGeneration": set.metadata.generation,
        "replicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "updatedReplicas": replicas,
        "currentReplicas": replicas,
        "currentRevision": "rev",
        "updateRevision": "rev",
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("setting the StatefulSet status");
}

/// Plays the controllers for a whole stage (`INSTANCE-STAGE`): Synapse and,
/// where the stage has one, its managed database report ready.
pub async fn mark_stage_ready(admin: &Client, namespace: &str, stage: &str) {
    let database = format!("{stage}-db");
    let sets: Api<StatefulSet> = Api::namespaced(admin.clone(), namespace);
    mark_ready(admin, namespace, &format!("{stage}-synapse")).await;
    if sets
        .get_opt(&database)
        .await
        .expect("reading the database StatefulSet")
        .is_some()
    {
        mark_ready(admin, namespace, &database).await;
    }
}

/// The instance's condition of one type, as `(status, reason, message)`.
pub fn condition(instance: &MessengerInstance, kind: &str) -> Option<(String, String, String)> {
    let status = instance.status.as_ref()?;
    let condition = status.conditions.iter().find(|c| c.type_ == kind)?;
    Some((
        condition.status.clone(),
        condition.reason.clone(),
        condition.message.clone(),
    ))
}

/// The API server's audit log, to count what the operator wrote.
pub struct AuditLog {
    path: PathBuf,
    user: String,
}

/// Verbs that change state.
const MUTATING: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

impl AuditLog {
    pub fn open() -> Self {
        Self {
            path: PathBuf::from(required_env("CADUCEUS_AUDIT_LOG")),
            user: required_env("CADUCEUS_OPERATOR_USER"),
        }
    }

    /// The current end of the log.
    pub fn mark(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// The operator's mutating requests in `namespace` since `mark`, as
    /// `verb resource/name` lines.
    pub fn operator_writes_since(&self, mark: u64, namespace: &str) -> Vec<String> {
        let text = std::fs::read(&self.path).expect("reading the audit log");
        let text = String::from_utf8_lossy(&text[(mark as usize).min(text.len())..]).into_owned();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["stage"] == "ResponseComplete")
            .filter(|event| event["user"]["username"] == self.user.as_str())
            .filter(|event| MUTATING.contains(&event["verb"].as_str().unwrap_or_default()))
            .filter(|event| event["objectRef"]["namespace"] == namespace)
            .map(|event| {
                format!(
                    "{} {}/{}",
                    event["verb"].as_str().unwrap_or_default(),
                    event["objectRef"]["resource"].as_str().unwrap_or_default(),
                    event["objectRef"]["name"].as_str().unwrap_or_default()
                )
            })
            .collect()
    }
}
