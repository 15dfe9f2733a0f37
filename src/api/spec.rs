//! The `MessengerInstance` spec: what the platform team declares in git.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::status::MessengerInstanceStatus;
use super::values::{Duration, Hostname, StorageSize, Version};

/// The most stages one instance may declare; bounds the cost of CEL rules.
pub const MAX_STAGES: usize = 8;
/// The most locations one instance may declare.
pub const MAX_LOCATIONS: usize = 16;
/// Stage names are short so that derived object names (`INSTANCE-STAGE-…`)
/// stay within Kubernetes' limits.
pub const MAX_STAGE_NAME: usize = 20;
/// The longest instance name plus stage name (the CRD's rule).
pub const MAX_INSTANCE_AND_STAGE_NAME: usize = 42;

/// A Matrix messenger (Synapse homeserver and Element Web client) run in one
/// or more stages, such as beta and production, each upgraded in turn.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "caduceus.dev",
    version = "v1alpha1",
    kind = "MessengerInstance",
    namespaced,
    status = "MessengerInstanceStatus",
    shortname = "mi",
    category = "caduceus",
    printcolumn(name = "Stages", type_ = "string", json_path = ".status.summary", description = "Each stage with its phase and Synapse release"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether every stage is running its desired release"),
    printcolumn(name = "Release", type_ = "string", json_path = ".spec.release.synapse", description = "The Synapse release the train carries"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 30").message("metadata.name must be at most 30 characters so that the names of the objects made for each stage stay within Kubernetes' limits"),
    validation = Rule::new("!has(self.spec.stages) || self.spec.stages.all(s, self.metadata.name.size() + s.name.size() <= 42)").message("metadata.name and a stage name together must be at most 42 characters, so that the names of the objects made for each stage stay within the limits of Kubernetes; shorten the instance or the stage name"),
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.stages.all(s, self.stages.exists_one(t, t.name == s.name))",
        "message": "stage names must be unique within an instance",
        "fieldPath": ".stages",
    },
    {
        "rule": "self.stages.all(s, self.stages.exists_one(t, t.serverName == s.serverName))",
        "message": "stages[].serverName must differ between stages: each stage is its own homeserver, and two stages with one server name would claim the same users and rooms; give each stage its own server name, for example beta.messenger.example.org",
        "fieldPath": ".stages",
    },
    {
        "rule": "self.stages.all(s, !has(s.promotion) || self.stages.exists(t, t.name == s.promotion.from))",
        "message": "stages[].promotion.from must name another stage of spec.stages",
        "fieldPath": ".stages",
    },
    {
        "rule": "self.stages.all(i, s, !has(s.promotion) || self.stages.exists(j, t, j < i && t.name == s.promotion.from))",
        "message": "stages[].promotion.from must name a stage listed earlier in spec.stages (for example production promotes from beta, so beta comes first)",
        "fieldPath": ".stages",
    },
    {
        "rule": "self.stages.all(s, !has(s.location) || (has(self.locations) && self.locations.exists(l, l.name == s.location)))",
        "message": "stages[].location must name an entry of spec.locations; add the location or fix the name",
        "fieldPath": ".stages",
    },
    {
        "rule": "self.stages.all(s, !has(s.placement) || ((!has(s.placement.synapse) || (has(self.locations) && self.locations.exists(l, l.name == s.placement.synapse))) && (!has(s.placement.database) || (has(self.locations) && self.locations.exists(l, l.name == s.placement.database))) && (!has(s.placement.elementWeb) || (has(self.locations) && self.locations.exists(l, l.name == s.placement.elementWeb))) && (!has(s.placement.backups) || (has(self.locations) && self.locations.exists(l, l.name == s.placement.backups)))))",
        "message": "stages[].placement must name entries of spec.locations; add the location or fix the name",
        "fieldPath": ".stages",
    },
    {
        "rule": "!has(self.locations) || self.locations.all(l, self.locations.exists_one(m, m.name == l.name))",
        "message": "location names must be unique within an instance",
        "fieldPath": ".locations",
    },
    {
        "rule": "!has(self.database) || !has(self.database.engine) || self.database.engine != 'external' || self.stages.size() == 1",
        "message": "database.engine external serves one stage only: spec.database.external names one database, and two stages on one database would overwrite each other's data; use one instance per stage for external databases, or engine managed or cloudnative-pg",
        "fieldPath": ".database.engine",
    },
    {
        "rule": "has(self.backups) || self.stages.all(s, !has(s.restore))",
        "message": "stages[].restore needs spec.backups: a stage is restored from its backup repository",
        "fieldPath": ".stages",
    },
]))]
pub struct MessengerInstanceSpec {
    /// The release train: the Synapse and Element Web releases every stage
    /// runs unless it pins its own. Bump it in git each quarter.
    pub release: Release,

