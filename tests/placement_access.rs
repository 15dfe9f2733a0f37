//! Placement, network access and Element Web on a real kube-apiserver: the
//! cloud beta and satellite production of `examples/umessenger.yaml` get
//! their selectors, tolerations, spread and disruption budgets; each access
//! setting yields its Ingresses, NetworkPolicies and Element config, all
//! accepted by the API server; and every pod template the operator writes
//! passes the API server's PodSecurity admission at the `restricted` level.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use caduceus::api::{FederationMode, MessengerInstance};
use caduceus::desired::Child;
use caduceus::render;
use common::*;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, PodSpec, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// Waits for a named object the operator writes.
async fn wait_for<K>(admin: &Client, namespace: &str, name: &str) -> K
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api = Api::<K>::namespaced(admin.clone(), namespace);
    eventually(&format!("{} {name}", K::kind(&())), WAIT, || {
        let api = api.clone();
        async move { api.get_opt(name).await.expect("reading an object") }
    })
    .await
}

/// The operator's objects of one kind in a namespace, by name.
async fn list<K>(admin: &Client, namespace: &str) -> BTreeMap<String, K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(admin.clone(), namespace)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=caduceus"))
        .await
        .expect("listing objects")
        .items
        .into_iter()
        .map(|object| (object.name_any(), object))
        .collect()
}

/// Starts the operator on an instance and waits until it has applied every
/// child once: the status is written after the last one.
async fn run(admin: &Client, instance: &MessengerInstance) -> Operator {
    let namespace = instance.metadata.namespace.as_deref().unwrap();
    let operator = Operator::start(namespace).await;
    let applied = apply_instance(admin, instance).await;
    let api = Api::<MessengerInstance>::namespaced(admin.clone(), namespace);
    let name = instance.name_any();
    eventually(&format!("the status of {name}"), WAIT, || {
        let api = api.clone();
        let name = name.clone();
        let generation = applied.metadata.generation;
        async move {
            let current = api.get(&name).await.expect("reading the instance");
            let observed = current.status.as_ref().and_then(|s| s.observed_generation);
            (observed == generation && condition(&current, "Ready").is_some()).then_some(())
        }
    })
    .await;
    operator
}

fn pod_spec_of_set(set: &StatefulSet) -> PodSpec {
    set.spec.clone().unwrap().template.spec.unwrap()
}

fn pod_spec_of_deployment(deployment: &Deployment) -> PodSpec {
    deployment.spec.clone().unwrap().template.spec.unwrap()
}

/// `(topologyKey, whenUnsatisfiable)` of each spread constraint.
fn spread(pod: &PodSpec) -> Vec<(String, String)> {
    pod.topology_spread_constraints
        .iter()
        .flatten()
        .map(|c| (c.topology_key.clone(), c.when_unsatisfiable.clone()))
        .collect()
}

