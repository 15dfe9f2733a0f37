//! Object names and labels derived from an instance and a stage. Every name
//! the operator writes comes from here, so a name never drifts between the
//! object that defines it and the objects that refer to it.

use std::collections::BTreeMap;

/// The label every object the operator writes carries; watches select on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of `MANAGED_BY_LABEL`, also the server-side apply field manager.
pub const MANAGER: &str = "caduceus";
/// The label naming the `MessengerInstance` an object belongs to.
pub const INSTANCE_LABEL: &str = "caduceus.dev/instance";
/// The label naming the stage an object belongs to.
pub const STAGE_LABEL: &str = "caduceus.dev/stage";
/// The label naming the component (synapse, database, element-web, …).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// The annotation holding a hash of the desired object, so a change in what
/// the operator wants is seen even where the live object still matches.
pub const DESIRED_HASH_ANNOTATION: &str = "caduceus.dev/desired-hash";
/// The pod template annotation holding a hash of the configuration files;
/// pods roll only when it changes.
pub const CONFIG_HASH_ANNOTATION: &str = "caduceus.dev/config-hash";

/// The names of one stage's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageNames {
    pub instance: String,
    pub stage: String,
}

impl StageNames {
    pub fn new(instance: &str, stage: &str) -> Self {
        Self {
            instance: instance.to_owned(),
            stage: stage.to_owned(),
        }
    }

    /// `INSTANCE-STAGE`, the prefix of every name of the stage.
    pub fn base(&self) -> String {
        format!("{}-{}", self.instance, self.stage)
    }

    fn with(&self, suffix: &str) -> String {
        format!("{}-{}", self.base(), suffix)
    }

    /// The Secret with the signing key and the generated secrets.
    pub fn keys_secret(&self) -> String {
        self.with("keys")
    }
    /// The ConfigMap with `homeserver.yaml` and the log config.
    pub fn homeserver_config(&self) -> String {
        self.with("homeserver")
    }
    /// The Secret with the secret part of the homeserver configuration.
    pub fn homeserver_secret(&self) -> String {
        self.with("homeserver-secrets")
    }
    /// The Synapse StatefulSet, its Service and its pods' prefix.
    pub fn synapse(&self) -> String {
        self.with("synapse")
    }
    /// The media volume claim.
    pub fn media(&self) -> String {
        self.with("media")
    }
    /// The database StatefulSet, Service or CloudNativePG Cluster.
    pub fn database(&self) -> String {
        self.with("db")
    }
    /// The database volume claim of the managed engine.
    pub fn database_data(&self) -> String {
        self.with("db-data")
    }

    /// The labels that select this stage's objects of one component.
    pub fn selector(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (INSTANCE_LABEL.to_owned(), self.instance.clone()),
            (STAGE_LABEL.to_owned(), self.stage.clone()),
            (COMPONENT_LABEL.to_owned(), component.to_owned()),
        ])
    }

    /// Every label of one of this stage's objects.
    pub fn labels(&self, component: &str) -> BTreeMap<String, String> {
        let mut labels = self.selector(component);
        labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGER.to_owned());
        labels.insert("app.kubernetes.io/part-of".to_owned(), "caduceus".to_owned());
        labels.insert("app.kubernetes.io/instance".to_owned(), self.base());
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_with_instance_and_stage() {
        let names = StageNames::new("umessenger", "beta");
        assert_eq!(names.keys_secret(), "umessenger-beta-keys");
        assert_eq!(names.synapse(), "umessenger-beta-synapse");
        assert_eq!(names.labels("synapse")[STAGE_LABEL], "beta");
    }
}