    /// Image registry and repository overrides, for example an on-premises
    /// mirror for an air-gapped satellite site.
    #[serde(default, skip_serializing_if = "is_default")]
    pub images: Images,

    /// Homeserver configuration shared by all stages.
    #[serde(default)]
    pub homeserver: Homeserver,

    /// The PostgreSQL database of each stage.
    #[serde(default)]
    pub database: Database,

    /// The media store of each stage (uploaded files, avatars, thumbnails).
    #[serde(default)]
    pub media: Media,

    /// Scheduled backups of each stage's database, media and keys into a
    /// restic repository. Without this section no backups are taken and
    /// rollouts take no pre-upgrade backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backups: Option<Backups>,

    /// What happens to data when the instance is deleted. `Retain` (the
    /// default) keeps the database and media volume claims, the keys Secrets
    /// and the backup repository; `Delete` removes them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Stops every rollout of every stage. Running workloads stay as they are.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,

    /// Places stages can run: a cloud region or an on-premises satellite site.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub locations: Vec<Location>,

    /// The stages, in promotion order: each stage may promote from one listed
    /// before it.
    #[schemars(length(min = 1, max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub stages: Vec<Stage>,

    /// The clients served with each stage.
    #[serde(default)]
    pub clients: Clients,

    /// How each stage is reached: ingress, TLS and the networks allowed in.
    #[serde(default)]
    pub access: Access,
}

pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A free-form object, kept as written.
fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A release: the Synapse and Element Web versions that run together.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// The Synapse release, for example v1.163.2.
    pub synapse: Version,
    /// The Element Web release, for example v1.12.3.
    pub element_web: Version,
    /// Run a Synapse release the operator's schema table does not list
    /// (`caduceus releases`). Without the table the operator cannot check
    /// that a rollback keeps Synapse on a database schema it can read, so an
    /// unlisted release is refused unless this is true; with it, the stage
    /// proceeds and the instance reports `Degraded`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub acknowledge_unlisted: bool,
}

/// A stage's own release pin; fields left out follow `spec.release`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleasePin {
    /// The Synapse release this stage is pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synapse: Option<Version>,
    /// The Element Web release this stage is pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_web: Option<Version>,
    /// Run a pinned Synapse release the operator's schema table does not
    /// list; see `spec.release.acknowledgeUnlisted`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub acknowledge_unlisted: bool,
}

/// Where images come from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Images {
    /// A registry host (and optional path) that replaces the registry of every
    /// default image, for example `registry.mainz.hospital.internal/mirror`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The Synapse image repository, without a tag; the tag is the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synapse: Option<String>,
    /// The Element Web image repository, without a tag; the tag is the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_web: Option<String>,
    /// The PostgreSQL image (repository and tag) of the managed database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
    /// The image (repository and tag) that runs backups and restores; it needs
    /// restic and the PostgreSQL client tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Image pull policy for every container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Names of Secrets used to pull images from a private registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<String>,
}

/// When the kubelet pulls an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// Homeserver configuration. Typed fields cover what hospitals commonly
/// change; `settings` carries any other `homeserver.yaml` key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Homeserver {
    /// The data-protection profile whose defaults apply before every other
    /// field: `hospital-baseline` (the default) or `none`.
    #[serde(default)]
    pub profile: Profile,
    /// End-to-end encryption of rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// How long messages are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// How long a login stays valid before the user must sign in again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_lifetime: Option<Duration>,
    /// Who may create accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<Registration>,
    /// Whether and with whom the homeserver federates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<Federation>,
    /// Any other homeserver.yaml key, deep-merged over the generated
    /// configuration. Keys the operator owns (server name, database,
    /// listeners, paths, secrets) are refused here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub settings: Option<Value>,
}

/// A data-protection profile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Encryption on for every room, retention on, nothing phones home, no
    /// URL previews, no guests, closed registration, a limited user directory.
    #[default]
    HospitalBaseline,
    /// Synapse's own defaults; everything is up to the typed fields and
    /// `settings`.
    None,
}

/// End-to-end encryption settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    /// Turn on end-to-end encryption for every new room, public or private.
    pub enforce: bool,
}

/// The message retention policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Whether retention is enforced at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How long messages are kept in rooms without their own policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_lifetime: Option<Duration>,
    /// The shortest lifetime a room's own policy may set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_min_lifetime: Option<Duration>,
    /// The longest lifetime a room's own policy may set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_max_lifetime: Option<Duration>,
    /// How often expired messages are purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_interval: Option<Duration>,
}