#[tokio::test]
async fn the_cloud_beta_and_the_satellite_production_are_placed_and_budgeted() {
    let admin = admin().await;
    let namespace = namespace(&admin, "placement").await;
    let instance = example("umessenger.yaml", &namespace);
    let operator = run(&admin, &instance).await;
    let zone_spread = vec![
        (
            "topology.kubernetes.io/zone".to_owned(),
            "ScheduleAnyway".to_owned(),
        ),
        (
            "kubernetes.io/hostname".to_owned(),
            "ScheduleAnyway".to_owned(),
        ),
    ];

    // (stage, node selector, tolerated taint)
    let expected = [
        ("beta", ("topology.kubernetes.io/region", "eu-de"), None),
        (
            "production",
            ("caduceus.dev/location", "mainz"),
            Some("satellite"),
        ),
    ];
    for (stage, (label, value), taint) in expected {
        let base = format!("umessenger-{stage}");
        let synapse = pod_spec_of_set(
            &wait_for::<StatefulSet>(&admin, &namespace, &format!("{base}-synapse")).await,
        );
        let element = pod_spec_of_deployment(
            &wait_for::<Deployment>(&admin, &namespace, &format!("{base}-element-web")).await,
        );
        // The managed database runs where Synapse runs: a satellite keeps
        // its data on site.
        let database = pod_spec_of_set(
            &wait_for::<StatefulSet>(&admin, &namespace, &format!("{base}-db")).await,
        );
        for (component, pod) in [
            ("synapse", &synapse),
            ("element-web", &element),
            ("database", &database),
        ] {
            let selector = pod.node_selector.clone().unwrap_or_default();
            assert_eq!(
                selector,
                BTreeMap::from([(label.to_owned(), value.to_owned())]),
                "{stage} {component} node selector"
            );
            let tolerated: Vec<Option<String>> = pod
                .tolerations
                .iter()
                .flatten()
                .map(|t| t.key.clone())
                .collect();
            assert_eq!(
                tolerated,
                taint
                    .map(|t| Some(t.to_owned()))
                    .into_iter()
                    .collect::<Vec<_>>(),
                "{stage} {component} tolerations"
            );
            assert_eq!(spread(pod), zone_spread, "{stage} {component} spread");
            let spread_labels = pod.topology_spread_constraints.as_ref().unwrap()[0]
                .label_selector
                .as_ref()
                .unwrap()
                .match_labels
                .clone()
                .unwrap();
            assert_eq!(spread_labels["app.kubernetes.io/component"], component);
            assert_eq!(spread_labels["caduceus.dev/stage"], stage);
        }

        for component in ["synapse", "element-web"] {
            let budget =
                wait_for::<PodDisruptionBudget>(&admin, &namespace, &format!("{base}-{component}"))
                    .await;
            let spec = budget.spec.as_ref().unwrap();
            // A single Synapse may be drained (see desired::placement): a
            // budget that blocks every drain is worse than a short move.
            assert_eq!(
                spec.max_unavailable,
                Some(IntOrString::Int(1)),
                "{base}-{component}"
            );
            assert_eq!(spec.min_available, None);
            assert_eq!(
                spec.unhealthy_pod_eviction_policy.as_deref(),
                Some("AlwaysAllow")
            );
            let labels = spec
                .selector
                .as_ref()
                .unwrap()
                .match_labels
                .clone()
                .unwrap();
            assert_eq!(labels["app.kubernetes.io/component"], component);
            assert_eq!(
                budget.owner_references().len(),
                1,
                "pruned with the instance"
            );
        }
        let element =
            wait_for::<Deployment>(&admin, &namespace, &format!("{base}-element-web")).await;
        assert_eq!(element.spec.unwrap().replicas, Some(2));
    }
    operator.stop().await;
}

/// `(path, service, port name)` of each Ingress route.
fn routes(ingress: &Ingress) -> Vec<(String, String, String)> {
    ingress.spec.as_ref().unwrap().rules.as_ref().unwrap()[0]
        .http
        .as_ref()
        .unwrap()
        .paths
        .iter()
        .map(|p| {
            let service = p.backend.service.as_ref().unwrap();
            (
                p.path.clone().unwrap(),
                service.name.clone(),
                service.port.as_ref().unwrap().name.clone().unwrap(),
            )
        })
        .collect()
}

fn annotation(ingress: &Ingress, key: &str) -> Option<String> {
    ingress.annotations().get(key).cloned()
}

/// The ports and peers of a policy's rules, as JSON, for compact asserts.
fn rules(policy: &NetworkPolicy, direction: &str) -> Value {
    serde_json::to_value(policy.spec.as_ref().unwrap()).unwrap()[direction].clone()
}

