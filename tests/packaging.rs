//! How Caduceus installs: the Helm chart (lint, schema, rendering, server-side
//! apply on the control plane, and the operator running under the chart's
//! own ServiceAccount and roles), the kustomize bases, and the copies that
//! must not drift from the code (CRD, RBAC rules, samples).
//!
//! Needs `CADUCEUS_HELM` (the helm binary from `hack/helm.sh`), `kubectl`,
//! and the local control plane; `hack/test.sh` provides all three.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use caduceus::api::MessengerInstance;
use caduceus::controller::{self, LeaderElection, Options};
use caduceus::rbac;
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(30);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The helm binary; a missing one fails the test and says how to get it.
fn helm() -> PathBuf {
    let path = std::env::var("CADUCEUS_HELM").unwrap_or_else(|_| {
        panic!(
            "CADUCEUS_HELM is not set: the packaging tests need helm. Build it with \
             `hack/helm.sh` and `export CADUCEUS_HELM=\"$(hack/helm.sh | tail -n1)\"`, \
             or run the whole suite with `hack/test.sh`."
        )
    });
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "CADUCEUS_HELM={} is not a file: run hack/helm.sh",
        path.display()
    );
    path
}

/// Runs a command, feeding `stdin`; `Ok(stdout)` on success, else
/// `Err(stderr)`.
fn run(mut command: Command, stdin: Option<&str>) -> Result<String, String> {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stderr}{stdout}"))
    }
}

/// `helm template` of the chart with `--set` style arguments.
fn helm_template(release: &str, namespace: &str, args: &[&str]) -> Result<String, String> {
    let mut command = Command::new(helm());
    command
        .arg("template")
        .arg(release)
        .arg(repo("helm/caduceus"))
        .args(["--namespace", namespace])
        .args(args);
    run(command, None)
}

fn render(release: &str, namespace: &str, args: &[&str]) -> Vec<Value> {
    let text = helm_template(release, namespace, args)
        .unwrap_or_else(|e| panic!("helm template {args:?} failed: {e}"));
    documents(&text)
}

fn documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("parsing the rendered YAML: {e}\n{text}"))
        .into_iter()
        .filter(Value::is_object)
        .collect()
}

fn find<'a>(documents: &'a [Value], kind: &str) -> Vec<&'a Value> {
    documents.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    let found = find(documents, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

fn rules(role: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(role["rules"].clone()).expect("rules parse as PolicyRules")
}

fn args(deployment: &Value) -> Vec<String> {
    serde_json::from_value(deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone())
        .unwrap()
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut command = Command::new("kubectl");
    command
        .args(["--kubeconfig", &required_env("CADUCEUS_ADMIN_KUBECONFIG")])
        .args(["--request-timeout", "30s"])
        .args(args);
    run(command, stdin)
}

fn apply_server_side(manifests: &str) {
    kubectl(&["apply", "--server-side", "-f", "-"], Some(manifests))
        .unwrap_or_else(|e| panic!("the API server refused the manifests: {e}"));
}

#[test]
fn helm_lint_is_clean() {
    for values in [
        vec![],
        vec![
            "--set",
            "replicas=3",
            "--set",
            "podDisruptionBudget.enabled=true",
        ],
        vec![
            "--set",
            "watchNamespace=messenger",
            "--set",
            "serviceMonitor.enabled=true",
        ],
    ] {
        let mut command = Command::new(helm());
        command
            .args(["lint", "--strict"])
            .arg(repo("helm/caduceus"))
            .args(&values);
        let out = run(command, None).unwrap_or_else(|e| panic!("helm lint {values:?}: {e}"));
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{out}"
        );
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "{out}"
        );
    }
}