/// Who may create accounts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// `closed`: only administrators create accounts, through the shared
    /// secret. `token`: registration needs a token issued by an admin. `sso`:
    /// accounts come from the OIDC providers below.
    #[serde(default)]
    pub mode: RegistrationMode,
    /// OIDC providers for `sso`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub oidc_providers: Vec<OidcProvider>,
}

/// A registration mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RegistrationMode {
    #[default]
    Closed,
    Token,
    Sso,
}

/// An OpenID Connect provider. Its client secret is read from a Secret, never
/// written inline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcProvider {
    /// A short identifier, for example `keycloak`.
    pub id: String,
    /// The name shown on the login button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The issuer URL; `https://` only, as OpenID Connect requires.
    #[schemars(length(max = 2048))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.startsWith('https://') && self.size() > 8",
        "message": "issuer must be an https:// URL, for example https://sso.example.org/realms/hospital (OpenID Connect discovery and tokens travel only over TLS)",
    }]))]
    pub issuer: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The Secret key holding the OAuth client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeyRef>,
    /// Scopes to request; `openid` is always included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The claim that becomes the Matrix localpart (default
    /// `preferred_username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localpart_claim: Option<String>,
    /// Any other key of Synapse's `oidc_providers` entry (for example
    /// `allow_existing_users` or `user_mapping_provider`), deep-merged over
    /// the generated entry. The client secret and the typed fields above are
    /// refused here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub settings: Option<Value>,
}

/// A reference to one key of a Secret in the instance's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(schema_with = "super::values::object_name_schema")]
    pub name: String,
    /// The key inside the Secret.
    #[schemars(schema_with = "super::values::secret_key_schema")]
    pub key: String,
}

/// A reference to a Secret in the instance's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// The Secret's name.
    #[schemars(schema_with = "super::values::object_name_schema")]
    pub name: String,
}

/// Federation with other homeservers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Federation {
    /// `closed`: no federation at all. `allowlist`: only with the domains
    /// listed. `open`: with any homeserver.
    #[serde(default)]
    pub mode: FederationMode,
    /// The server names federation is allowed with, for `allowlist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub allowlist: Vec<Hostname>,
}

/// A federation mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FederationMode {
    #[default]
    Closed,
    Allowlist,
    Open,
}

/// The PostgreSQL database of each stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Database {
    /// `managed`: a PostgreSQL StatefulSet per stage run by the operator.
    /// `cloudnative-pg`: a CloudNativePG Cluster per stage. `external`: a
    /// database run elsewhere. Changing the engine of a running stage needs a
    /// migration and is refused.
    #[serde(default)]
    pub engine: DatabaseEngine,
    /// The size of each stage's database volume (managed and cloudnative-pg).
    #[serde(default = "default_database_storage")]
    pub storage: StorageSize,
    /// The storage class of the database volume; the cluster default if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Number of PostgreSQL instances for `cloudnative-pg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 9))]
    pub instances: Option<i32>,
    /// Connection details for `external`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabase>,
}

impl Default for Database {
    fn default() -> Self {
        Self {
            engine: DatabaseEngine::default(),
            storage: default_database_storage(),
            storage_class_name: None,
            instances: None,
            external: None,
        }
    }
}

fn default_database_storage() -> StorageSize {
    StorageSize("20Gi".into())
}

/// A database engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseEngine {
    #[default]
    Managed,
    CloudnativePg,
    External,
}

/// A database the operator does not run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDatabase {
    /// Host name of the PostgreSQL server.
    pub host: String,
    /// Port of the PostgreSQL server.
    #[serde(default = "default_postgres_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Database name; each stage needs its own database.
    pub database: String,
    /// Database user.
    pub user: String,
    /// The Secret key holding the user's password.
    pub password_secret_ref: SecretKeyRef,
    /// libpq `sslmode`, for example `verify-full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_mode: Option<SslMode>,
}

fn default_postgres_port() -> i32 {
    5432
}

/// libpq `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The media store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Media {
    /// The size of each stage's media volume.
    #[serde(default = "default_media_storage")]
    pub storage: StorageSize,
    /// The storage class of the media volume; the cluster default if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for Media {
    fn default() -> Self {
        Self {
            storage: default_media_storage(),
            storage_class_name: None,
        }
    }
}

fn default_media_storage() -> StorageSize {
    StorageSize("50Gi".into())
}

/// Scheduled backups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backups {
    /// A cron schedule (five fields, in the operator's time zone, UTC).
    pub schedule: String,
    /// How many snapshots to keep.
    #[serde(default)]
    pub keep: Keep,
    /// Where the restic repository lives.
    pub repository: Repository,
    /// The Secret holding the repository password under the key `password`.
    pub password_secret_ref: SecretRef,
}

