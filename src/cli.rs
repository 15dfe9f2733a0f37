//! The command line: `run`, `crd`, `rbac`, `render` and `status`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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
    Backups(crate::cli_backups::BackupsArgs),
    /// Restore a stage from a snapshot: writes `stages[].restore` into the
    /// instance's YAML file (-f) or prints it.
    Restore(crate::cli_backups::RestoreArgs),
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
