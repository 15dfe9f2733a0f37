//! Element Web of a stage: its `config.json`, Deployment and Service. The
//! same pods serve the stage's `.well-known/matrix` documents (see
//! `well_known`).
//!
//! The official `vectorim/element-web` image runs nginx as the `nginx` user
//! (uid and gid 101). Its entrypoint renders the nginx server from a
//! template into `/etc/nginx/conf.d` with the listen port from
//! `ELEMENT_WEB_PORT`, copies `/app/config*.json` to
//! `/tmp/element-web-config` (where nginx serves `/config*` from), and
//! nginx writes its pid to `/tmp` and temporary files to
//! `/var/cache/nginx`. With a read-only root file system those three
//! directories are emptyDirs; everything else is read-only.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    KeyToPath, PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use serde_json::{Map, Value, json};

use crate::api::{MessengerInstanceSpec, Profile, RegistrationMode, Stage};

use super::content_hash;
use super::merge::deep_merge;
use super::placement::{Component, pod_placement};
use super::pod::{
    ELEMENT_WEB_REPOSITORY, annotation, component_container, container_resources, http_probe,
    restricted_container, restricted_pod_spec, stage_meta,
};
use super::well_known::{
    self, CLIENT_FILE, NGINX_FILE, SERVER_FILE, WELL_KNOWN_DIR, WELL_KNOWN_PORT,
};
use crate::names::{CONFIG_HASH_ANNOTATION, StageNames};

/// The component label of Element Web's objects.
pub const COMPONENT: &str = "element-web";
/// The unprivileged port nginx listens on (the image's default, 80, needs
/// a capability the restricted profile does not grant).
pub const HTTP_PORT: i32 = 8080;
/// The uid and gid of the image's `nginx` user.
pub const NGINX_UID: i64 = 101;
/// Two replicas, so a node drain or a rollout never takes the client away.
pub const REPLICAS: i32 = 2;
/// The ConfigMap key of Element's configuration.
pub const CONFIG_FILE: &str = "config.json";
/// Named ports of the container and the Service.
pub const HTTP_PORT_NAME: &str = "http";
pub const WELL_KNOWN_PORT_NAME: &str = "well-known";

/// Element Web's `config.json` for a stage: the stage's homeserver, the
/// hospital's branding and choices, then `clients.elementWeb.config` merged
/// over everything.
pub fn config_json(spec: &MessengerInstanceSpec, stage: &Stage, federation: bool) -> Value {
    let element = &spec.clients.element_web;
    let server_name = stage.server_name.as_str();
    let base_url = format!("https://{server_name}");
    let features: Map<String, Value> = element
        .features
        .iter()
        .map(|(name, on)| {
            let key = if name.starts_with("feature_") {
                name.clone()
            } else {
                format!("feature_{name}")
            };
            (key, Value::Bool(*on))
        })
        .collect();
    let registration = spec
        .homeserver
        .registration
        .as_ref()
        .map(|r| r.mode)
        .unwrap_or_default();
    let mut setting_defaults = json!({
        // Only token registration has a form to show; closed and SSO
        // accounts are not made in the client.
        "UIFeature.registration": registration == RegistrationMode::Token,
    });
    if spec.homeserver.profile == Profile::HospitalBaseline {
        // Nothing phones home: no identity server lookups, no feedback to
        // element.io, no share-to-social links, no URL previews (the
        // homeserver refuses them too).
        deep_merge(
            &mut setting_defaults,
            &json!({
                "UIFeature.identityServer": false,
                "UIFeature.feedback": false,
                "UIFeature.shareSocial": false,
                "urlPreviewsEnabled": false,
                "urlPreviewsEnabled_e2e": false,
            }),
        );
    }
    if let Some(own) = &element.setting_defaults {
        deep_merge(&mut setting_defaults, own);
    }
    let mut config = json!({
        "default_server_config": {
            "m.homeserver": {"base_url": base_url, "server_name": server_name},
        },
        "brand": element.brand.as_deref().unwrap_or("Element"),
        "default_theme": element.default_theme.as_deref().unwrap_or("light"),
        "disable_custom_urls": element.disable_custom_urls,
        "disable_guests": element.disable_guests,
        "show_labs_settings": element.show_labs_settings,
        // New rooms are closed to other servers unless the stage federates.
        "default_federate": federation,
        "room_directory": {"servers": [server_name]},
        // Links to rooms and users open this client instead of matrix.to.
        "permalink_prefix": base_url,
        "features": features,
        "setting_defaults": setting_defaults,
    });
    if let Some(own) = &element.config {
        deep_merge(&mut config, own);
    }
    config
}