/// kustomize and Helm read no file outside their directory, so the CRD, the
/// rules and the sample live there as copies of what the code generates.
#[test]
fn every_copy_matches_its_source() {
    let crd = caduceus::api::crd_yaml();
    assert_eq!(read("crds/messengerinstances.caduceus.dev.yaml"), crd);
    for copy in [
        "helm/caduceus/crds/messengerinstances.caduceus.dev.yaml",
        "config/crd/messengerinstances.caduceus.dev.yaml",
    ] {
        assert!(
            read(copy) == crd,
            "{copy} is stale: run `cargo run -- crd > {copy}`"
        );
    }
    assert!(
        read("helm/caduceus/templates/_rules.tpl") == rbac::helm_rules_tpl(),
        "helm/caduceus/templates/_rules.tpl is stale: run \
         `cargo run -- rbac --helm > helm/caduceus/templates/_rules.tpl`"
    );
    assert!(
        read("config/rbac/role.yaml") == rbac::cluster_role_yaml(),
        "config/rbac/role.yaml is stale: run `cargo run -- rbac > config/rbac/role.yaml`"
    );
    assert!(
        read("config/samples/minimal.yaml") == read("examples/minimal.yaml"),
        "config/samples/minimal.yaml is stale: copy examples/minimal.yaml"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        read("helm/caduceus/Chart.yaml").contains(&format!("appVersion: \"{version}\"")),
        "helm/caduceus/Chart.yaml's appVersion is not the crate's version {version}"
    );
    assert!(
        read("config/manager/manager.yaml")
            .contains(&format!("image: ghcr.io/caduceus-dev/caduceus:{version}")),
        "config/manager/manager.yaml's image tag is not the crate's version {version}"
    );
}

#[test]
fn the_chart_grants_exactly_the_operators_rules() {
    // Every namespace: a ClusterRole; the Lease only in the release's namespace.
    let rendered = render("caduceus", "ops", &["--set", "replicas=2"]);
    let cluster_role = one(&rendered, "ClusterRole");
    assert_eq!(rules(cluster_role), rbac::policy_rules());
    let binding = one(&rendered, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], cluster_role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["name"], "caduceus");
    assert_eq!(binding["subjects"][0]["namespace"], "ops");
    let lease_role = one(&rendered, "Role");
    assert_eq!(lease_role["metadata"]["namespace"], "ops");
    assert_eq!(rules(lease_role), rbac::leader_election_rules());
    let deployment = one(&rendered, "Deployment");
    assert!(args(deployment).contains(&"--leader-election".to_owned()));
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");

    // One namespace: a Role there with the same rules, and no cluster-wide grant.
    let rendered = render(
        "caduceus",
        "ops",
        &["--set", "watchNamespace=messenger", "--set", "replicas=2"],
    );
    assert!(find(&rendered, "ClusterRole").is_empty());
    assert!(find(&rendered, "ClusterRoleBinding").is_empty());
    let roles = find(&rendered, "Role");
    let watched = roles
        .iter()
        .find(|r| r["metadata"]["namespace"] == "messenger")
        .expect("a Role in the watched namespace");
    assert_eq!(rules(watched), rbac::policy_rules());
    let lease = roles
        .iter()
        .find(|r| r["metadata"]["namespace"] == "ops")
        .expect("the Lease Role in the release namespace");
    assert_eq!(rules(lease), rbac::leader_election_rules());
    assert!(args(one(&rendered, "Deployment")).contains(&"--namespace=messenger".to_owned()));

    // One replica: no leader election, no Lease Role, never two at once.
    let rendered = render("caduceus", "ops", &[]);
    assert!(find(&rendered, "Role").is_empty());
    let deployment = one(&rendered, "Deployment");
    assert!(!args(deployment).iter().any(|a| a == "--leader-election"));
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
}

#[test]
fn the_chart_runs_a_restricted_pod_with_probes_and_metrics() {
    let rendered = render(
        "caduceus",
        "ops",
        &[
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "podDisruptionBudget.enabled=true",
        ],
    );
    let deployment = one(&rendered, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        format!(
            "ghcr.io/caduceus-dev/caduceus:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    let env: Vec<&Value> = container["env"].as_array().unwrap().iter().collect();
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let var = env.iter().find(|e| e["name"] == name).unwrap();
        assert_eq!(var["valueFrom"]["fieldRef"]["fieldPath"], field);
    }

    // The ServiceMonitor scrapes the metrics Service, which selects the pod.
    let service = one(&rendered, "Service");
    let monitor = one(&rendered, "ServiceMonitor");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_selects(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"],
    );
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_selects(&service["spec"]["selector"], pod_labels);
    let budget = one(&rendered, "PodDisruptionBudget");
    assert_selects(&budget["spec"]["selector"]["matchLabels"], pod_labels);

    // Off by default: neither needs to exist for an install to work.
    let rendered = render("caduceus", "ops", &[]);
    assert!(find(&rendered, "ServiceMonitor").is_empty());
    assert!(find(&rendered, "PodDisruptionBudget").is_empty());
}

fn assert_selects(selector: &Value, labels: &Value) {
    let selector = selector.as_object().expect("a selector");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(&labels[key], value, "label {key} of {labels}");
    }
}

