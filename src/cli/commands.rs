//! The commands that are no more than a few calls: run, render, status and
//! promote (backups and restore are in `backups`).

use tracing_subscriber::EnvFilter;

use super::promote::{promotion_target, set_release_pin};
use super::{
    CliError, LogFormat, PromoteArgs, RenderArgs, RunArgs, StatusArgs, block_on, connect,
    read_instance,
};
use crate::controller::{self, LeaderElection, Options};
use crate::render;

pub fn render_command(args: &RenderArgs) -> Result<(), CliError> {
    let instance = render::load_instance(&args.file)?;
    let instance = render::with_namespace(instance, args.namespace.as_deref());
    if let Some(stage) = args
        .stage
        .as_deref()
        .filter(|_| args.homeserver || args.homeserver_dir.is_some())
    {
        let files = render::render_homeserver(&instance, stage)?;
        match &args.homeserver_dir {
            Some(dir) => render::write_homeserver_files(&files, dir)?,
            None => print!("{}", files.homeserver_yaml),
        }
        return Ok(());
    }
    let objects = render::render_objects(&instance, args.stage.as_deref())?;
    print!("{}", render::to_yaml_stream(&objects));
    Ok(())
}

pub fn run_command(args: RunArgs) -> Result<(), CliError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn"));
    match args.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "caduceus".into());
    let options = Options {
        namespace: args.namespace.clone(),
        http_address: Some(args.http_address),
        leader_election: args.leader_election.then(|| LeaderElection {
            namespace: args.leader_election_namespace.clone(),
            lease_name: args.lease_name.clone(),
        }),
        identity,
    };
    block_on(async move {
        let client = connect(" (check KUBECONFIG or the in-cluster service account)").await?;
        controller::run(client, options, shutdown_signal())
            .await
            .map_err(CliError::Controller)
    })?
}

/// Completes on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

pub fn status_command(args: StatusArgs) -> Result<(), CliError> {
    let (_, _, instance) = block_on(async move {
        let client = connect("").await?;
        read_instance(&client, &args.instance, args.namespace.as_deref()).await
    })??;
    print!("{}", crate::status::describe(&instance));
    Ok(())
}

pub fn promote_command(args: PromoteArgs) -> Result<(), CliError> {
    use kube::api::{Patch, PatchParams};
    let file_instance = match &args.file {
        Some(path) => Some(render::load_instance(path)?),
        None => None,
    };
    block_on(async move {
        let client = connect(" (promotion reads the stages' status)").await?;
        let namespace = args.namespace.clone().or_else(|| {
            file_instance
                .as_ref()
                .and_then(|i| i.metadata.namespace.clone())
        });
        let (api, namespace, live) =
            read_instance(&client, &args.instance, namespace.as_deref()).await?;
        let target = promotion_target(&live, &args.stage, jiff::Timestamp::now())?;
        match &args.file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| CliError::ReadFile {
                    path: path.clone(),
                    source,
                })?;
                let edited =
                    set_release_pin(&text, &args.stage, &target, &path.display().to_string())?;
                std::fs::write(path, edited).map_err(|source| CliError::WriteFile {
                    path: path.clone(),
                    source,
                })?;
                println!(
                    "{}: stage {} now pins {} / Element Web {}. Commit and push it; the operator rolls it out in the stage's next window.",
                    path.display(),
                    args.stage,
                    target.synapse,
                    target.element_web
                );
            }
            None => {
                let patch = serde_json::json!({
                    "apiVersion": "caduceus.dev/v1alpha1",
                    "kind": "MessengerInstance",
                    "spec": {"stages": [{"name": args.stage, "release": target}]},
                });
                api.patch(
                    &args.instance,
                    &PatchParams::apply("caduceus-promote"),
                    &Patch::Apply(&patch),
                )
                .await
                .map_err(|source| CliError::Patch {
                    namespace: namespace.clone(),
                    name: args.instance.clone(),
                    source,
                })?;
                println!(
                    "{namespace}/{}: stage {} now pins {}",
                    args.instance, args.stage, target.synapse
                );
            }
        }
        Ok(())
    })?
}
