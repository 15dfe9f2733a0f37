//! Secrets the spec refers to but the operator does not manage (OIDC client
//! secrets, S3 credentials, the backup password, the TLS certificate, the
//! external database's password). They carry no managed-by label, so the
//! child caches do not hold them: a watch of its own keeps, per Secret, only
//! its namespace, name and the names of its keys. Values are dropped in the
//! watch stream, before anything is stored, and so are annotations (which
//! may hold a copy of the data) and managed fields.

use std::collections::BTreeMap;

use futures::Stream;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::api::{MessengerInstance, MessengerInstanceSpec};

/// The key-only cache of the Secrets in the watched namespace(s), and the
/// stream of changed Secrets that triggers reconciles.
pub fn watch(
    client: &Client,
    namespace: Option<&str>,
) -> (
    Store<Secret>,
    impl Stream<Item = Result<Secret, watcher::Error>> + Send + 'static,
) {
    let api: Api<Secret> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let writer = reflector::store::Writer::<Secret>::default();
    let store = writer.as_reader();
    let stream = watcher(api, watcher::Config::default())
        .modify(keep_only_key_names)
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    (store, stream)
}

/// Strips a Secret to what the checks need: its name and its key names.
pub fn keep_only_key_names(secret: &mut Secret) {
    if let Some(data) = secret.data.as_mut() {
        for value in data.values_mut() {
            *value = ByteString(Vec::new());
        }
    }
    secret.string_data = None;
    secret.metadata.annotations = None;
    secret.metadata.managed_fields = None;
}

/// One Secret key a spec refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretReference {
    /// The spec field that names it.
    pub field: String,
    pub name: String,
    pub key: String,
}

/// Every Secret key the spec refers to that the operator does not create.
pub fn references(spec: &MessengerInstanceSpec) -> Vec<SecretReference> {
    let mut references = Vec::new();
    let mut add = |field: String, name: &str, key: &str| {
        references.push(SecretReference {
            field,
            name: name.to_owned(),
            key: key.to_owned(),
        })
    };
    if let Some(registration) = &spec.homeserver.registration {
        for provider in &registration.oidc_providers {
            if let Some(reference) = &provider.client_secret_ref {
                add(
                    format!(
                        "spec.homeserver.registration.oidcProviders[{}].clientSecretRef",
                        provider.id
                    ),
                    &reference.name,
                    &reference.key,
                );
            }
        }
    }
    if let Some(backups) = &spec.backups {
        add(
            "spec.backups.passwordSecretRef".into(),
            &backups.password_secret_ref.name,
            "password",
        );
        if let Some(s3) = &backups.repository.s3 {
            for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
                add(
                    "spec.backups.repository.s3.credentialsSecretRef".into(),
                    &s3.credentials_secret_ref.name,
                    key,
                );
            }
        }
    }
    if let (crate::api::DatabaseEngine::External, Some(external)) =
        (spec.database.engine, &spec.database.external)
    {
        add(
            "spec.database.external.passwordSecretRef".into(),
            &external.password_secret_ref.name,
            &external.password_secret_ref.key,
        );
    }
    // A certificate cert-manager issues appears once it is issued.
    if let Some(ingress) = &spec.access.ingress
        && ingress.cert_manager_cluster_issuer.is_none()
        && let Some(name) = &ingress.tls_secret_name
    {
        for key in ["tls.crt", "tls.key"] {
            add("spec.access.ingress.tlsSecretName".into(), name, key);
        }
    }
    references
}