/// Snapshot retention, as `restic forget --keep-*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Keep {
    /// Daily snapshots to keep.
    #[schemars(range(min = 0))]
    pub daily: u32,
    /// Weekly snapshots to keep.
    #[schemars(range(min = 0))]
    pub weekly: u32,
    /// Monthly snapshots to keep.
    #[schemars(range(min = 0))]
    pub monthly: u32,
}

impl Default for Keep {
    fn default() -> Self {
        Self {
            daily: 7,
            weekly: 4,
            monthly: 12,
        }
    }
}

/// A restic repository: a volume claim or S3-compatible storage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.pvc) != has(self.s3)",
    "message": "set exactly one of backups.repository.pvc and backups.repository.s3",
}]))]
pub struct Repository {
    /// A volume claim per stage holding the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcRepository>,
    /// An S3-compatible bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Repository>,
}

/// A repository on a volume claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcRepository {
    /// The size of the volume.
    pub size: StorageSize,
    /// The storage class; the cluster default if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// A repository in an S3-compatible bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Repository {
    /// The endpoint URL, for example https://s3.eu-de.example.net.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// A path prefix inside the bucket; each stage adds its own name below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The Secret holding `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    pub credentials_secret_ref: SecretRef,
}

/// What deleting the instance does to its data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep volume claims, keys Secrets and backups.
    #[default]
    Retain,
    /// Delete them with the instance.
    Delete,
}

/// A place stages can run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// The location's name, referenced by stages.
    #[schemars(length(max = 63))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
        "message": "a location name must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit",
    }]))]
    pub name: String,
    /// Node labels a pod must match to run here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints of this location's nodes that its pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Further affinity rules for pods placed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// The node label whose values are this location's zones; replicas spread
    /// across them. Default `topology.kubernetes.io/zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_key: Option<String>,
}

/// A stage: one homeserver with its own name, database, data and release.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.promotion) || self.promotion.from != self.name",
    "message": "promotion.from names the stage itself; name the earlier stage it takes releases from, for example beta",
    "messageExpression": "'stage ' + self.name + ': promotion.from names the stage itself; name the earlier stage it takes releases from, for example beta'",
}]))]
pub struct Stage {
    /// The stage's name, for example `beta` or `production`.
    #[schemars(length(min = 1, max = 20))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
        "message": "a stage name must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 20 characters",
    }]))]
    pub name: String,
    /// The homeserver's name, the part after the colon in every user ID.
    /// It cannot change once set: every account, room and message carries it.
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": super::values::HOSTNAME_RULE,
        "message": super::values::HOSTNAME_MESSAGE,
    }, {
        "rule": "self == oldSelf",
        "message": "serverName cannot change: it is part of every user ID, room and signature of this stage; create a new stage for a new name",
    }]))]
    pub server_name: Hostname,
    /// The location this stage runs in; anywhere if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub location: Option<String>,
    /// Places single components of this stage in other locations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// This stage's release pin; `spec.release` if unset. Promotion moves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleasePin>,
    /// The rules under which this stage takes a new release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<Promotion>,
    /// Stops rollouts of this stage. Running workloads stay as they are.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// Homeserver settings that differ on this stage, applied over
    /// `spec.homeserver`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homeserver: Option<StageHomeserver>,
    /// Brings this stage up from a snapshot of its own backup repository.
    /// Only a stage that has never been ready and whose database is empty is
    /// restored; a restore never writes over live data. Progress shows in
    /// `status.stages[].restore`; the field may stay after the restore
    /// succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<StageRestore>,
}

/// A declarative restore of one stage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageRestore {
    /// `latest` or a snapshot id as `caduceus backups list` shows it.
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == 'latest' || self.matches('^[0-9a-f]{8,64}$')",
        "message": "restore.snapshot must be 'latest' or a snapshot id (8 to 64 lowercase hexadecimal characters, as 'caduceus backups list' shows)",
    }]))]
    pub snapshot: String,
}

/// Per-component placement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// The location of Synapse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub synapse: Option<String>,
    /// The location of the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub database: Option<String>,
    /// The location of Element Web.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub element_web: Option<String>,
    /// The location of backup and restore Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub backups: Option<String>,
}

/// Homeserver settings that differ on one stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageHomeserver {
    /// Replaces `spec.homeserver.retention` fields on this stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Replaces `spec.homeserver.sessionLifetime` on this stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_lifetime: Option<Duration>,
    /// Deep-merged over `spec.homeserver.settings` on this stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub settings: Option<Value>,
}

