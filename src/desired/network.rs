//! How a stage is reached, and what its pods may reach: the Ingress (with a
//! second one for the admin API) and the NetworkPolicies.
//!
//! Source ranges are enforced in two places, because each sees something
//! the other cannot. ingress-nginx sees the client's address (given
//! `externalTrafficPolicy: Local` or the PROXY protocol on its Service) and
//! enforces `allowedSourceRanges` and, per path, `adminSourceRanges` with
//! its allow-list annotation. A NetworkPolicy sees only the last hop: for
//! traffic through the ingress controller that is the controller's pod, so
//! the policies admit the controller's namespaces and, as ipBlocks, the
//! allowed ranges themselves for traffic that reaches the pods directly
//! (a LoadBalancer or NodePort Service that keeps the client address).
//! NetworkPolicies cannot tell the admin API from the rest of the client
//! port; that split exists only at the Ingress.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, IPBlock, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, NetworkPolicy, NetworkPolicyEgressRule,
    NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
    ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::{DatabaseEngine, MessengerInstanceSpec, RegistrationMode, Stage};
use crate::validate::network::SourceRanges;

use super::database::{COMPONENT as DATABASE_COMPONENT, POSTGRES_PORT};
use super::element::{self, HTTP_PORT};
use super::homeserver::{CLIENT_PORT, FEDERATION_PORT, METRICS_PORT};
use super::pod::stage_meta;
use super::synapse;
use super::well_known::{self, WELL_KNOWN_PORT};
use crate::names::{BACKUP_COMPONENT, RESTORE_COMPONENT};
use crate::names::{CNPG_CLUSTER_LABEL, COMPONENT_LABEL, SMOKE_TEST_COMPONENT, StageNames};

/// ingress-nginx's allow-list annotation; ingress-nginx 1.9 renamed it
/// `allowlist-source-range` and still reads the old name, which older
/// controllers need, so both are set.
pub const WHITELIST_ANNOTATION: &str = "nginx.ingress.kubernetes.io/whitelist-source-range";
pub const ALLOWLIST_ANNOTATION: &str = "nginx.ingress.kubernetes.io/allowlist-source-range";
/// cert-manager's ingress-shim annotation naming a ClusterIssuer.
pub const CLUSTER_ISSUER_ANNOTATION: &str = "cert-manager.io/cluster-issuer";
/// The namespace label that admits a monitoring stack to Synapse's metrics
/// port when `access.metricsNamespaceSelector` is unset.
pub const MONITORING_NAMESPACE_LABEL: &str = "caduceus.dev/monitoring";
/// The component label of the Ingresses and NetworkPolicies.
pub const COMPONENT: &str = "network";
/// CloudNativePG's instance manager status port, polled by its operator.
const CNPG_STATUS_PORT: i32 = 8000;
/// The Kubernetes API, as seen after the `kubernetes` Service's DNAT (6443)
/// and before it (443); NetworkPolicy implementations differ in which one
/// they match.
const API_SERVER_PORTS: [i32; 2] = [443, 6443];

/// Addresses that are never a federation peer: private, shared, loopback and
/// link-local ranges (the cloud metadata service lives there). They match
/// Synapse's own default `ip_range_blacklist`, and keep a federating Synapse
/// from reaching other services inside the cluster or the hospital network.
const NOT_PUBLIC_V4: [&str; 6] = [
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
];
const NOT_PUBLIC_V6: [&str; 3] = ["::1/128", "fc00::/7", "fe80::/10"];

/// Everything the network objects of a stage depend on.
pub struct NetworkInputs<'a> {
    pub names: &'a StageNames,
    pub namespace: &'a str,
    pub spec: &'a MessengerInstanceSpec,
    pub stage: &'a Stage,
    pub federation: bool,
    /// `spec.access`'s source ranges, validated and canonical.
    pub ranges: &'a SourceRanges,
}

impl NetworkInputs<'_> {
    fn element_enabled(&self) -> bool {
        self.spec.clients.element_web.enabled
    }
}

