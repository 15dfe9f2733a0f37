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

/// The component label of backup Jobs (scheduled and one-off).
pub const BACKUP_COMPONENT: &str = "backup";
/// The component label of restore Jobs.
pub const RESTORE_COMPONENT: &str = "restore";
/// The component label of the smoke-test Job run after a rollout; the
/// NetworkPolicies let it reach Synapse's client port.
pub const SMOKE_TEST_COMPONENT: &str = "smoke-test";
/// The label CloudNativePG puts on every pod of a `Cluster`.
pub const CNPG_CLUSTER_LABEL: &str = "cnpg.io/cluster";

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
    /// The basic-auth Secret CloudNativePG creates the `synapse` role with.
    pub fn database_credentials(&self) -> String {
        self.with("db-credentials")
    }
    /// The backup CronJob (at most 52 characters, as CronJobs allow).
    pub fn backup(&self) -> String {
        self.with("backup")
    }
    /// A one-off backup Job, for example `…-backup-v1-163-2` before an
    /// upgrade to v1.163.2.
    pub fn backup_job(&self, suffix: &str) -> String {
        self.with(&format!("backup-{suffix}"))
    }
    /// The volume claim holding the stage's restic repository.
    pub fn backup_repository(&self) -> String {
        self.with("backup-repository")
    }
    /// The ConfigMap with the backup and restore scripts.
    pub fn backup_scripts(&self) -> String {
        self.with("backup-scripts")
    }
    /// The restore Job of one requested snapshot.
    pub fn restore_job(&self, suffix: &str) -> String {
        self.with(&format!("restore-{suffix}"))
    }
    /// The smoke-test Job of a release (`…-smoke-v1-163-2`).
    pub fn smoke_test_job(&self, suffix: &str) -> String {
        self.with(&format!("smoke-{suffix}"))
    }
    /// The ConfigMap with the smoke-test script.
    pub fn smoke_test_script(&self) -> String {
        self.with("smoke-test")
    }

    /// Element Web's Deployment, Service and ConfigMap (config.json and the
    /// `.well-known/matrix` documents).
    pub fn element_web(&self) -> String {
        self.with("element-web")
    }
    /// The stage's Ingress.
    pub fn ingress(&self) -> String {
        self.base()
    }
    /// The Ingress of the admin API, with its own source-range allow list.
    pub fn admin_ingress(&self) -> String {
        self.with("admin")
    }
    /// The Secret cert-manager fills when no TLS Secret is named.
    pub fn tls_secret(&self) -> String {
        self.with("tls")
    }
    /// A NetworkPolicy of the stage, by what it allows (`deny-all`, `dns`, …).
    pub fn network_policy(&self, purpose: &str) -> String {
        self.with(&format!("netpol-{purpose}"))
    }
    /// The PodDisruptionBudget of a component's pods.
    pub fn disruption_budget(&self, component: &str) -> String {
        self.with(component)
    }

    /// The labels every pod of this stage carries, whatever its component.
    pub fn stage_selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (INSTANCE_LABEL.to_owned(), self.instance.clone()),
            (STAGE_LABEL.to_owned(), self.stage.clone()),
        ])
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
        labels.insert(
            "app.kubernetes.io/part-of".to_owned(),
            "caduceus".to_owned(),
        );
        labels.insert("app.kubernetes.io/instance".to_owned(), self.base());
        labels
    }
}

/// A requested snapshot (`latest` or an id) as a name suffix: restic's
/// short ids are 8 characters; longer ones would not fit a name.
pub fn restore_suffix(snapshot: &str) -> String {
    snapshot.chars().take(8).collect()
}

/// The release as a name suffix: `v1.163.2` becomes `v1-163-2`.
pub fn release_suffix(release: &str) -> String {
    release
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
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