#[test]
fn bad_values_are_refused_naming_the_value() {
    for (value, expected) in [
        ("replicas=-1", "at '/replicas': minimum: got -1, want 0"),
        ("image.tag=5", "at '/image/tag': got number, want string"),
        (
            "logFormat=xml",
            "at '/logFormat': value must be one of 'json', 'text'",
        ),
        ("replica=2", "additional properties 'replica' not allowed"),
        ("watchNamespace=Not_A_Namespace", "at '/watchNamespace'"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy'"),
        (
            "leaderElection.enabled=maybe",
            "at '/leaderElection/enabled'",
        ),
    ] {
        let error = helm_template("caduceus", "ops", &["--set", value])
            .expect_err(&format!("{value} must be refused"));
        assert!(
            error.contains("values don't meet the specifications of the schema"),
            "{value}: {error}"
        );
        assert!(
            error.contains(expected),
            "{value}: expected '{expected}' in: {error}"
        );
    }
    // A quoted number is a fine tag.
    let rendered = render("caduceus", "ops", &["--set-string", "image.tag=5"]);
    let deployment = one(&rendered, "Deployment");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/caduceus-dev/caduceus:5"
    );
}

#[test]
fn the_kustomize_bases_build_and_fit_together() {
    let build = |dir: &str| {
        let mut command = Command::new("kubectl");
        command.arg("kustomize").arg(repo(dir));
        documents(&run(command, None).unwrap_or_else(|e| panic!("kubectl kustomize {dir}: {e}")))
    };
    let default = build("config/default");
    let cluster_role = one(&default, "ClusterRole");
    assert_eq!(rules(cluster_role), rbac::policy_rules());
    let lease_role = one(&default, "Role");
    assert_eq!(rules(lease_role), rbac::leader_election_rules());
    let crd = one(&default, "CustomResourceDefinition");
    assert_eq!(
        crd["metadata"]["annotations"]["argocd.argoproj.io/sync-options"],
        "Prune=false,Delete=false"
    );
    let deployment = one(&default, "Deployment");
    let service_account = one(&default, "ServiceAccount");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        service_account["metadata"]["name"]
    );
    for document in &default {
        if let Some(namespace) = document["metadata"]["namespace"].as_str() {
            assert_eq!(namespace, "caduceus-system", "{}", document["metadata"]);
        }
    }
    let service = one(&default, "Service");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_selects(&service["spec"]["selector"], pod_labels);

    let prometheus = build("config/prometheus");
    let monitor = one(&prometheus, "ServiceMonitor");
    assert_selects(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"],
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );

    let samples = build("config/samples");
    let instance: MessengerInstance =
        serde_json::from_value(one(&samples, "MessengerInstance").clone()).unwrap();
    assert_eq!(instance.metadata.name.as_deref(), Some("minimal"));
    assert_eq!(one(&samples, "Namespace")["metadata"]["name"], "messenger");
}

/// `kubectl apply --server-side -k config/default`, for real. This re-applies
/// the shipped CRD and roles: `hack/rbac-ablation.sh` leaves it out.
#[tokio::test]
async fn kustomize_default_overlay_is_accepted_server_side() {
    let mut command = Command::new("kubectl");
    command.arg("kustomize").arg(repo("config/default"));
    let manifests = run(command, None).expect("kubectl kustomize config/default");
    apply_server_side(&manifests);
    let admin = admin().await;
    let deployment = Api::<Deployment>::namespaced(admin.clone(), "caduceus-system")
        .get("caduceus")
        .await
        .expect("the operator's Deployment");
    assert_eq!(
        deployment
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .service_account_name
            .as_deref(),
        Some("caduceus")
    );
    let role = Api::<ClusterRole>::all(admin)
        .get(rbac::CLUSTER_ROLE)
        .await
        .unwrap();
    assert_eq!(role.rules, Some(rbac::policy_rules()));
}

