//! How a stage reaches its database, for each engine.

use crate::api::{DatabaseEngine, MessengerInstanceSpec, SslMode};

use super::names::StageNames;

/// The port PostgreSQL listens on in the managed and CloudNativePG engines.
pub const POSTGRES_PORT: i32 = 5432;
/// The database and user Synapse uses in the engines the operator runs.
pub const SYNAPSE_DATABASE: &str = "synapse";

/// Where and as whom Synapse connects. The password is not here: it comes
/// from a Secret and goes only into Secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseConnection {
    pub host: String,
    pub port: i32,
    pub database: String,
    pub user: String,
    pub ssl_mode: Option<String>,
}

/// The connection of a stage's database.
pub fn connection(spec: &MessengerInstanceSpec, names: &StageNames) -> DatabaseConnection {
    match (&spec.database.engine, &spec.database.external) {
        (DatabaseEngine::External, Some(external)) => DatabaseConnection {
            host: external.host.clone(),
            port: external.port,
            database: external.database.clone(),
            user: external.user.clone(),
            ssl_mode: external.ssl_mode.map(ssl_mode_name),
        },
        // CloudNativePG's read-write service is `<cluster>-rw`.
        (DatabaseEngine::CloudnativePg, _) => DatabaseConnection {
            host: format!("{}-rw", names.database()),
            port: POSTGRES_PORT,
            database: SYNAPSE_DATABASE.into(),
            user: SYNAPSE_DATABASE.into(),
            ssl_mode: Some("require".into()),
        },
        _ => DatabaseConnection {
            host: names.database(),
            port: POSTGRES_PORT,
            database: SYNAPSE_DATABASE.into(),
            user: SYNAPSE_DATABASE.into(),
            ssl_mode: None,
        },
    }
}

fn ssl_mode_name(mode: SslMode) -> String {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
    .into()
}
