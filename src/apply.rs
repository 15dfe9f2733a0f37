//! Apply: the one writer of a reconcile. Server-side apply of desired
//! children (skipping what already matches), create-once, deletion of what
//! is no longer desired, the status and the finalizers — each counted, and
//! each failure named by its object and operation.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use thiserror::Error;
use tracing::{debug, info};

use crate::api::{MessengerInstance, MessengerInstanceStatus};
use crate::desired::Child;
use crate::metrics::Metrics;
use crate::names::MANAGER;

/// A write (or the read after a lost create race) that failed.
#[derive(Debug, Error)]
pub enum ApplyError {
    #[error("applying {object}: {source}")]
    Apply {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating {object}: {source}")]
    Create {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading {object} after another writer created it: {source}")]
    Read {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting {object}: {source}")]
    Delete {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of MessengerInstance/{instance}: {source}")]
    Status {
        instance: String,
        #[source]
        source: kube::Error,
    },
    #[error("updating the finalizers of MessengerInstance/{instance}: {source}")]
    Finalizers {
        instance: String,
        #[source]
        source: kube::Error,
    },
}

impl ApplyError {
    /// The object and the API server's message when the server refused the
    /// object itself (it is invalid or forbidden), as opposed to a failure
    /// a retry may clear on its own. Such a refusal belongs in the status.
    pub fn refusal(&self) -> Option<(&str, &str)> {
        let (object, source) = match self {
            Self::Apply { object, source } | Self::Create { object, source } => (object, source),
            _ => return None,
        };
        match source {
            kube::Error::Api(status) if matches!(status.code, 400 | 403 | 404 | 409 | 422) => {
                Some((object.as_str(), status.message.as_str()))
            }
            _ => None,
        }
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Apply { .. } | Self::Create { .. } => "apply",
            Self::Read { .. } => "read",
            Self::Delete { .. } => "delete",
            Self::Status { .. } => "status",
            Self::Finalizers { .. } => "finalizer",
        }
    }
}

/// The first field where the live object differs from the desired one, or
/// `None` when the live object already holds every field the desired object
/// sets. Server-side apply keeps fields other managers own, and the server
/// adds defaults, so the live object is a superset when nothing drifted. The
/// desired-hash annotation makes any change of intent (including a field no
/// longer set) a difference.
pub fn difference(desired: &Value, live: &Value) -> Option<String> {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => {
            want.iter().find_map(|(key, value)| match have.get(key) {
                Some(live_value) => difference(value, live_value).map(|path| join(key, &path)),
                None if is_empty(value) => None,
                None => Some(key.clone()),
            })
        }
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => want
            .iter()
            .zip(have)
            .enumerate()
            .find_map(|(index, (w, h))| {
                difference(w, h).map(|path| join(&format!("[{index}]"), &path))
            }),
        (Value::Number(want), Value::Number(have)) if want.as_f64() == have.as_f64() => None,
        _ if desired == live => None,
        _ => Some(String::new()),
    }
}

fn join(head: &str, tail: &str) -> String {
    match (tail.is_empty(), tail.starts_with('[')) {
        (true, _) => head.to_owned(),
        (false, true) => format!("{head}{tail}"),
        (false, false) => format!("{head}.{tail}"),
    }
}

/// Whether the live object already holds every field of the desired one.
pub fn matches(desired: &Value, live: &Value) -> bool {
    difference(desired, live).is_none()
}

/// Values the API server drops when stored (Go's `omitempty` zero values),
/// so their absence is no drift.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::String(text) => text.is_empty(),
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

/// The part of a child compared with the live object: what the operator
/// sets, without the fields the server manages.
fn comparable(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).expect("objects serialize");
    // Objects from a list carry no type fields; the API fixes them anyway.
    if let Some(fields) = value.as_object_mut() {
        fields.remove("apiVersion");
        fields.remove("kind");
    }
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
        metadata.remove("managedFields");
    }
    value
}

/// Applies children for one instance and counts what it writes.
pub struct Applier<'a> {
    client: &'a Client,
    metrics: &'a Metrics,
}

impl<'a> Applier<'a> {
    pub fn new(client: &'a Client, metrics: &'a Metrics) -> Self {
        Self { client, metrics }
    }

    fn api(&self, child: &Child) -> Api<DynamicObject> {
        let namespace = child
            .object
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default();
        Api::namespaced_with(self.client.clone(), namespace, &child.resource)
    }

    /// Applies `child` unless `live` already matches it. Returns whether it
    /// wrote.
    pub async fn apply(
        &self,
        child: &Child,
        live: Option<&DynamicObject>,
    ) -> Result<bool, ApplyError> {
        let drift = match live {
            Some(live) => {
                let live = serde_json::to_value(live).expect("objects serialize");
                match difference(&comparable(&child.object), &live) {
                    None => return Ok(false),
                    Some(path) => path,
                }
            }
            None => "absent".to_owned(),
        };
        let params = PatchParams::apply(MANAGER).force();
        self.api(child)
            .patch(
                &child.object.name_any(),
                &params,
                &Patch::Apply(&child.object),
            )
            .await
            .map_err(|source| ApplyError::Apply {
                object: child.describe(),
                source,
            })?;
        self.metrics.api_write("apply", &child.resource.kind);
        info!(object = %child.describe(), %drift, "applied");
        Ok(true)
    }