/// The stage's Ingresses: the main one, and one for `/_synapse/admin` when
/// `adminSourceRanges` lets anyone reach it. None without
/// `access.ingress`.
pub fn ingresses(inputs: &NetworkInputs<'_>) -> Vec<Ingress> {
    let NetworkInputs {
        names,
        namespace,
        spec,
        stage,
        federation,
        ranges,
    } = inputs;
    let Some(settings) = &spec.access.ingress else {
        return Vec::new();
    };
    let (allowed, admin) = (&ranges.allowed, &ranges.admin);
    let host = stage.server_name.as_str();
    let synapse_client = backend(names.synapse(), "client");
    let mut paths = vec![
        path("/_matrix", synapse_client.clone()),
        path("/_synapse/client", synapse_client.clone()),
    ];
    if *federation {
        // Federation requests go to Synapse's federation listener.
        let federation = backend(names.synapse(), "federation");
        paths.push(path("/_matrix/federation", federation.clone()));
        paths.push(path("/_matrix/key", federation));
    }
    if inputs.element_enabled() {
        paths.push(path(
            well_known::PATH_PREFIX,
            backend(names.element_web(), element::WELL_KNOWN_PORT_NAME),
        ));
        paths.push(path(
            "/",
            backend(names.element_web(), element::HTTP_PORT_NAME),
        ));
    } else {
        // Without Element Web, Synapse answers `.well-known/matrix` itself
        // where its configuration serves the documents.
        paths.push(path(well_known::PATH_PREFIX, synapse_client.clone()));
    }
    // With only an issuer, cert-manager fills a Secret named for the stage.
    let tls_secret = settings.tls_secret_name.clone().or_else(|| {
        settings
            .cert_manager_cluster_issuer
            .as_ref()
            .map(|_| names.tls_secret())
    });
    let tls = tls_secret.map(|secret_name| {
        vec![IngressTLS {
            hosts: Some(vec![host.to_owned()]),
            secret_name: Some(secret_name),
        }]
    });
    let ingress =
        |name: String, paths: Vec<HTTPIngressPath>, annotations: BTreeMap<String, String>| {
            let mut metadata = stage_meta(names, namespace, name, COMPONENT);
            metadata.annotations = (!annotations.is_empty()).then_some(annotations);
            Ingress {
                metadata,
                spec: Some(IngressSpec {
                    ingress_class_name: settings.class_name.clone(),
                    tls: tls.clone(),
                    rules: Some(vec![IngressRule {
                        host: Some(host.to_owned()),
                        http: Some(HTTPIngressRuleValue { paths }),
                    }]),
                    ..IngressSpec::default()
                }),
                ..Ingress::default()
            }
        };
    // The operator's annotations win over the user's: an allow list is not
    // a control if an annotation can quietly replace it.
    let mut main = settings.annotations.clone();
    if let Some(issuer) = &settings.cert_manager_cluster_issuer {
        main.insert(CLUSTER_ISSUER_ANNOTATION.into(), issuer.clone());
    }
    allow_list(&mut main, allowed);
    let mut objects = vec![ingress(names.ingress(), paths, main)];
    if !admin.is_empty() {
        // A second Ingress for the same host: ingress-nginx routes the
        // longest matching prefix, so /_synapse/admin gets this one's allow
        // list. It names no issuer, so cert-manager makes one certificate.
        let mut annotations = settings.annotations.clone();
        annotations.remove(CLUSTER_ISSUER_ANNOTATION);
        allow_list(&mut annotations, admin);
        objects.push(ingress(
            names.admin_ingress(),
            vec![path("/_synapse/admin", synapse_client)],
            annotations,
        ));
    }
    objects
}

fn allow_list(annotations: &mut BTreeMap<String, String>, ranges: &[String]) {
    if ranges.is_empty() {
        return;
    }
    let value = ranges.join(",");
    annotations.insert(WHITELIST_ANNOTATION.into(), value.clone());
    annotations.insert(ALLOWLIST_ANNOTATION.into(), value);
}

fn backend(service: String, port: &str) -> IngressBackend {
    IngressBackend {
        service: Some(IngressServiceBackend {
            name: service,
            port: Some(ServiceBackendPort {
                name: Some(port.into()),
                ..ServiceBackendPort::default()
            }),
        }),
        ..IngressBackend::default()
    }
}

fn path(prefix: &str, backend: IngressBackend) -> HTTPIngressPath {
    HTTPIngressPath {
        path: Some(prefix.into()),
        path_type: "Prefix".into(),
        backend,
    }
}