/// A client with the identity of a ServiceAccount, through a TokenRequest
/// (served by the API server itself, no controller needed).
async fn service_account_client(admin: &Client, namespace: &str, name: &str) -> Client {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("a token for ServiceAccount {namespace}/{name}: {e}"))
        .status
        .expect("the token in the status")
        .token;
    let path = required_env("CADUCEUS_ADMIN_KUBECONFIG");
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info = AuthInfo {
        token: Some(token.into()),
        ..AuthInfo::default()
    };
    Client::try_from(config).unwrap()
}

/// The operator in this process with a chosen client and options.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), controller::RunError>>,
}

impl Running {
    fn start(client: Client, options: Options) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run_with_clock(
            client,
            options,
            Arc::new(caduceus::context::SystemClock),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("the operator stops within 30 s")
            .expect("the operator task does not panic")
            .expect("the operator stops cleanly");
    }
}

fn options(namespace: &str, identity: &str) -> Options {
    Options {
        namespace: Some(namespace.to_owned()),
        http_address: None,
        leader_election: None,
        identity: identity.to_owned(),
    }
}

/// Brings the minimal example in `namespace` to Ready and checks the Event
/// of its new keys, all done by whatever operator runs.
async fn minimal_becomes_ready(admin: &Client, namespace: &str) {
    apply_instance(admin, &example("minimal.yaml", namespace)).await;
    eventually("the keys Secret", WAIT, || async {
        Api::<Secret>::namespaced(admin.clone(), namespace)
            .get_opt("minimal-main-keys")
            .await
            .unwrap()
    })
    .await;
    mark_stage_ready(admin, namespace, "minimal-main").await;
    eventually("minimal Ready", WAIT, || async {
        let current = Api::<MessengerInstance>::namespaced(admin.clone(), namespace)
            .get("minimal")
            .await
            .unwrap();
        let ready = condition(&current, "Ready").is_some_and(|(status, _, _)| status == "True");
        let observed = current.status.as_ref().and_then(|s| s.observed_generation)
            == current.metadata.generation;
        (ready && observed).then_some(())
    })
    .await;
    eventually("the KeysCreated Event", WAIT, || async {
        let events = Api::<Event>::namespaced(admin.clone(), namespace)
            .list(&Default::default())
            .await
            .unwrap();
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("KeysCreated"))
            .then_some(())
    })
    .await;
}

/// `helm template` into a fresh namespace, applied server-side (CRD
/// included), and the operator running as the chart's ServiceAccount under
/// the chart's ClusterRole brings an instance to Ready.
#[tokio::test]
async fn the_chart_installs_and_its_identity_runs_the_operator() {
    let admin = admin().await;
    let release_namespace = namespace(&admin, "helm").await;
    let release = release_namespace.replace("helm-", "caduceus-");
    let manifests = helm_template(&release, &release_namespace, &["--include-crds"])
        .unwrap_or_else(|e| panic!("helm template: {e}"));
    assert!(manifests.contains("kind: CustomResourceDefinition"));
    apply_server_side(&manifests);
    Api::<Deployment>::namespaced(admin.clone(), &release_namespace)
        .get(&release)
        .await
        .expect("the chart's Deployment");

    let client = service_account_client(&admin, &release_namespace, &release).await;
    let watched = namespace(&admin, "helm-watched").await;
    let operator = Running::start(client, options(&watched, &release));
    minimal_becomes_ready(&admin, &watched).await;
    operator.stop().await;

    // Cluster-scoped objects outlive the test namespace; remove them.
    Api::<ClusterRoleBinding>::all(admin.clone())
        .delete(&release, &DeleteParams::default())
        .await
        .unwrap();
    Api::<ClusterRole>::all(admin.clone())
        .delete(&release, &DeleteParams::default())
        .await
        .unwrap();
}

/// The HTTP status of `GET path` on the operator's metrics and health port.
async fn get_status(port: u16, path: &str) -> Option<u16> {
    let path = path.to_owned();
    // Blocking I/O off the runtime, which also serves the operator's HTTP.
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_whitespace().nth(1)?.parse().ok()
    })
    .await
    .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn lease_holder(admin: &Client, namespace: &str, name: &str) -> Option<String> {
    Api::<Lease>::namespaced(admin.clone(), namespace)
        .get_opt(name)
        .await
        .unwrap()
        .and_then(|lease| lease.spec?.holder_identity)
}