/// The ConfigMap with `config.json`, the well-known documents and the
/// nginx server that serves them.
pub fn config_map(
    names: &StageNames,
    namespace: &str,
    spec: &MessengerInstanceSpec,
    stage: &Stage,
    federation: bool,
) -> ConfigMap {
    let config = serde_json::to_string_pretty(&config_json(spec, stage, federation))
        .expect("JSON serializes");
    let mut data = BTreeMap::from([
        (CONFIG_FILE.to_owned(), config + "\n"),
        (
            CLIENT_FILE.to_owned(),
            well_known::to_text(&well_known::client_document(stage)),
        ),
        (NGINX_FILE.to_owned(), well_known::nginx_server(federation)),
    ]);
    if federation {
        data.insert(
            SERVER_FILE.to_owned(),
            well_known::to_text(&well_known::server_document(stage)),
        );
    }
    ConfigMap {
        metadata: stage_meta(names, namespace, names.element_web(), COMPONENT),
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// Everything the Deployment needs beyond the spec.
pub struct ElementInputs<'a> {
    pub names: &'a StageNames,
    pub namespace: &'a str,
    pub spec: &'a MessengerInstanceSpec,
    pub stage: &'a Stage,
    /// The Element Web release the stage runs.
    pub version: &'a str,
    /// The ConfigMap this Deployment mounts; its content hash rolls the pods.
    pub config: &'a ConfigMap,
}

/// The Element Web Deployment.
pub fn deployment(inputs: &ElementInputs<'_>) -> Deployment {
    let ElementInputs {
        names,
        namespace,
        spec,
        stage,
        version,
        config,
    } = inputs;
    let selector = names.selector(COMPONENT);
    let probe = |period: i32| http_probe("/config.json", HTTP_PORT_NAME, period, 3);
    let container = Container {
        env: Some(vec![EnvVar {
            name: "ELEMENT_WEB_PORT".into(),
            value: Some(HTTP_PORT.to_string()),
            ..EnvVar::default()
        }]),
        ports: Some(vec![
            container_port(HTTP_PORT_NAME, HTTP_PORT),
            container_port(WELL_KNOWN_PORT_NAME, WELL_KNOWN_PORT),
        ]),
        readiness_probe: Some(probe(10)),
        liveness_probe: Some(probe(30)),
        resources: Some(container_resources("10m", "32Mi", "128Mi")),
        security_context: Some(restricted_container()),
        // The emptyDir for conf.d comes before the file mounted into it.
        volume_mounts: Some(vec![
            mount("tmp", "/tmp", None),
            mount("nginx-cache", "/var/cache/nginx", None),
            mount("nginx-conf", "/etc/nginx/conf.d", None),
            mount("config", "/app/config.json", Some(CONFIG_FILE)),
            mount(
                "config",
                &format!("/etc/nginx/conf.d/{NGINX_FILE}"),
                Some(NGINX_FILE),
            ),
            mount("well-known", WELL_KNOWN_DIR, None),
        ]),
        ..component_container(
            COMPONENT,
            &spec.images,
            spec.images.element_web.as_ref(),
            ELEMENT_WEB_REPOSITORY,
            version,
        )
    };
    let mut well_known_items = vec![key_to_path(CLIENT_FILE)];
    if config
        .data
        .as_ref()
        .is_some_and(|data| data.contains_key(SERVER_FILE))
    {
        well_known_items.push(key_to_path(SERVER_FILE));
    }
    let mut pod = PodSpec {
        volumes: Some(vec![
            empty_dir("tmp"),
            empty_dir("nginx-cache"),
            empty_dir("nginx-conf"),
            config_volume("config", names.element_web(), None),
            config_volume("well-known", names.element_web(), Some(well_known_items)),
        ]),
        ..restricted_pod_spec(container, NGINX_UID, &spec.images)
    };
    pod_placement(spec, stage, Component::ElementWeb, &selector).apply_to(&mut pod);
    let hash =
        content_hash(&serde_json::to_value(&config.data).expect("ConfigMap data serializes"));
    Deployment {
        metadata: stage_meta(names, namespace, names.element_web(), COMPONENT),
        spec: Some(DeploymentSpec {
            replicas: Some(REPLICAS),
            revision_history_limit: Some(3),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            // One new pod before an old one goes: the client never drops.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names.labels(COMPONENT)),
                    annotations: Some(annotation(CONFIG_HASH_ANNOTATION, hash)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The Service in front of Element Web and its well-known server.
pub fn service(names: &StageNames, namespace: &str) -> Service {
    Service {
        metadata: stage_meta(names, namespace, names.element_web(), COMPONENT),
        spec: Some(ServiceSpec {
            selector: Some(names.selector(COMPONENT)),
            ports: Some(vec![
                service_port(HTTP_PORT_NAME, HTTP_PORT),
                service_port(WELL_KNOWN_PORT_NAME, WELL_KNOWN_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn container_port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn service_port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: number,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

fn mount(volume: &str, path: &str, sub_path: Option<&str>) -> VolumeMount {
    let writable = sub_path.is_none() && volume != "well-known";
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        sub_path: sub_path.map(Into::into),
        read_only: Some(!writable),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity("64Mi".into())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn config_volume(name: &str, config_map: String, items: Option<Vec<KeyToPath>>) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map,
            items,
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn key_to_path(key: &str) -> KeyToPath {
    KeyToPath {
        key: key.into(),
        path: key.into(),
        ..KeyToPath::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ElementWeb, Hostname, Registration};

    fn stage() -> Stage {
        Stage {
            name: "production".into(),
            server_name: Hostname("messenger.example.org".into()),
            ..Stage::default()
        }
    }

    fn spec(element: ElementWeb) -> MessengerInstanceSpec {
        let mut spec = MessengerInstanceSpec::default();
        spec.clients.element_web = element;
        spec
    }

    #[test]
    fn the_default_config_keeps_users_on_the_stage_and_off_guest_access() {
        let config = config_json(&spec(ElementWeb::default()), &stage(), false);
        assert_eq!(
            config["default_server_config"],
            json!({"m.homeserver": {"base_url": "https://messenger.example.org", "server_name": "messenger.example.org"}})
        );
        assert_eq!(config["disable_custom_urls"], true);
        assert_eq!(config["disable_guests"], true);
        assert_eq!(config["show_labs_settings"], false);
        assert_eq!(config["default_federate"], false);
        assert_eq!(config["brand"], "Element");
        assert_eq!(config["default_theme"], "light");
        assert_eq!(config["permalink_prefix"], "https://messenger.example.org");
        assert_eq!(
            config["room_directory"],
            json!({"servers": ["messenger.example.org"]})
        );
        // Nothing that phones home is configured.
        for key in [
            "posthog",
            "bug_report_endpoint_url",
            "integrations_ui_url",
            "map_style_url",
        ] {
            assert!(config.get(key).is_none(), "{key} must not be set");
        }
        let settings = &config["setting_defaults"];
        assert_eq!(settings["UIFeature.identityServer"], false);
        assert_eq!(settings["urlPreviewsEnabled"], false);
        assert_eq!(settings["UIFeature.registration"], false);
    }

    #[test]
    fn typed_fields_set_brand_theme_features_and_settings() {
        let element = ElementWeb {
            brand: Some("UMessenger".into()),
            default_theme: Some("dark".into()),
            features: BTreeMap::from([
                ("video_rooms".into(), true),
                ("feature_pinning".into(), false),
            ]),
            setting_defaults: Some(json!({"UIFeature.voip": false, "urlPreviewsEnabled": true})),
            show_labs_settings: true,
            disable_custom_urls: false,
            ..ElementWeb::default()
        };
        let mut spec = spec(element);
        spec.homeserver.registration = Some(Registration {
            mode: RegistrationMode::Token,
            ..Registration::default()
        });
        let config = config_json(&spec, &stage(), true);
        assert_eq!(config["brand"], "UMessenger");
        assert_eq!(config["default_theme"], "dark");
        assert_eq!(
            config["features"],
            json!({"feature_video_rooms": true, "feature_pinning": false})
        );
        assert_eq!(config["setting_defaults"]["UIFeature.voip"], false);
        assert_eq!(
            config["setting_defaults"]["urlPreviewsEnabled"], true,
            "the hospital's choice wins"
        );
        assert_eq!(config["setting_defaults"]["UIFeature.registration"], true);
        assert_eq!(config["show_labs_settings"], true);
        assert_eq!(config["disable_custom_urls"], false);
        assert_eq!(config["default_federate"], true);
    }

    #[test]
    fn free_form_config_is_merged_last_and_deeply() {
        let element = ElementWeb {
            brand: Some("UMessenger".into()),
            config: Some(json!({
                "brand": "Klinikum Chat",
                "default_server_config": {"m.homeserver": {"base_url": "https://matrix.example.org"}},
                "setting_defaults": {"UIFeature.feedback": true},
                "permalink_prefix": null,
                "jitsi": {"preferred_domain": "meet.hospital.example"},
            })),
            ..ElementWeb::default()
        };
        let config = config_json(&spec(element), &stage(), false);
        assert_eq!(config["brand"], "Klinikum Chat");
        assert_eq!(
            config["default_server_config"]["m.homeserver"],
            json!({"base_url": "https://matrix.example.org", "server_name": "messenger.example.org"})
        );
        assert_eq!(config["setting_defaults"]["UIFeature.feedback"], true);
        assert_eq!(
            config["setting_defaults"]["UIFeature.identityServer"], false,
            "siblings stay"
        );
        assert!(
            config.get("permalink_prefix").is_none(),
            "null removes a key"
        );
        assert_eq!(config["jitsi"]["preferred_domain"], "meet.hospital.example");
    }

    #[test]
    fn the_profile_none_leaves_elements_own_privacy_defaults() {
        let mut spec = spec(ElementWeb::default());
        spec.homeserver.profile = Profile::None;
        let settings = &config_json(&spec, &stage(), false)["setting_defaults"];
        assert!(settings.get("UIFeature.identityServer").is_none());
        assert_eq!(settings["UIFeature.registration"], false);
    }

    #[test]
    fn the_config_map_holds_config_and_well_known_documents() {
        let names = StageNames::new("umessenger", "production");
        let spec = spec(ElementWeb::default());
        let closed = config_map(&names, "messenger", &spec, &stage(), false);
        let data = closed.data.unwrap();
        let config: Value = serde_json::from_str(&data[CONFIG_FILE]).unwrap();
        assert_eq!(config, config_json(&spec, &stage(), false));
        let client: Value = serde_json::from_str(&data[CLIENT_FILE]).unwrap();
        assert_eq!(client["io.element.e2ee"]["default"], true);
        assert!(
            !data.contains_key(SERVER_FILE),
            "no federation, no server delegation"
        );
        let open = config_map(&names, "messenger", &spec, &stage(), true)
            .data
            .unwrap();
        let server: Value = serde_json::from_str(&open[SERVER_FILE]).unwrap();
        assert_eq!(server, json!({"m.server": "messenger.example.org:443"}));
    }

    #[test]
    fn the_deployment_runs_unprivileged_on_a_read_only_root() {
        let names = StageNames::new("umessenger", "production");
        let spec = spec(ElementWeb::default());
        let config = config_map(&names, "messenger", &spec, &stage(), false);
        let deployment = deployment(&ElementInputs {
            names: &names,
            namespace: "messenger",
            spec: &spec,
            stage: &stage(),
            version: "v1.12.3",
            config: &config,
        });
        let spec = deployment.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.unwrap();
        assert_eq!(
            pod.security_context.as_ref().unwrap().run_as_user,
            Some(NGINX_UID)
        );
        let container = &pod.containers[0];
        assert_eq!(
            container.image.as_deref(),
            Some("docker.io/vectorim/element-web:v1.12.3")
        );
        assert_eq!(
            container.env.as_ref().unwrap()[0].value.as_deref(),
            Some("8080")
        );
        assert_eq!(
            container
                .security_context
                .as_ref()
                .unwrap()
                .read_only_root_filesystem,
            Some(true)
        );
        let mounts = container.volume_mounts.as_ref().unwrap();
        let writable: Vec<&str> = mounts
            .iter()
            .filter(|m| m.read_only == Some(false))
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(writable, ["/tmp", "/var/cache/nginx", "/etc/nginx/conf.d"]);
        assert!(pod.topology_spread_constraints.is_some());
    }

    #[test]
    fn a_config_change_rolls_the_pods() {
        let names = StageNames::new("umessenger", "production");
        let hash = |brand: &str| {
            let spec = spec(ElementWeb {
                brand: Some(brand.into()),
                ..ElementWeb::default()
            });
            let config = config_map(&names, "messenger", &spec, &stage(), false);
            deployment(&ElementInputs {
                names: &names,
                namespace: "messenger",
                spec: &spec,
                stage: &stage(),
                version: "v1.12.3",
                config: &config,
            })
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()[CONFIG_HASH_ANNOTATION]
                .clone()
        };
        assert_ne!(hash("A"), hash("B"));
        assert_eq!(hash("A"), hash("A"));
    }
}