/// The stage's NetworkPolicies: deny everything, then allow exactly what
/// each component needs.
pub fn network_policies(inputs: &NetworkInputs<'_>) -> Vec<NetworkPolicy> {
    let NetworkInputs {
        names,
        namespace,
        spec,
        stage: _,
        federation,
        ranges,
    } = inputs;
    let allowed = &ranges.allowed;
    let policy = |purpose: &str, pods: LabelSelector| NetworkPolicy {
        metadata: stage_meta(names, namespace, names.network_policy(purpose), COMPONENT),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods),
            ..NetworkPolicySpec::default()
        }),
    };
    let stage_pods = labels(names.stage_selector());
    let component_pods = |component: &str| labels(names.selector(component));
    let synapse_pods = component_pods(synapse::COMPONENT);
    // Backup and restore Jobs read and write the same database and
    // repository.
    let backup_jobs = LabelSelector {
        match_labels: Some(names.stage_selector()),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: COMPONENT_LABEL.to_owned(),
            operator: "In".to_owned(),
            values: Some(vec![
                BACKUP_COMPONENT.to_owned(),
                RESTORE_COMPONENT.to_owned(),
            ]),
        }]),
    };
    let mut policies = Vec::new();

    // Every pod of the stage: no traffic in or out unless allowed below.
    let mut deny = policy("deny-all", stage_pods.clone());
    set_rules(&mut deny, Some(Vec::new()), Some(Vec::new()));
    policies.push(deny);

    // Name resolution. A node-local DNS cache outside kube-system needs
    // its own policy.
    let mut dns = policy("dns", stage_pods.clone());
    set_rules(
        &mut dns,
        None,
        Some(vec![NetworkPolicyEgressRule {
            to: Some(vec![namespace_peer(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_owned(),
                    "kube-system".to_owned(),
                )])),
                ..LabelSelector::default()
            })]),
            ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
        }]),
    );
    policies.push(dns);

    // Synapse: the ingress path in, metrics to the monitoring stack, the
    // smoke test; out to its database, and to the world only as far as
    // federation and single sign-on need.
    let sources = ingress_sources(spec, allowed);
    let mut public_ports = vec![port("TCP", CLIENT_PORT)];
    if *federation {
        public_ports.push(port("TCP", FEDERATION_PORT));
    }
    let metrics_namespaces = spec
        .access
        .metrics_namespace_selector
        .clone()
        .unwrap_or_else(|| LabelSelector {
            match_labels: Some(BTreeMap::from([(
                MONITORING_NAMESPACE_LABEL.to_owned(),
                "true".to_owned(),
            )])),
            ..LabelSelector::default()
        });
    let synapse_in = vec![
        NetworkPolicyIngressRule {
            from: sources.clone(),
            ports: Some(public_ports),
        },
        NetworkPolicyIngressRule {
            from: Some(vec![pod_peer(component_pods(SMOKE_TEST_COMPONENT))]),
            ports: Some(vec![port("TCP", CLIENT_PORT)]),
        },
        NetworkPolicyIngressRule {
            from: Some(vec![namespace_peer(metrics_namespaces)]),
            ports: Some(vec![port("TCP", METRICS_PORT)]),
        },
    ];
    let mut synapse_out = vec![database_egress(inputs)];
    if *federation {
        synapse_out.push(NetworkPolicyEgressRule {
            to: Some(public_internet()),
            ports: Some(vec![port("TCP", 443), port("TCP", FEDERATION_PORT)]),
        });
    }
    let sso = spec
        .homeserver
        .registration
        .as_ref()
        .filter(|registration| registration.mode == RegistrationMode::Sso);
    if let Some(registration) = sso {
        // The identity provider is often inside the hospital network or the
        // cluster, so anywhere, but only on the issuers' ports.
        let mut ports: Vec<i32> = registration
            .oidc_providers
            .iter()
            .map(|p| url_port(&p.issuer))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        if ports.is_empty() {
            ports.push(443);
        }
        synapse_out.push(NetworkPolicyEgressRule {
            to: Some(anywhere()),
            ports: Some(ports.into_iter().map(|p| port("TCP", p)).collect()),
        });
    }
    let mut synapse_policy = policy("synapse", synapse_pods.clone());
    set_rules(&mut synapse_policy, Some(synapse_in), Some(synapse_out));
    policies.push(synapse_policy);

    // Element Web serves static files: the ingress path in, nothing out.
    if inputs.element_enabled() {
        let mut element_policy = policy("element-web", component_pods(element::COMPONENT));
        set_rules(
            &mut element_policy,
            Some(vec![NetworkPolicyIngressRule {
                from: sources,
                ports: Some(vec![port("TCP", HTTP_PORT), port("TCP", WELL_KNOWN_PORT)]),
            }]),
            None,
        );
        policies.push(element_policy);
    }

    // The database: Synapse and the backup and restore Jobs in.
    let clients = vec![
        pod_peer(synapse_pods.clone()),
        pod_peer(backup_jobs.clone()),
    ];
    match spec.database.engine {
        DatabaseEngine::Managed => {
            let mut database = policy("database", component_pods(DATABASE_COMPONENT));
            set_rules(
                &mut database,
                Some(vec![NetworkPolicyIngressRule {
                    from: Some(clients),
                    ports: Some(vec![port("TCP", POSTGRES_PORT)]),
                }]),
                None,
            );
            policies.push(database);
        }
        DatabaseEngine::CloudnativePg => {
            // CloudNativePG's pods also replicate among themselves, answer
            // their operator (wherever it runs) on the status port, and
            // talk to the Kubernetes API, whose address no selector names.
            let cluster = labels(BTreeMap::from([(
                CNPG_CLUSTER_LABEL.to_owned(),
                names.database(),
            )]));
            let peers = pod_peer(cluster.clone());
            let mut database = policy("database", cluster);
            let mut from = clients;
            from.push(peers.clone());
            set_rules(
                &mut database,
                Some(vec![
                    NetworkPolicyIngressRule {
                        from: Some(from),
                        ports: Some(vec![port("TCP", POSTGRES_PORT)]),
                    },
                    NetworkPolicyIngressRule {
                        from: Some(vec![
                            peers.clone(),
                            namespace_peer(LabelSelector::default()),
                        ]),
                        ports: Some(vec![port("TCP", CNPG_STATUS_PORT)]),
                    },
                ]),
                Some(vec![
                    NetworkPolicyEgressRule {
                        to: Some(vec![peers]),
                        ports: Some(vec![
                            port("TCP", POSTGRES_PORT),
                            port("TCP", CNPG_STATUS_PORT),
                        ]),
                    },
                    NetworkPolicyEgressRule {
                        to: Some(anywhere()),
                        ports: Some(API_SERVER_PORTS.iter().map(|p| port("TCP", *p)).collect()),
                    },
                ]),
            );
            policies.push(database);
        }
        // Not the operator's pods to protect.
        DatabaseEngine::External => {}
    }

    // Backup and restore Jobs: out to the database and the repository.
    if let Some(backups) = &spec.backups {
        let mut out = vec![database_egress(inputs)];
        if let Some(s3) = &backups.repository.s3 {
            out.push(NetworkPolicyEgressRule {
                to: Some(anywhere()),
                ports: Some(vec![port("TCP", url_port(&s3.endpoint))]),
            });
        }
        let mut backup = policy("backup", backup_jobs);
        set_rules(&mut backup, None, Some(out));
        policies.push(backup);
    }
    policies
}

