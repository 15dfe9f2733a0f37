//! The shared pod and container builder: the restricted security context,
//! object metadata, image names and resources every pod template uses.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, HTTPGetAction, LocalObjectReference, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;

use crate::api::{Images, PullPolicy};

use crate::names::StageNames;

/// A probe that GETs `path` on the container's named `port` every `period`
/// seconds and gives up on an answer after `timeout` seconds.
pub fn http_probe(path: &str, port: &str, period: i32, timeout: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        ..Probe::default()
    }
}

/// A component's container: its name, its image (the repository from
/// `spec.images` or the default, tagged with `version`) and pull policy;
/// the caller adds the rest.
pub fn component_container(
    name: &str,
    images: &Images,
    repository_override: Option<&String>,
    default_repository: &str,
    version: &str,
) -> Container {
    Container {
        name: name.into(),
        image: Some(image(
            images,
            repository_override,
            default_repository,
            Some(version),
        )),
        image_pull_policy: pull_policy(images),
        ..Container::default()
    }
}

/// Metadata of one of a stage's objects.
pub fn stage_meta(
    names: &StageNames,
    namespace: &str,
    name: String,
    component: &str,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        labels: Some(names.labels(component)),
        ..ObjectMeta::default()
    }
}

/// A pod security context that passes the restricted Pod Security Standard.
pub fn restricted_pod(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        fs_group_change_policy: Some("OnRootMismatch".into()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// A container security context that passes the restricted Pod Security
/// Standard, with a read-only root file system.
pub fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

/// Default image repositories, before `spec.images` overrides.
pub const SYNAPSE_REPOSITORY: &str = "ghcr.io/element-hq/synapse";
pub const ELEMENT_WEB_REPOSITORY: &str = "docker.io/vectorim/element-web";
pub const POSTGRES_IMAGE: &str = "docker.io/library/postgres:17.6";

/// An image reference: the override if set, else the default, with the
/// registry replaced when `images.registry` names a mirror.
pub fn image(
    images: &Images,
    repository_override: Option<&String>,
    default: &str,
    tag: Option<&str>,
) -> String {
    let repository = match (repository_override, &images.registry) {
        (Some(repository), _) => repository.clone(),
        (None, Some(registry)) => {
            let path = default.split_once('/').map_or(default, |(_, path)| path);
            format!("{}/{}", registry.trim_end_matches('/'), path)
        }
        (None, None) => default.to_owned(),
    };
    match tag {
        Some(tag) => format!("{repository}:{tag}"),
        None => repository,
    }
}

/// The pull policy of every container.
pub fn pull_policy(images: &Images) -> Option<String> {
    images.pull_policy.map(|policy| {
        match policy {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
        .to_owned()
    })
}

/// Image pull Secrets of every pod.
pub fn pull_secrets(images: &Images) -> Option<Vec<LocalObjectReference>> {
    (!images.pull_secrets.is_empty()).then(|| {
        images
            .pull_secrets
            .iter()
            .map(|name| LocalObjectReference { name: name.clone() })
            .collect()
    })
}

/// Annotations with one entry.
pub fn annotation(key: &str, value: String) -> BTreeMap<String, String> {
    BTreeMap::from([(key.to_owned(), value)])
}

/// Container resources: CPU and memory requests, and a memory limit (no CPU
/// limit: a container may use idle CPU, but never more memory than its limit).
pub fn container_resources(
    cpu_request: &str,
    memory_request: &str,
    memory_limit: &str,
) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu_request.into())),
            ("memory".to_owned(), Quantity(memory_request.into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            Quantity(memory_limit.into()),
        )])),
        ..ResourceRequirements::default()
    }
}

/// A pod of one container that passes the restricted Pod Security
/// Standard, runs as `uid`, gets no API token or service links (it needs
/// neither) and pulls with the instance's pull secrets.
pub fn restricted_pod_spec(container: Container, uid: i64, images: &Images) -> PodSpec {
    PodSpec {
        containers: vec![container],
        security_context: Some(restricted_pod(uid)),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        image_pull_secrets: pull_secrets(images),
        ..PodSpec::default()
    }
}

/// A stage component's StatefulSet of one pod, replaced in place on a
/// change (`RollingUpdate`), its pod labelled like the set.
pub fn stage_stateful_set(
    names: &StageNames,
    namespace: &str,
    name: String,
    component: &str,
    annotations: Option<BTreeMap<String, String>>,
    pod: PodSpec,
) -> StatefulSet {
    StatefulSet {
        metadata: stage_meta(names, namespace, name.clone(), component),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(name),
            selector: LabelSelector {
                match_labels: Some(names.selector(component)),
                ..LabelSelector::default()
            },
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names.labels(component)),
                    annotations,
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_replaces_the_registry() {
        let images = Images {
            registry: Some("mirror.mainz.internal/caduceus/".into()),
            ..Images::default()
        };
        assert_eq!(
            image(&images, None, SYNAPSE_REPOSITORY, Some("v1.163.2")),
            "mirror.mainz.internal/caduceus/element-hq/synapse:v1.163.2"
        );
        let own = "registry.example/synapse".to_owned();
        assert_eq!(
            image(&images, Some(&own), SYNAPSE_REPOSITORY, Some("v1")),
            "registry.example/synapse:v1"
        );
        assert_eq!(
            image(&Images::default(), None, POSTGRES_IMAGE, None),
            POSTGRES_IMAGE
        );
    }
}
