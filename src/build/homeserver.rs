//! The homeserver configuration of a stage: `homeserver.yaml` (no secrets),
//! the log config, and `secrets.yaml` (the secret part). Synapse is started
//! with `-c homeserver.yaml -c secrets.yaml`.

use serde_json::{Value, json};
use thiserror::Error;

use crate::api::{MessengerInstanceSpec, Stage};

use super::database::DatabaseConnection;
use super::keys::StageSecrets;

/// The port of the client (and, when federation is on, federation) listener.
pub const CLIENT_PORT: i32 = 8008;
/// The port of the federation listener, when federation is on.
pub const FEDERATION_PORT: i32 = 8448;
/// The port of the metrics listener.
pub const METRICS_PORT: i32 = 9000;
/// Where the ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/config";
/// Where the secret part of the config is mounted.
pub const SECRET_CONFIG_DIR: &str = "/secrets/config";
/// Where the keys Secret's signing key is mounted.
pub const KEYS_DIR: &str = "/secrets/keys";
/// Where the media volume is mounted.
pub const MEDIA_DIR: &str = "/media";
/// A writable scratch directory (the root file system is read-only).
pub const TMP_DIR: &str = "/tmp";
/// File names inside the config directories.
pub const HOMESERVER_FILE: &str = "homeserver.yaml";
pub const LOG_CONFIG_FILE: &str = "log.yaml";
pub const SECRETS_FILE: &str = "secrets.yaml";

/// The rendered configuration files of a stage.
#[derive(Clone, PartialEq)]
pub struct HomeserverFiles {
    /// `homeserver.yaml`: everything but secrets.
    pub homeserver_yaml: String,
    /// The Python logging config Synapse reads.
    pub log_yaml: String,
    /// `secrets.yaml`: the secret part.
    pub secrets_yaml: String,
}

// The secret file never reaches a log line.
impl std::fmt::Debug for HomeserverFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HomeserverFiles")
            .field("homeserver_yaml", &self.homeserver_yaml)
            .field("log_yaml", &self.log_yaml)
            .finish_non_exhaustive()
    }
}

/// A homeserver configuration the operator refuses to generate. Each message
/// names the field and the fix.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HomeserverError {
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
}

/// Builds the configuration files of one stage.
pub fn homeserver_files(
    spec: &MessengerInstanceSpec,
    stage: &Stage,
    database: &DatabaseConnection,
    secrets: &StageSecrets,
) -> Result<HomeserverFiles, HomeserverError> {
    let config = json!({
        "server_name": stage.server_name.as_str(),
        "public_baseurl": format!("https://{}/", stage.server_name),
        "pid_file": format!("{TMP_DIR}/homeserver.pid"),
        "listeners": [{
            "port": CLIENT_PORT,
            "type": "http",
            "x_forwarded": true,
            "bind_addresses": ["0.0.0.0"],
            "resources": [{"names": ["client"], "compress": false}],
        }],
        "database": {
            "name": "psycopg2",
            "args": {
                "host": database.host,
                "port": database.port,
                "dbname": database.database,
                "user": database.user,
                "cp_min": 5,
                "cp_max": 10,
            },
        },
        "media_store_path": MEDIA_DIR,
        "signing_key_path": format!("{KEYS_DIR}/signing.key"),
        "log_config": format!("{CONFIG_DIR}/{LOG_CONFIG_FILE}"),
        "report_stats": false,
        "trusted_key_servers": [],
        "suppress_key_server_warning": true,
    });
    let _ = spec;
    let secret_part = json!({
        "registration_shared_secret": secrets.registration_shared_secret,
        "macaroon_secret_key": secrets.macaroon_secret_key,
        "form_secret": secrets.form_secret,
        "database": {
            "name": "psycopg2",
            "args": {
                "host": database.host,
                "port": database.port,
                "dbname": database.database,
                "user": database.user,
                "password": secrets.database_password,
                "cp_min": 5,
                "cp_max": 10,
            },
        },
    });
    Ok(HomeserverFiles {
        homeserver_yaml: to_yaml(&config),
        log_yaml: to_yaml(&log_config()),
        secrets_yaml: to_yaml(&secret_part),
    })
}

/// Synapse's logging config: structured lines on stdout.
fn log_config() -> Value {
    json!({
        "version": 1,
        "formatters": {"precise": {"format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "precise"}},
        "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
        "root": {"level": "INFO", "handlers": ["console"]},
        "disable_existing_loggers": false,
    })
}

/// YAML text of a JSON value.
pub fn to_yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).expect("JSON values always serialize to YAML")
}