/// Who may reach the stage's public ports: anyone when no range is set and
/// no ingress controller named; else the ingress controller's namespaces
/// (every namespace if not named) and the allowed ranges, for traffic that
/// arrives without a proxy.
fn ingress_sources(
    spec: &MessengerInstanceSpec,
    allowed: &[String],
) -> Option<Vec<NetworkPolicyPeer>> {
    let controller = spec.access.ingress_namespace_selector.clone();
    if allowed.is_empty() && controller.is_none() {
        return None;
    }
    let mut peers = vec![namespace_peer(controller.unwrap_or_default())];
    peers.extend(allowed.iter().map(|cidr| ip_peer(cidr, &[])));
    Some(peers)
}

/// Egress from a stage's pods to its database.
fn database_egress(inputs: &NetworkInputs<'_>) -> NetworkPolicyEgressRule {
    let names = inputs.names;
    let database = &inputs.spec.database;
    match (database.engine, &database.external) {
        (DatabaseEngine::Managed, _) => NetworkPolicyEgressRule {
            to: Some(vec![pod_peer(labels(names.selector(DATABASE_COMPONENT)))]),
            ports: Some(vec![port("TCP", POSTGRES_PORT)]),
        },
        (DatabaseEngine::CloudnativePg, _) => NetworkPolicyEgressRule {
            to: Some(vec![pod_peer(labels(BTreeMap::from([(
                CNPG_CLUSTER_LABEL.to_owned(),
                names.database(),
            )])))]),
            ports: Some(vec![port("TCP", POSTGRES_PORT)]),
        },
        // A host name is no NetworkPolicy peer: anywhere, on its port.
        (DatabaseEngine::External, external) => NetworkPolicyEgressRule {
            to: Some(anywhere()),
            ports: Some(vec![port(
                "TCP",
                external
                    .as_ref()
                    .map_or(POSTGRES_PORT, |external| external.port),
            )]),
        },
    }
}