/// When a stage takes a new release.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    /// The stage that must have run a release first.
    #[schemars(length(max = 20))]
    pub from: String,
    /// How long `from` must have run the release in phase Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<Duration>,
    /// Maintenance windows; a rollout starts only inside one. Any time if
    /// empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub windows: Vec<Window>,
}

/// A recurring maintenance window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// Days of the week the window opens on; every day if empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 7))]
    pub days: Vec<Weekday>,
    /// Months the window opens in (1-12), for a quarterly cadence; every
    /// month if empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 12))]
    #[schemars(inner(range(min = 1, max = 12)))]
    pub months: Vec<u8>,
    /// Local start time, `HH:MM`.
    #[schemars(length(max = 5))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')",
        "message": "start must be a 24-hour local time HH:MM, for example 02:00",
    }]))]
    pub start: String,
    /// How long the window stays open.
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": super::values::DURATION_RULE,
        "message": super::values::DURATION_MESSAGE,
    }, {
        "rule": "!self.matches('^0+(ms|s|m|h|d|w|y)$')",
        "message": "a window's duration must be longer than zero, or the window never opens; for example 3h",
    }]))]
    pub duration: Duration,
    /// The IANA time zone of `start`, for example Europe/Berlin.
    #[serde(default = "default_time_zone")]
    #[schemars(length(max = 64))]
    pub time_zone: String,
}

fn default_time_zone() -> String {
    "UTC".into()
}

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// The clients served with each stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Clients {
    /// The Element Web client.
    #[serde(default)]
    pub element_web: ElementWeb,
}

/// Element Web.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ElementWeb {
    /// Whether Element Web is served.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The product name shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// The default theme, `light` or `dark`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self in ['light', 'dark']",
        "message": "clients.elementWeb.defaultTheme must be light or dark (Element Web's built-in themes)",
    }]))]
    pub default_theme: Option<String>,
    /// Feature switches (`feature_*` keys of config.json) by name; the
    /// `feature_` prefix may be left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub features: BTreeMap<String, bool>,
    /// Defaults of user settings (config.json `setting_defaults`), for
    /// example `{"UIFeature.voip": false}`; merged over the operator's
    /// data-protection defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub setting_defaults: Option<Value>,
    /// Hide guest access in the client (default true; the homeserver refuses
    /// guests anyway under the hospital-baseline profile).
    #[serde(default = "default_true")]
    pub disable_guests: bool,
    /// Keep users on this stage's homeserver: no field to enter another
    /// server (default true).
    #[serde(default = "default_true")]
    pub disable_custom_urls: bool,
    /// Show the Labs tab with experimental features to every user (default
    /// false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub show_labs_settings: bool,
    /// Free-form config.json keys, deep-merged last: they win over every
    /// field above; `null` removes a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub config: Option<Value>,
}

impl Default for ElementWeb {
    fn default() -> Self {
        Self {
            enabled: true,
            brand: None,
            default_theme: None,
            features: BTreeMap::new(),
            setting_defaults: None,
            disable_guests: true,
            disable_custom_urls: true,
            show_labs_settings: false,
            config: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// How stages are reached.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    /// The Ingress of each stage; no Ingress if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressAccess>,
    /// Only these networks (CIDR) reach the stage. Everyone if empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_source_ranges: Vec<String>,
    /// Only these networks (CIDR) reach the admin API. Nobody from outside
    /// the cluster if empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_source_ranges: Vec<String>,
    /// The namespaces of the ingress controller (or gateway) that forwards
    /// traffic to the stage, for example
    /// `{matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}`. The
    /// NetworkPolicies let in Synapse's client port and Element Web from
    /// pods in these namespaces (and from `allowedSourceRanges`). Every
    /// namespace if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_namespace_selector: Option<LabelSelector>,
    /// The namespaces whose pods may scrape Synapse's metrics port (the
    /// monitoring stack's). Default: namespaces labelled
    /// `caduceus.dev/monitoring: "true"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_namespace_selector: Option<LabelSelector>,
}

/// An Ingress per stage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressAccess {
    /// The IngressClass, for example `nginx`; the cluster's default class
    /// if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::values::optional_object_name_schema")]
    pub class_name: Option<String>,
    /// The Secret holding the TLS certificate for the stage's host names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::values::optional_object_name_schema")]
    pub tls_secret_name: Option<String>,
    /// A cert-manager ClusterIssuer that issues the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::values::optional_object_name_schema")]
    pub cert_manager_cluster_issuer: Option<String>,
    /// Extra annotations on every Ingress.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}