fn ports(rule: &Value) -> Vec<i64> {
    rule["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["port"].as_i64().unwrap())
        .collect()
}

async fn element_config(
    admin: &Client,
    namespace: &str,
    name: &str,
) -> (Value, BTreeMap<String, String>) {
    let map = wait_for::<ConfigMap>(admin, namespace, name).await;
    let data = map.data.unwrap();
    (
        serde_json::from_str(&data["config.json"]).expect("config.json is JSON"),
        data,
    )
}

#[tokio::test]
async fn hospital_network_only_with_an_admin_subnet() {
    // The example as shipped: ingress-nginx with a TLS Secret, the hospital
    // network allowed, the admin API for one subnet.
    let admin = admin().await;
    let namespace = namespace(&admin, "access-ranges").await;
    let instance = example("umessenger.yaml", &namespace);
    let operator = run(&admin, &instance).await;
    let base = "umessenger-production";

    let main = wait_for::<Ingress>(&admin, &namespace, base).await;
    let spec = main.spec.clone().unwrap();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    let tls = &spec.tls.unwrap()[0];
    assert_eq!(tls.secret_name.as_deref(), Some("messenger-tls"));
    assert_eq!(
        tls.hosts.as_deref(),
        Some(&["messenger.example.org".to_owned()][..])
    );
    assert_eq!(
        spec.rules.unwrap()[0].host.as_deref(),
        Some("messenger.example.org")
    );
    let synapse = format!("{base}-synapse");
    let element = format!("{base}-element-web");
    assert_eq!(
        routes(&main),
        [
            ("/_matrix".to_owned(), synapse.clone(), "client".to_owned()),
            (
                "/_synapse/client".to_owned(),
                synapse.clone(),
                "client".to_owned()
            ),
            (
                "/.well-known/matrix".to_owned(),
                element.clone(),
                "well-known".to_owned()
            ),
            ("/".to_owned(), element.clone(), "http".to_owned()),
        ]
    );
    assert_eq!(
        annotation(&main, "nginx.ingress.kubernetes.io/whitelist-source-range").as_deref(),
        Some("10.0.0.0/8")
    );
    let admin_ingress = wait_for::<Ingress>(&admin, &namespace, &format!("{base}-admin")).await;
    assert_eq!(
        routes(&admin_ingress),
        [(
            "/_synapse/admin".to_owned(),
            synapse.clone(),
            "client".to_owned()
        )]
    );
    assert_eq!(
        annotation(
            &admin_ingress,
            "nginx.ingress.kubernetes.io/whitelist-source-range"
        )
        .as_deref(),
        Some("10.1.2.0/24")
    );

    let policies = list::<NetworkPolicy>(&admin, &namespace).await;
    let names: Vec<&str> = policies
        .keys()
        .filter(|name| name.starts_with(base))
        .map(|name| &name[base.len() + 1..])
        .collect();
    assert_eq!(
        names,
        [
            "netpol-database",
            "netpol-deny-all",
            "netpol-dns",
            "netpol-element-web",
            "netpol-synapse"
        ],
        "closed federation, no backups"
    );
    let deny = &policies[&format!("{base}-netpol-deny-all")];
    assert_eq!(rules(deny, "ingress"), json!(null), "no rule: nothing in");
    assert_eq!(
        deny.spec.as_ref().unwrap().policy_types.as_deref(),
        Some(&["Ingress".to_owned(), "Egress".to_owned()][..])
    );
    let synapse_policy = &policies[&format!("{base}-netpol-synapse")];
    let inbound = rules(synapse_policy, "ingress");
    assert_eq!(ports(&inbound[0]), [8008]);
    assert_eq!(inbound[0]["from"][0], json!({"namespaceSelector": {}}));
    assert_eq!(
        inbound[0]["from"][1],
        json!({"ipBlock": {"cidr": "10.0.0.0/8"}})
    );
    assert_eq!(
        inbound[2]["from"][0]["namespaceSelector"]["matchLabels"],
        json!({"caduceus.dev/monitoring": "true"})
    );
    let outbound = rules(synapse_policy, "egress");
    assert_eq!(
        outbound.as_array().unwrap().len(),
        1,
        "only the database: {outbound}"
    );
    assert_eq!(ports(&outbound[0]), [5432]);
    assert_eq!(
        outbound[0]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "database"
    );

    let (config, data) = element_config(&admin, &namespace, &element).await;
    assert_eq!(config["brand"], "UMessenger");
    assert_eq!(
        config["default_server_config"]["m.homeserver"]["base_url"],
        "https://messenger.example.org"
    );
    assert_eq!(config["disable_custom_urls"], true);
    assert_eq!(config["disable_guests"], true);
    assert_eq!(config["show_labs_settings"], false);
    assert_eq!(config["default_federate"], false);
    let client: Value = serde_json::from_str(&data["client"]).unwrap();
    assert_eq!(
        client,
        json!({"m.homeserver": {"base_url": "https://messenger.example.org/"}, "io.element.e2ee": {"default": true}})
    );
    assert!(
        !data.contains_key("server"),
        "no federation, no server delegation"
    );
    operator.stop().await;
}

#[tokio::test]
async fn open_to_everyone_with_federation_and_a_cert_manager_issuer() {
    let admin = admin().await;
    let namespace = namespace(&admin, "access-open").await;
    let mut instance = example("minimal.yaml", &namespace);
    instance.spec.homeserver.federation = Some(caduceus::api::Federation {
        mode: FederationMode::Open,
        ..Default::default()
    });
    instance.spec.access = serde_json::from_value(json!({
        "ingress": {
            "className": "nginx",
            "certManagerClusterIssuer": "letsencrypt",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "100m"},
        },
    }))
    .unwrap();
    instance.spec.clients.element_web = serde_json::from_value(json!({
        "brand": "Klinikum Chat",
        "defaultTheme": "dark",
        "features": {"video_rooms": true},
        "showLabsSettings": true,
        "config": {"setting_defaults": {"UIFeature.voip": false}},
    }))
    .unwrap();
    let operator = run(&admin, &instance).await;
    let base = "minimal-main";

    let ingresses = list::<Ingress>(&admin, &namespace).await;
    assert_eq!(
        ingresses.keys().collect::<Vec<_>>(),
        [base],
        "no admin ranges, no admin Ingress"
    );
    let main = &ingresses[base];
    assert_eq!(
        annotation(main, "cert-manager.io/cluster-issuer").as_deref(),
        Some("letsencrypt")
    );
    assert_eq!(
        annotation(main, "nginx.ingress.kubernetes.io/proxy-body-size").as_deref(),
        Some("100m")
    );
    assert_eq!(
        annotation(main, "nginx.ingress.kubernetes.io/whitelist-source-range"),
        None
    );
    assert_eq!(
        main.spec.as_ref().unwrap().tls.as_ref().unwrap()[0]
            .secret_name
            .as_deref(),
        Some("minimal-main-tls")
    );
    let synapse = format!("{base}-synapse");
    assert!(routes(main).contains(&(
        "/_matrix/federation".to_owned(),
        synapse.clone(),
        "federation".to_owned()
    )));
    assert!(routes(main).contains(&("/_matrix/key".to_owned(), synapse, "federation".to_owned())));

    let policies = list::<NetworkPolicy>(&admin, &namespace).await;
    let synapse_policy = &policies[&format!("{base}-netpol-synapse")];
    let inbound = rules(synapse_policy, "ingress");
    assert_eq!(
        inbound[0]["from"],
        json!(null),
        "no ranges: anyone may reach the client port"
    );
    assert_eq!(ports(&inbound[0]), [8008, 8448]);
    let outbound = rules(synapse_policy, "egress");
    assert_eq!(ports(&outbound[1]), [443, 8448], "federation egress");
    let public = &outbound[1]["to"][0]["ipBlock"];
    assert_eq!(public["cidr"], "0.0.0.0/0");
    assert!(
        public["except"]
            .as_array()
            .unwrap()
            .contains(&json!("10.0.0.0/8"))
    );

    let (config, data) = element_config(&admin, &namespace, &format!("{base}-element-web")).await;
    assert_eq!(config["brand"], "Klinikum Chat");
    assert_eq!(config["default_theme"], "dark");
    assert_eq!(config["features"], json!({"feature_video_rooms": true}));
    assert_eq!(config["show_labs_settings"], true);
    assert_eq!(config["default_federate"], true);
    assert_eq!(config["setting_defaults"]["UIFeature.voip"], false);
    assert_eq!(
        config["setting_defaults"]["UIFeature.identityServer"], false,
        "merged, not replaced"
    );
    let server: Value = serde_json::from_str(&data["server"]).unwrap();
    assert_eq!(server, json!({"m.server": "messenger.example.org:443"}));
    operator.stop().await;
}