/// Every address, inside the cluster and out.
fn anywhere() -> Vec<NetworkPolicyPeer> {
    vec![
        namespace_peer(LabelSelector::default()),
        ip_peer("0.0.0.0/0", &[]),
        ip_peer("::/0", &[]),
    ]
}

/// Public addresses only.
fn public_internet() -> Vec<NetworkPolicyPeer> {
    vec![
        ip_peer("0.0.0.0/0", &NOT_PUBLIC_V4),
        ip_peer("::/0", &NOT_PUBLIC_V6),
    ]
}

/// The port of an `http(s)://host[:port]/…` URL: the explicit one, else the
/// scheme's.
pub fn url_port(url: &str) -> i32 {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    // After the closing bracket of an IPv6 literal, or the only colon.
    let port = match authority.rsplit_once(']') {
        Some((_, after)) => after.strip_prefix(':'),
        None => authority.split_once(':').map(|(_, port)| port),
    };
    port.and_then(|port| port.parse().ok())
        .unwrap_or(if scheme.eq_ignore_ascii_case("http") {
            80
        } else {
            443
        })
}

fn labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

fn pod_peer(pods: LabelSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(pods),
        ..NetworkPolicyPeer::default()
    }
}

fn namespace_peer(namespaces: LabelSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(namespaces),
        ..NetworkPolicyPeer::default()
    }
}

fn ip_peer(cidr: &str, except: &[&str]) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: (!except.is_empty()).then(|| except.iter().map(|e| (*e).to_owned()).collect()),
        }),
        ..NetworkPolicyPeer::default()
    }
}

fn port(protocol: &str, number: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(number)),
        ..NetworkPolicyPort::default()
    }
}

