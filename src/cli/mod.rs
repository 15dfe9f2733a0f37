//! The command line: its arguments, the one async runtime and client
//! helper every command that reads the cluster uses, the commands' typed
//! error, and the dispatch. `gitops` is the one YAML editor (`promote` and
//! `restore`).

pub mod backups;
mod commands;
pub mod gitops;
pub mod promote;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use kube::{Api, Client};
use thiserror::Error;

use crate::api::MessengerInstance;
use crate::controller::RunError;
use crate::render::RenderError;

use self::backups::CliBackupsError;
use self::promote::PromoteError;

/// Why a command failed; each message names what to check or fix.
#[derive(Debug, Error)]
pub enum CliError {
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("connecting to the Kubernetes API{hint}: {source}")]
    Connect {
        hint: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("reading MessengerInstance {namespace}/{name}: {source}")]
    ReadInstance {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("patching {namespace}/{name}: {source}")]
    Patch {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}: {source}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Promote(#[from] PromoteError),
    #[error(transparent)]
    Backups(#[from] CliBackupsError),
    #[error(transparent)]
    Controller(RunError),
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Crd => {
            print!("{}", crate::api::crd_yaml());
            Ok(())
        }
        Command::Rbac { helm } => {
            if helm {
                print!("{}", crate::rbac::helm_rules_tpl());
            } else {
                print!("{}", crate::rbac::cluster_role_yaml());
            }
            Ok(())
        }
        Command::Render(args) => commands::render_command(&args),
        Command::Run(args) => commands::run_command(args),
        Command::Status(args) => commands::status_command(args),
        Command::Promote(args) => commands::promote_command(args),
        Command::Releases => {
            print!("{}", crate::plan::rollout::schema::table());
            Ok(())
        }
        Command::Backups(args) => backups::backups_command(args),
        Command::Restore(args) => backups::restore_command(args),
    }
}

/// Runs a command's async part on the one runtime.
fn block_on<F: Future>(future: F) -> Result<F::Output, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    Ok(runtime.block_on(future))
}

/// A client from the kubeconfig or the in-cluster service account; `hint`
/// (" (…)") says what to check or why the command needs the cluster.
async fn connect(hint: &'static str) -> Result<Client, CliError> {
    Client::try_default()
        .await
        .map_err(|source| CliError::Connect { hint, source })
}

/// The instance `name` in `namespace` (else the client's default
/// namespace), with its API and the namespace used.
async fn read_instance(
    client: &Client,
    name: &str,
    namespace: Option<&str>,
) -> Result<(Api<MessengerInstance>, String, MessengerInstance), CliError> {
    let namespace = namespace.map_or_else(|| client.default_namespace().to_owned(), str::to_owned);
    let api: Api<MessengerInstance> = Api::namespaced(client.clone(), &namespace);
    let instance = api
        .get(name)
        .await
        .map_err(|source| CliError::ReadInstance {
            namespace: namespace.clone(),
            name: name.to_owned(),
            source,
        })?;
    Ok((api, namespace, instance))
}

#[derive(Debug, Parser)]
#[command(
    name = "caduceus",
    version,
    about = "Runs Matrix messengers (Synapse and Element Web) on Kubernetes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator.
    Run(RunArgs),
    /// Print the MessengerInstance CustomResourceDefinition.
    Crd,
    /// Print the operator's ClusterRole and leader-election Role.
    Rbac {
        /// Print the rules as the Helm chart's named templates
        /// (`helm/caduceus/templates/_rules.tpl`) instead.
        #[arg(long)]
        helm: bool,
    },
    /// Print every object the operator would create for an instance, offline
    /// (secret values are placeholders).
    Render(RenderArgs),
    /// Print each stage's phase, release, target and what it waits for.
    Status(StatusArgs),
    /// A stage's backups: `caduceus backups list INSTANCE --stage S`.
    Backups(backups::BackupsArgs),
    /// Restore a stage from a snapshot: writes `stages[].restore` into the
    /// instance's YAML file (-f) or prints it.
    Restore(backups::RestoreArgs),
    /// Move a stage's release pin to what its `from` stage runs, if the gates
    /// allow: in the instance's YAML file (-f, GitOps) or on the cluster.
    Promote(PromoteArgs),
    /// Print the Synapse releases this operator knows, with their database
    /// schema versions.
    Releases,
}

#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The MessengerInstance's name.
    pub instance: String,
    /// The stage to promote, for example `production`.
    #[arg(long)]
    pub stage: String,
    /// The instance's YAML file in a git checkout: the pin is changed there
    /// (commit and push it; Argo CD syncs it). Without it, the cluster object
    /// is patched.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// The namespace (default: the file's, else the kubeconfig's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "CADUCEUS_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "CADUCEUS_HTTP_ADDRESS", default_value = "0.0.0.0:8080")]
    pub http_address: SocketAddr,
    /// Hold a Lease before reconciling (needed with more than one replica).
    #[arg(long, env = "CADUCEUS_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Namespace of the leader election Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "caduceus-system")]
    pub leader_election_namespace: String,
    /// Name of the leader election Lease.
    #[arg(long, default_value = "caduceus-operator")]
    pub lease_name: String,
    /// This replica's identity in Events and the Lease (default: the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Log format.
    #[arg(long, env = "CADUCEUS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The MessengerInstance YAML file.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Only this stage.
    #[arg(long)]
    pub stage: Option<String>,
    /// The namespace to render into, if the file names none (default: `default`).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Print only the stage's homeserver.yaml (needs --stage).
    #[arg(long, requires = "stage", conflicts_with = "homeserver_dir")]
    pub homeserver: bool,
    /// Write the stage's homeserver.yaml, log.yaml and secrets.yaml into this
    /// directory (needs --stage).
    #[arg(long, requires = "stage")]
    pub homeserver_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The MessengerInstance's name.
    pub instance: String,
    /// Its namespace (default: the kubeconfig's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}