#[tokio::test]
async fn a_named_ingress_controller_and_no_element_web() {
    let admin = admin().await;
    let namespace = namespace(&admin, "access-noelement").await;
    let mut instance = example("minimal.yaml", &namespace);
    instance.spec.access = serde_json::from_value(json!({
        "ingress": {"className": "nginx", "tlsSecretName": "tls"},
        "ingressNamespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
        "metricsNamespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    }))
    .unwrap();
    instance.spec.clients.element_web.enabled = false;
    let operator = run(&admin, &instance).await;
    let base = "minimal-main";

    let main = wait_for::<Ingress>(&admin, &namespace, base).await;
    let synapse = format!("{base}-synapse");
    assert_eq!(
        routes(&main),
        [
            ("/_matrix".to_owned(), synapse.clone(), "client".to_owned()),
            (
                "/_synapse/client".to_owned(),
                synapse.clone(),
                "client".to_owned()
            ),
            (
                "/.well-known/matrix".to_owned(),
                synapse.clone(),
                "client".to_owned()
            ),
        ]
    );
    assert!(list::<Deployment>(&admin, &namespace).await.is_empty());
    assert!(
        list::<ConfigMap>(&admin, &namespace)
            .await
            .keys()
            .all(|name| !name.contains("element"))
    );
    let policies = list::<NetworkPolicy>(&admin, &namespace).await;
    assert!(!policies.contains_key(&format!("{base}-netpol-element-web")));
    let inbound = rules(&policies[&format!("{base}-netpol-synapse")], "ingress");
    assert_eq!(
        inbound[0]["from"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}])
    );
    assert_eq!(
        inbound[2]["from"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}])
    );
    let budgets = list::<PodDisruptionBudget>(&admin, &namespace).await;
    assert_eq!(budgets.keys().collect::<Vec<_>>(), [&synapse]);
    operator.stop().await;
}