/// Sets a policy's rules; `None` leaves that direction alone (not
/// isolated by this policy), `Some(vec![])` denies it.
fn set_rules(
    policy: &mut NetworkPolicy,
    ingress: Option<Vec<NetworkPolicyIngressRule>>,
    egress: Option<Vec<NetworkPolicyEgressRule>>,
) {
    let spec = policy.spec.get_or_insert_with(NetworkPolicySpec::default);
    let mut types = Vec::new();
    if ingress.is_some() {
        types.push("Ingress".to_owned());
    }
    if egress.is_some() {
        types.push("Egress".to_owned());
    }
    spec.policy_types = Some(types);
    spec.ingress = ingress;
    spec.egress = egress;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        Access, Backups, ExternalDatabase, Federation, FederationMode, Hostname, IngressAccess,
        OidcProvider, Registration, Repository, S3Repository, SecretKeyRef, SecretRef,
    };

    fn stage() -> Stage {
        Stage {
            name: "production".into(),
            server_name: Hostname("messenger.example.org".into()),
            ..Stage::default()
        }
    }

    fn access() -> Access {
        Access {
            ingress: Some(IngressAccess {
                class_name: Some("nginx".into()),
                tls_secret_name: Some("messenger-tls".into()),
                annotations: BTreeMap::from([(
                    WHITELIST_ANNOTATION.to_owned(),
                    "0.0.0.0/0".to_owned(),
                )]),
                ..IngressAccess::default()
            }),
            allowed_source_ranges: vec!["10.0.0.0/8".into()],
            admin_source_ranges: vec!["10.1.2.0/24".into()],
            ..Access::default()
        }
    }

    fn build<T>(
        spec: &MessengerInstanceSpec,
        federation: bool,
        f: impl Fn(&NetworkInputs<'_>) -> T,
    ) -> T {
        let names = StageNames::new("umessenger", "production");
        let stage = stage();
        let ranges = crate::validate::network::source_ranges(spec).expect("valid ranges");
        f(&NetworkInputs {
            names: &names,
            namespace: "messenger",
            spec,
            stage: &stage,
            federation,
            ranges: &ranges,
        })
    }

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

    fn annotation<'a>(ingress: &'a Ingress, key: &str) -> Option<&'a str> {
        ingress
            .metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    #[test]
    fn the_ingress_routes_matrix_to_synapse_and_the_rest_to_element() {
        let spec = MessengerInstanceSpec {
            access: access(),
            ..MessengerInstanceSpec::default()
        };
        let objects = build(&spec, false, ingresses);
        assert_eq!(objects.len(), 2);
        let main = &objects[0];
        let synapse = "umessenger-production-synapse".to_owned();
        let element = "umessenger-production-element-web".to_owned();
        assert_eq!(
            routes(main),
            [
                ("/_matrix".into(), synapse.clone(), "client".into()),
                ("/_synapse/client".into(), synapse.clone(), "client".into()),
                (
                    "/.well-known/matrix".into(),
                    element.clone(),
                    "well-known".into()
                ),
                ("/".into(), element, "http".into()),
            ]
        );
        let spec_ = main.spec.as_ref().unwrap();
        assert_eq!(spec_.ingress_class_name.as_deref(), Some("nginx"));
        assert_eq!(
            spec_.tls.as_ref().unwrap()[0].secret_name.as_deref(),
            Some("messenger-tls")
        );
        assert_eq!(
            spec_.rules.as_ref().unwrap()[0].host.as_deref(),
            Some("messenger.example.org")
        );
        // The operator's allow list replaces the user's annotation.
        assert_eq!(annotation(main, WHITELIST_ANNOTATION), Some("10.0.0.0/8"));
        assert_eq!(annotation(main, ALLOWLIST_ANNOTATION), Some("10.0.0.0/8"));

        let admin = &objects[1];
        assert_eq!(
            admin.metadata.name.as_deref(),
            Some("umessenger-production-admin")
        );
        assert_eq!(
            routes(admin),
            [("/_synapse/admin".into(), synapse, "client".into())]
        );
        assert_eq!(annotation(admin, WHITELIST_ANNOTATION), Some("10.1.2.0/24"));
    }

    #[test]
    fn without_admin_ranges_the_admin_api_is_not_routed() {
        let mut access = access();
        access.admin_source_ranges.clear();
        access.allowed_source_ranges.clear();
        access.ingress.as_mut().unwrap().annotations.clear();
        let spec = MessengerInstanceSpec {
            access,
            ..MessengerInstanceSpec::default()
        };
        let objects = build(&spec, false, ingresses);
        assert_eq!(objects.len(), 1);
        assert!(
            routes(&objects[0])
                .iter()
                .all(|(path, _, _)| !path.starts_with("/_synapse/admin"))
        );
        assert_eq!(
            objects[0].metadata.annotations, None,
            "no allow list: everyone"
        );
    }

    #[test]
    fn cert_manager_gets_a_secret_to_fill_and_only_one_certificate() {
        let mut access = access();
        let ingress = access.ingress.as_mut().unwrap();
        ingress.tls_secret_name = None;
        ingress.cert_manager_cluster_issuer = Some("letsencrypt".into());
        let spec = MessengerInstanceSpec {
            access,
            ..MessengerInstanceSpec::default()
        };
        let objects = build(&spec, false, ingresses);
        for ingress in &objects {
            let tls = &ingress.spec.as_ref().unwrap().tls.as_ref().unwrap()[0];
            assert_eq!(
                tls.secret_name.as_deref(),
                Some("umessenger-production-tls")
            );
        }
        assert_eq!(
            annotation(&objects[0], CLUSTER_ISSUER_ANNOTATION),
            Some("letsencrypt")
        );
        assert_eq!(annotation(&objects[1], CLUSTER_ISSUER_ANNOTATION), None);
    }

    #[test]
    fn federation_and_a_disabled_element_change_the_routes() {
        let mut spec = MessengerInstanceSpec {
            access: access(),
            ..MessengerInstanceSpec::default()
        };
        spec.clients.element_web.enabled = false;
        let routes = routes(&build(&spec, true, ingresses)[0]);
        assert!(routes.contains(&(
            "/_matrix/federation".into(),
            "umessenger-production-synapse".into(),
            "federation".into()
        )));
        assert!(routes.contains(&(
            "/.well-known/matrix".into(),
            "umessenger-production-synapse".into(),
            "client".into()
        )));
        assert!(!routes.iter().any(|(path, _, _)| path == "/"));
    }

    #[test]
    fn no_ingress_settings_no_ingress() {
        assert!(build(&MessengerInstanceSpec::default(), false, ingresses).is_empty());
    }

    fn policy<'a>(policies: &'a [NetworkPolicy], purpose: &str) -> &'a NetworkPolicySpec {
        let name = format!("umessenger-production-netpol-{purpose}");
        policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("no policy {name}"))
            .spec
            .as_ref()
            .unwrap()
    }

    fn ports(ports: &Option<Vec<NetworkPolicyPort>>) -> Vec<i32> {
        ports
            .iter()
            .flatten()
            .map(|p| match p.port {
                Some(IntOrString::Int(n)) => n,
                _ => panic!("numeric ports only"),
            })
            .collect()
    }

    #[test]
    fn everything_is_denied_then_exactly_the_needed_paths_allowed() {
        let spec = MessengerInstanceSpec {
            access: access(),
            ..MessengerInstanceSpec::default()
        };
        let policies = build(&spec, false, network_policies);
        let deny = policy(&policies, "deny-all");
        assert_eq!(
            deny.policy_types.as_deref(),
            Some(&["Ingress".to_owned(), "Egress".to_owned()][..])
        );
        assert_eq!(deny.ingress, Some(vec![]));
        assert_eq!(deny.egress, Some(vec![]));
        assert_eq!(
            deny.pod_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()
                .len(),
            2,
            "every pod of the stage"
        );

        let synapse = policy(&policies, "synapse");
        let public = &synapse.ingress.as_ref().unwrap()[0];
        assert_eq!(ports(&public.ports), [8008]);
        let from = public.from.as_ref().unwrap();
        assert_eq!(from[0].namespace_selector, Some(LabelSelector::default()));
        assert_eq!(from[1].ip_block.as_ref().unwrap().cidr, "10.0.0.0/8");
        assert_eq!(ports(&synapse.ingress.as_ref().unwrap()[2].ports), [9000]);
        let egress = synapse.egress.as_ref().unwrap();
        assert_eq!(
            egress.len(),
            1,
            "closed federation and closed registration: only the database"
        );
        assert_eq!(ports(&egress[0].ports), [5432]);

        let database = policy(&policies, "database");
        assert_eq!(ports(&database.ingress.as_ref().unwrap()[0].ports), [5432]);
        assert_eq!(
            database.ingress.as_ref().unwrap()[0]
                .from
                .as_ref()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            ports(&policy(&policies, "element-web").ingress.as_ref().unwrap()[0].ports),
            [8080, 8081]
        );
        assert_eq!(
            ports(&policy(&policies, "dns").egress.as_ref().unwrap()[0].ports),
            [53, 53]
        );
        assert!(
            !policies
                .iter()
                .any(|p| p.metadata.name.as_deref().unwrap().ends_with("backup"))
        );
    }

    #[test]
    fn without_ranges_the_public_ports_are_open_to_all() {
        let spec = MessengerInstanceSpec::default();
        let policies = build(&spec, false, network_policies);
        assert_eq!(
            policy(&policies, "synapse").ingress.as_ref().unwrap()[0].from,
            None
        );
        assert_eq!(
            policy(&policies, "element-web").ingress.as_ref().unwrap()[0].from,
            None
        );
    }

    #[test]
    fn a_named_ingress_namespace_is_the_only_in_cluster_source() {
        let selector = LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                "ingress-nginx".to_owned(),
            )])),
            ..LabelSelector::default()
        };
        let spec = MessengerInstanceSpec {
            access: Access {
                ingress_namespace_selector: Some(selector.clone()),
                ..Access::default()
            },
            ..MessengerInstanceSpec::default()
        };
        let policies = build(&spec, false, network_policies);
        let from = policy(&policies, "synapse").ingress.as_ref().unwrap()[0]
            .from
            .clone()
            .unwrap();
        assert_eq!(from.len(), 1);
        assert_eq!(from[0].namespace_selector.as_ref(), Some(&selector));
    }

    #[test]
    fn federation_sso_and_backups_open_exactly_their_ports() {
        let mut spec = MessengerInstanceSpec::default();
        spec.homeserver.federation = Some(Federation {
            mode: FederationMode::Open,
            ..Federation::default()
        });
        spec.homeserver.registration = Some(Registration {
            mode: RegistrationMode::Sso,
            oidc_providers: vec![OidcProvider {
                id: "keycloak".into(),
                issuer: "https://sso.hospital.example:8443/realms/staff".into(),
                ..OidcProvider::default()
            }],
        });
        spec.backups = Some(Backups {
            schedule: "30 1 * * *".into(),
            keep: Default::default(),
            repository: Repository {
                s3: Some(S3Repository {
                    endpoint: "http://minio.backup:9000".into(),
                    bucket: "b".into(),
                    credentials_secret_ref: SecretRef { name: "s3".into() },
                    ..S3Repository::default()
                }),
                ..Repository::default()
            },
            password_secret_ref: SecretRef { name: "pw".into() },
        });
        let policies = build(&spec, true, network_policies);
        let synapse = policy(&policies, "synapse");
        assert_eq!(
            ports(&synapse.ingress.as_ref().unwrap()[0].ports),
            [8008, 8448]
        );
        let egress = synapse.egress.as_ref().unwrap();
        assert_eq!(ports(&egress[1].ports), [443, 8448]);
        let federation_peers = egress[1].to.as_ref().unwrap();
        let v4 = federation_peers[0].ip_block.as_ref().unwrap();
        assert_eq!(v4.cidr, "0.0.0.0/0");
        assert!(
            v4.except
                .as_ref()
                .unwrap()
                .contains(&"10.0.0.0/8".to_owned())
        );
        assert!(
            v4.except
                .as_ref()
                .unwrap()
                .contains(&"169.254.0.0/16".to_owned())
        );
        assert!(
            federation_peers
                .iter()
                .all(|p| p.namespace_selector.is_none()),
            "no cluster pods"
        );
        assert_eq!(ports(&egress[2].ports), [8443], "the issuer's port");

        let backup = policy(&policies, "backup");
        let jobs = backup.pod_selector.as_ref().unwrap();
        assert_eq!(
            jobs.match_expressions.as_ref().unwrap()[0]
                .values
                .as_deref(),
            Some(&["backup".to_owned(), "restore".to_owned()][..])
        );
        let database_clients = policy(&policies, "database").ingress.as_ref().unwrap()[0]
            .from
            .clone()
            .unwrap();
        assert_eq!(
            database_clients[1].pod_selector.as_ref(),
            Some(jobs),
            "restores reach the database"
        );
        assert_eq!(
            backup.policy_types.as_deref(),
            Some(&["Egress".to_owned()][..])
        );
        let out = backup.egress.as_ref().unwrap();
        assert_eq!(ports(&out[0].ports), [5432]);
        assert_eq!(ports(&out[1].ports), [9000]);
    }

    #[test]
    fn database_engines_shape_the_database_rules() {
        let mut spec = MessengerInstanceSpec::default();
        spec.database.engine = DatabaseEngine::CloudnativePg;
        let policies = build(&spec, false, network_policies);
        let database = policy(&policies, "database");
        assert_eq!(
            database
                .pod_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()[CNPG_CLUSTER_LABEL],
            "umessenger-production-db"
        );
        assert_eq!(ports(&database.ingress.as_ref().unwrap()[1].ports), [8000]);
        assert_eq!(
            ports(&database.egress.as_ref().unwrap()[1].ports),
            [443, 6443]
        );

        spec.database.engine = DatabaseEngine::External;
        spec.database.external = Some(ExternalDatabase {
            host: "pg.hospital.example".into(),
            port: 6432,
            database: "synapse".into(),
            user: "synapse".into(),
            password_secret_ref: SecretKeyRef::default(),
            ssl_mode: None,
        });
        let policies = build(&spec, false, network_policies);
        assert!(
            !policies
                .iter()
                .any(|p| p.metadata.name.as_deref().unwrap().ends_with("database"))
        );
        assert_eq!(
            ports(&policy(&policies, "synapse").egress.as_ref().unwrap()[0].ports),
            [6432]
        );
    }

    #[test]
    fn url_ports() {
        assert_eq!(url_port("https://s3.eu-de.example.net"), 443);
        assert_eq!(url_port("http://minio:9000/bucket"), 9000);
        assert_eq!(url_port("http://minio"), 80);
        assert_eq!(url_port("https://user@[2001:db8::1]:8443/x"), 8443);
        assert_eq!(url_port("https://[2001:db8::1]/x"), 443);
        assert_eq!(url_port("sso.example.org"), 443);
    }
}