    /// Creates `child` if it does not exist; never changes an existing one.
    /// Returns whether it created.
    pub async fn create_once(&self, child: &Child) -> Result<bool, ApplyError> {
        let params = PostParams {
            field_manager: Some(MANAGER.into()),
            ..PostParams::default()
        };
        match self.api(child).create(&params, &child.object).await {
            Ok(_) => {
                self.metrics.api_write("create", &child.resource.kind);
                info!(object = %child.describe(), "created");
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                debug!(object = %child.describe(), "already exists; left as it is");
                Ok(false)
            }
            Err(source) => Err(ApplyError::Create {
                object: child.describe(),
                source,
            }),
        }
    }

    /// Reads the Secret a create-once lost to another writer.
    pub async fn read_secret(&self, namespace: &str, name: &str) -> Result<Secret, ApplyError> {
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get(name)
            .await
            .map_err(|source| ApplyError::Read {
                object: format!("Secret/{name}"),
                source,
            })
    }

    /// Deletes an object the instance no longer wants.
    pub async fn delete(
        &self,
        resource: &ApiResource,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApplyError> {
        let kind = resource.kind.as_str();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, resource);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {
                self.metrics.api_write("delete", kind);
                info!(object = %format!("{kind}/{name}"), "deleted");
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(ApplyError::Delete {
                object: format!("{kind}/{name}"),
                source,
            }),
        }
    }
}

impl Applier<'_> {
    /// Writes the instance's status with server-side apply.
    pub async fn write_status(
        &self,
        instance: &MessengerInstance,
        status: &MessengerInstanceStatus,
    ) -> Result<(), ApplyError> {
        let namespace = instance.namespace().unwrap_or_default();
        let api: Api<MessengerInstance> = Api::namespaced(self.client.clone(), &namespace);
        let patch = json!({
            "apiVersion": MessengerInstance::api_version(&()),
            "kind": MessengerInstance::kind(&()),
            "status": status,
        });
        api.patch_status(
            &instance.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| ApplyError::Status {
            instance: instance.name_any(),
            source,
        })?;
        self.metrics.api_write("apply", "MessengerInstance/status");
        Ok(())
    }

    /// Sets the instance's finalizers.
    pub async fn set_finalizers(
        &self,
        instance: &MessengerInstance,
        finalizers: Vec<String>,
    ) -> Result<(), ApplyError> {
        let namespace = instance.namespace().unwrap_or_default();
        let api: Api<MessengerInstance> = Api::namespaced(self.client.clone(), &namespace);
        // The resourceVersion makes this fail instead of overwriting a
        // finalizer another controller added meanwhile.
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": instance.resource_version()}});
        api.patch(
            &instance.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|source| ApplyError::Finalizers {
            instance: instance.name_any(),
            source,
        })?;
        self.metrics.api_write("patch", "MessengerInstance");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_live_superset_matches() {
        let desired = json!({"spec": {"replicas": 1, "template": {"containers": [{"name": "a"}]}}});
        let live = json!({"spec": {"replicas": 1, "revisionHistoryLimit": 10,
            "template": {"containers": [{"name": "a", "imagePullPolicy": "IfNotPresent"}]}}});
        assert!(matches(&desired, &live));
    }

    #[test]
    fn a_changed_or_missing_field_differs() {
        let desired = json!({"spec": {"replicas": 1, "paused": true}});
        assert!(!matches(
            &desired,
            &json!({"spec": {"replicas": 2, "paused": true}})
        ));
        assert!(!matches(&desired, &json!({"spec": {"replicas": 1}})));
        // A zero value the server leaves out (Go's omitempty) is no drift.
        let zero = json!({"spec": {"replicas": 1, "paused": false}});
        assert!(matches(&zero, &json!({"spec": {"replicas": 1}})));
    }

    #[test]
    fn empty_values_match_absent_ones() {
        let desired =
            json!({"metadata": {"annotations": {}}, "spec": {"items": [], "readOnly": false}});
        assert!(matches(&desired, &json!({"metadata": {}, "spec": {}})));
    }

    #[test]
    fn the_difference_names_the_field() {
        let desired =
            json!({"spec": {"template": {"containers": [{"name": "a", "image": "x:2"}]}}});
        let live = json!({"spec": {"template": {"containers": [{"name": "a", "image": "x:1"}]}}});
        assert_eq!(
            difference(&desired, &live).as_deref(),
            Some("spec.template.containers[0].image")
        );
    }

    #[test]
    fn list_length_matters() {
        let desired = json!({"ports": [{"port": 1}]});
        assert!(!matches(
            &desired,
            &json!({"ports": [{"port": 1}, {"port": 2}]})
        ));
    }
}