/// What is missing among the spec's referenced Secrets, each naming the
/// stages that need it, the field, the Secret and the key, and the fix.
/// `keys_of` gives a Secret's key names, `None` when it does not exist.
pub fn missing_secrets(
    spec: &MessengerInstanceSpec,
    keys_of: impl Fn(&str) -> Option<Vec<String>>,
) -> Vec<String> {
    let stages = spec
        .stages
        .iter()
        .map(|stage| stage.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut known: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
    let mut problems = Vec::new();
    for reference in references(spec) {
        let keys = known
            .entry(reference.name.clone())
            .or_insert_with(|| keys_of(&reference.name));
        let problem = match keys {
            None => format!(
                "stages {stages}: {}: Secret {} does not exist; create it with the key {}",
                reference.field, reference.name, reference.key
            ),
            Some(keys) if !keys.contains(&reference.key) => format!(
                "stages {stages}: {}: Secret {} has no key {} (it has: {}); add the key or fix the reference",
                reference.field,
                reference.name,
                reference.key,
                if keys.is_empty() {
                    "none".to_owned()
                } else {
                    keys.join(", ")
                }
            ),
            Some(_) => continue,
        };
        if !problems.contains(&problem) {
            problems.push(problem);
        }
    }
    problems
}

/// The instances of a Secret's namespace that refer to it: reconciled when
/// it changes.
pub fn instances_referencing(
    secret: &Secret,
    instances: &Store<MessengerInstance>,
) -> Vec<ObjectRef<MessengerInstance>> {
    let Some(namespace) = secret.namespace() else {
        return Vec::new();
    };
    let name = secret.name_any();
    instances
        .state()
        .iter()
        .filter(|instance| instance.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|instance| references(&instance.spec).iter().any(|r| r.name == name))
        .map(|instance| ObjectRef::from_obj(instance.as_ref()))
        .collect()
}

/// The key names of a cached Secret.
pub fn cached_keys(store: &Store<Secret>, namespace: &str, name: &str) -> Option<Vec<String>> {
    store
        .get(&ObjectRef::new(name).within(namespace))
        .map(|secret| {
            secret
                .data
                .iter()
                .flatten()
                .map(|(key, _)| key.clone())
                .collect()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Backups, IngressAccess, Keep, PvcRepository, Repository, SecretRef, Stage};

    #[test]
    fn values_and_annotations_are_dropped() {
        let mut secret = Secret {
            data: Some([("password".to_owned(), ByteString(b"hunter2".to_vec()))].into()),
            ..Secret::default()
        };
        secret.metadata.annotations = Some(
            [(
                "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                "{\"data\":{\"password\":\"aHVudGVyMg==\"}}".to_owned(),
            )]
            .into(),
        );
        keep_only_key_names(&mut secret);
        assert_eq!(secret.data.unwrap()["password"], ByteString(Vec::new()));
        assert!(secret.metadata.annotations.is_none());
    }

    #[test]
    fn missing_secrets_and_keys_name_the_field_the_secret_and_the_key() {
        let spec = MessengerInstanceSpec {
            stages: vec![
                Stage {
                    name: "beta".into(),
                    ..Stage::default()
                },
                Stage {
                    name: "production".into(),
                    ..Stage::default()
                },
            ],
            backups: Some(Backups {
                schedule: "30 1 * * *".into(),
                keep: Keep::default(),
                repository: Repository {
                    pvc: Some(PvcRepository {
                        size: "1Gi".into(),
                        storage_class_name: None,
                    }),
                    s3: None,
                },
                password_secret_ref: SecretRef {
                    name: "backup".into(),
                },
            }),
            access: crate::api::Access {
                ingress: Some(IngressAccess {
                    tls_secret_name: Some("tls".into()),
                    ..IngressAccess::default()
                }),
                ..Default::default()
            },
            ..MessengerInstanceSpec::default()
        };
        let problems = missing_secrets(&spec, |name| match name {
            "backup" => Some(vec!["pass".into()]),
            _ => None,
        });
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(
            problems[0],
            "stages beta, production: spec.backups.passwordSecretRef: Secret backup has no key password (it has: pass); add the key or fix the reference"
        );
        assert!(problems[1].contains("spec.access.ingress.tlsSecretName: Secret tls does not exist; create it with the key tls.crt"));
        let all_there = missing_secrets(&spec, |_| {
            Some(vec!["password".into(), "tls.crt".into(), "tls.key".into()])
        });
        assert_eq!(all_there, Vec::<String>::new());
    }
}