/// The pod template of any workload object: `spec.template` (StatefulSet,
/// Deployment, Job, DaemonSet, ReplicaSet) or `spec.jobTemplate.spec.template`
/// (CronJob).
fn pod_template(object: &Value) -> Option<&Value> {
    ["/spec/template", "/spec/jobTemplate/spec/template"]
        .iter()
        .find_map(|pointer| object.pointer(pointer))
        .filter(|template| template.get("spec").is_some())
}

/// Creates a Pod from each pod template among `objects`, as a server-side
/// dry run, and returns `Kind/name: error` for each one admission refused.
/// Returns how many templates it tried, too, so a test cannot pass by
/// finding none.
async fn refused_pod_templates(
    admin: &Client,
    namespace: &str,
    objects: &[Child],
) -> (usize, Vec<String>) {
    let pods = Api::<Pod>::namespaced(admin.clone(), namespace);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let mut tried = 0;
    let mut refused = Vec::new();
    for child in objects {
        let object = serde_json::to_value(&child.object).unwrap();
        let Some(template) = pod_template(&object) else {
            continue;
        };
        tried += 1;
        let template_meta: ObjectMeta =
            serde_json::from_value(template.get("metadata").cloned().unwrap_or(json!({}))).unwrap();
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(format!("{}-template", child.object.name_any())),
                namespace: Some(namespace.to_owned()),
                labels: template_meta.labels,
                annotations: template_meta.annotations,
                ..ObjectMeta::default()
            },
            spec: Some(serde_json::from_value(template["spec"].clone()).expect("a pod spec")),
            ..Pod::default()
        };
        if let Err(error) = pods.create(&dry_run, &pod).await {
            refused.push(format!("{}: {error}", child.describe()));
        }
    }
    (tried, refused)
}

#[tokio::test]
async fn every_pod_template_passes_the_restricted_pod_security_standard() {
    let admin = admin().await;
    let namespace = namespace(&admin, "podsecurity").await;
    Api::<Namespace>::all(admin.clone())
        .patch(
            &namespace,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            }}})),
        )
        .await
        .expect("labelling the namespace");
    // No controller-manager makes the default ServiceAccount, and the
    // ServiceAccount admission plugin refuses Pods without one.
    Api::<ServiceAccount>::namespaced(admin.clone(), &namespace)
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("default".into()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            },
        )
        .await
        .expect("creating the default ServiceAccount");

    // The admission check itself: a privileged pod is refused here.
    let privileged = Child::new(
        k8s_openapi::api::apps::v1::Deployment {
            metadata: ObjectMeta {
                name: Some("privileged".into()),
                ..ObjectMeta::default()
            },
            spec: Some(serde_json::from_value(json!({
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
            }))
            .unwrap()),
            ..Default::default()
        },
        caduceus::desired::Ownership::Owned,
    );
    let (tried, refused) = refused_pod_templates(&admin, &namespace, &[privileged]).await;
    assert_eq!(
        (tried, refused.len()),
        (1, 1),
        "PodSecurity admission must refuse a default pod: {refused:?}"
    );
    assert!(refused[0].contains("restricted"), "{refused:?}");

    let mut templates = 0;
    for file in ["minimal.yaml", "umessenger.yaml", "satellite.yaml"] {
        let instance = example(file, &namespace);
        let objects = render::render_objects(&instance, None).expect("the example renders");
        let (tried, refused) = refused_pod_templates(&admin, &namespace, &objects).await;
        assert_eq!(
            refused,
            Vec::<String>::new(),
            "{file}: pod templates refused at the restricted level"
        );
        let kinds: Vec<String> = objects
            .iter()
            .filter(|c| pod_template(&serde_json::to_value(&c.object).unwrap()).is_some())
            .map(|c| c.resource.kind.clone())
            .collect();
        println!(
            "{file}: {tried} pod templates admitted ({})",
            kinds.join(", ")
        );
        assert!(
            kinds.contains(&"StatefulSet".to_owned()) && kinds.contains(&"Deployment".to_owned())
        );
        templates += tried;
    }
    assert!(templates >= 5);
}

/// Pure: every kind the examples render is one the operator watches and
/// prunes, so no child is left behind when it is no longer desired.
#[test]
fn every_rendered_kind_is_watched_and_pruned() {
    let kinds = caduceus::observe::stores::child_kinds(true);
    for file in ["minimal.yaml", "umessenger.yaml", "satellite.yaml"] {
        let instance = example(file, "messenger");
        for child in render::render_objects(&instance, None).expect("the example renders") {
            assert!(
                kinds
                    .iter()
                    .any(|k| k.group == child.resource.group && k.kind == child.resource.kind),
                "{file}: {} is not in children::child_kinds()",
                child.describe()
            );
        }
    }
}