/// The single-namespace install: a Role in the watched namespace only, the
/// Lease Role in the release namespace, two replicas. The leader reconciles
/// under exactly those roles; the standby is ready (so a rolling update can
/// proceed) and takes over when the leader stops.
#[tokio::test]
async fn the_namespaced_chart_runs_the_operator_with_leader_election() {
    let admin = admin().await;
    let release_namespace = namespace(&admin, "helmns").await;
    let watched = namespace(&admin, "helmns-watched").await;
    let release = release_namespace.replace("helmns-", "caduceus-");
    let manifests = helm_template(
        &release,
        &release_namespace,
        &[
            "--set",
            &format!("watchNamespace={watched}"),
            "--set",
            "replicas=2",
        ],
    )
    .unwrap_or_else(|e| panic!("helm template: {e}"));
    assert!(!manifests.contains("kind: ClusterRole"));
    apply_server_side(&manifests);

    let client = service_account_client(&admin, &release_namespace, &release).await;
    let replica = |identity: &str, port: u16| {
        Running::start(
            client.clone(),
            Options {
                http_address: Some(([127, 0, 0, 1], port).into()),
                leader_election: Some(LeaderElection {
                    namespace: release_namespace.clone(),
                    lease_name: release.clone(),
                }),
                ..options(&watched, identity)
            },
        )
    };
    let (first_port, second_port) = (free_port(), free_port());
    let first = replica("first", first_port);
    eventually("the first replica to hold the Lease", WAIT, || async {
        (lease_holder(&admin, &release_namespace, &release)
            .await
            .as_deref()
            == Some("first"))
        .then_some(())
    })
    .await;
    minimal_becomes_ready(&admin, &watched).await;
    // Readiness is set by its own task once every cache is synced.
    eventually("the leader to be ready", WAIT, || async {
        (get_status(first_port, "/readyz").await == Some(200)).then_some(())
    })
    .await;

    let second = replica("second", second_port);
    eventually("the standby replica to be ready", WAIT, || async {
        (get_status(second_port, "/readyz").await == Some(200)).then_some(())
    })
    .await;
    assert_eq!(
        lease_holder(&admin, &release_namespace, &release)
            .await
            .as_deref(),
        Some("first"),
        "the standby must not take the Lease from a live leader"
    );

    first.stop().await;
    // The Lease lasts 30 s when not released; the takeover needs at most that.
    eventually(
        "the standby to take over the Lease",
        Duration::from_secs(60),
        || async {
            (lease_holder(&admin, &release_namespace, &release)
                .await
                .as_deref()
                == Some("second"))
            .then_some(())
        },
    )
    .await;
    // The new leader reconciles: a deleted child comes back.
    let config_maps = Api::<ConfigMap>::namespaced(admin.clone(), &watched);
    config_maps
        .delete("minimal-main-homeserver", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the new leader to restore the homeserver ConfigMap",
        WAIT,
        || async {
            config_maps
                .get_opt("minimal-main-homeserver")
                .await
                .unwrap()
        },
    )
    .await;
    second.stop().await;
}

/// Leader election under the roles that ship in config/rbac (the Lease Role
/// in caduceus-system), so that `hack/rbac-ablation.sh` sees its rule used.
#[tokio::test]
async fn leader_election_works_under_the_shipped_roles() {
    let admin = admin().await;
    let watched = namespace(&admin, "lease").await;
    let lease = format!("test-{watched}");
    let operator = Running::start(
        operator_client().await,
        Options {
            leader_election: Some(LeaderElection {
                namespace: rbac::OPERATOR_NAMESPACE.to_owned(),
                lease_name: lease.clone(),
            }),
            ..options(&watched, &lease)
        },
    );
    eventually("the operator to hold the Lease", WAIT, || async {
        (lease_holder(&admin, rbac::OPERATOR_NAMESPACE, &lease)
            .await
            .as_deref()
            == Some(lease.as_str()))
        .then_some(())
    })
    .await;
    minimal_becomes_ready(&admin, &watched).await;
    operator.stop().await;
    Api::<Lease>::namespaced(admin.clone(), rbac::OPERATOR_NAMESPACE)
        .delete(&lease, &DeleteParams::default())
        .await
        .unwrap();
}
