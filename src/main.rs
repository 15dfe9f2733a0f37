use std::process::ExitCode;

use caduceus::cli::{Cli, Command, LogFormat, PromoteArgs, RenderArgs, RunArgs, StatusArgs};
use caduceus::controller::{self, LeaderElection, Options};
use caduceus::{api, rbac, render};
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => {
            print!("{}", api::crd_yaml());
            Ok(())
        }
        Command::Rbac { helm } => {
            if helm {
                print!("{}", rbac::helm_rules_tpl());
            } else {
                print!("{}", rbac::cluster_role_yaml());
            }
            Ok(())
        }
        Command::Render(args) => render_command(&args),
        Command::Run(args) => run_command(args),
        Command::Status(args) => status_command(args),
        Command::Promote(args) => promote_command(args),
        Command::Releases => {
            print!("{}", caduceus::plan::rollout::schema::table());
            Ok(())
        }
        Command::Backups(args) => caduceus::cli_backups::backups_command(args),
        Command::Restore(args) => caduceus::cli_backups::restore_command(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn render_command(args: &RenderArgs) -> Result<(), String> {
    let instance = render::load_instance(&args.file).map_err(|e| e.to_string())?;
    let instance = render::with_namespace(instance, args.namespace.as_deref());
    if let Some(stage) = args
        .stage
        .as_deref()
        .filter(|_| args.homeserver || args.homeserver_dir.is_some())
    {
        let files = render::render_homeserver(&instance, stage).map_err(|e| e.to_string())?;
        match &args.homeserver_dir {
            Some(dir) => render::write_homeserver_files(&files, dir).map_err(|e| e.to_string())?,
            None => print!("{}", files.homeserver_yaml),
        }
        return Ok(());
    }
    let objects =
        render::render_objects(&instance, args.stage.as_deref()).map_err(|e| e.to_string())?;
    print!("{}", render::to_yaml_stream(&objects));
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))
}

fn run_command(args: RunArgs) -> Result<(), String> {
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
    runtime()?.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("connecting to the Kubernetes API (check KUBECONFIG or the in-cluster service account): {e}"))?;
        controller::run(client, options, shutdown_signal()).await.map_err(|e| e.to_string())
    })
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

fn status_command(args: StatusArgs) -> Result<(), String> {
    runtime()?.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("connecting to the Kubernetes API: {e}"))?;
        let namespace = args
            .namespace
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let api: kube::Api<api::MessengerInstance> = kube::Api::namespaced(client, &namespace);
        let instance = api.get(&args.instance).await.map_err(|e| {
            format!(
                "reading MessengerInstance {namespace}/{}: {e}",
                args.instance
            )
        })?;
        print!("{}", caduceus::status::describe(&instance));
        Ok(())
    })
}

fn promote_command(args: PromoteArgs) -> Result<(), String> {
    use kube::api::{Patch, PatchParams};
    runtime()?.block_on(async move {
        let file_instance = match &args.file {
            Some(path) => Some(render::load_instance(path).map_err(|e| e.to_string())?),
            None => None,
        };
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("connecting to the Kubernetes API (promotion reads the stages' status): {e}"))?;
        let namespace = args
            .namespace
            .clone()
            .or_else(|| file_instance.as_ref().and_then(|i| i.metadata.namespace.clone()))
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let api: kube::Api<api::MessengerInstance> = kube::Api::namespaced(client, &namespace);
        let live = api
            .get(&args.instance)
            .await
            .map_err(|e| format!("reading MessengerInstance {namespace}/{}: {e}", args.instance))?;
        let target = caduceus::promote::promotion_target(&live, &args.stage, jiff::Timestamp::now())
            .map_err(|e| e.to_string())?;
        match &args.file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
                let edited = caduceus::promote::set_release_pin(&text, &args.stage, &target, &path.display().to_string())
                    .map_err(|e| e.to_string())?;
                std::fs::write(path, edited).map_err(|e| format!("writing {}: {e}", path.display()))?;
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
                    "spec": {"stages": [{"name": args.stage, "release": {
                        "synapse": target.synapse, "elementWeb": target.element_web}}]},
                });
                api.patch(&args.instance, &PatchParams::apply("caduceus-promote"), &Patch::Apply(&patch))
                    .await
                    .map_err(|e| format!("patching {namespace}/{}: {e}", args.instance))?;
                println!("{namespace}/{}: stage {} now pins {}", args.instance, args.stage, target.synapse);
            }
        }
        Ok(())
    })
}
