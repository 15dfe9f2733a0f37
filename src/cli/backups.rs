//! `caduceus backups list` and `caduceus restore`: what a stage's backups
//! are, and the declarative restore written into the instance's YAML file
//! (GitOps: the change goes through git; the operator never writes spec).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use thiserror::Error;

use super::gitops::{Insert, StageKeyEdit, set_stage_key};
use super::{CliError, block_on, connect, read_instance};
use crate::api::{MessengerInstance, StageStatus};
use crate::desired::backup::restic_host;
use crate::names::StageNames;

/// `caduceus backups …`
#[derive(Debug, clap::Args)]
pub struct BackupsArgs {
    #[command(subcommand)]
    pub command: BackupsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum BackupsCommand {
    /// List a stage's backups: its last backups from the instance's status,
    /// or every snapshot when given the repository.
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The MessengerInstance's name.
    pub instance: String,
    /// The stage.
    #[arg(long)]
    pub stage: String,
    /// Its namespace (default: the kubeconfig's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// A restic repository to list with restic (a local path, or `s3:…`
    /// with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set), instead of the
    /// status.
    #[arg(long)]
    pub repository: Option<String>,
    /// The file holding the repository password (default: RESTIC_PASSWORD
    /// or RESTIC_PASSWORD_FILE from the environment).
    #[arg(long, requires = "repository")]
    pub password_file: Option<PathBuf>,
}

/// `caduceus restore …`
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The MessengerInstance's name.
    pub instance: String,
    /// The stage to restore; it must never have been ready (a restore never
    /// writes over live data).
    #[arg(long)]
    pub stage: String,
    /// `latest` or a snapshot id from `caduceus backups list`.
    #[arg(long, default_value = "latest")]
    pub snapshot: String,
    /// The instance's YAML file to write the restore into (for git); without
    /// it the change is printed.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
}

/// Why a backups or restore command failed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CliBackupsError {
    #[error(
        "--snapshot '{0}' is neither 'latest' nor a snapshot id (8 to 64 hexadecimal characters, as `caduceus backups list` shows)"
    )]
    BadSnapshot(String),
    #[error("{file}: no stage named '{stage}' under spec.stages")]
    NoSuchStage { file: String, stage: String },
    #[error("{file}: metadata.name is '{found}', not '{instance}'")]
    OtherInstance {
        file: String,
        found: String,
        instance: String,
    },
    #[error(
        "{file} has no spec.backups: a stage is restored from its backup repository; add spec.backups first"
    )]
    NoBackups { file: String },
    #[error(
        "{file}: could not add the restore safely to this layout ({why}); add it by hand under stage {stage}:\n{snippet}"
    )]
    CannotEdit {
        file: String,
        stage: String,
        why: String,
        snippet: String,
    },
    #[error("{0}")]
    Io(String),
}

/// Whether a snapshot argument is `latest` or a restic id.
pub fn check_snapshot(snapshot: &str) -> Result<(), CliBackupsError> {
    let is_id = (8..=64).contains(&snapshot.len())
        && snapshot
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if snapshot == "latest" || is_id {
        Ok(())
    } else {
        Err(CliBackupsError::BadSnapshot(snapshot.to_owned()))
    }
}

/// The YAML of a stage's restore, indented for a stage entry.
pub fn restore_snippet(snapshot: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    // Quoted: an all-digit id would otherwise be read as a number.
    format!("{pad}restore:\n{pad}  snapshot: \"{snapshot}\"\n")
}

/// Writes `stages[name=stage].restore.snapshot` into an instance's YAML
/// text, keeping every other line (and comment) as it is, and checks the
/// result: parsed, it must be the original with exactly that change.
pub fn set_stage_restore(
    text: &str,
    file: &str,
    stage: &str,
    snapshot: &str,
) -> Result<String, CliBackupsError> {
    check_snapshot(snapshot)?;
    let original: Value =
        serde_saphyr::from_str(text).map_err(|e| CliBackupsError::Io(format!("{file}: {e}")))?;
    if original["spec"]["backups"].is_null() {
        return Err(CliBackupsError::NoBackups { file: file.into() });
    }
    let stages = original["spec"]["stages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !stages.iter().any(|s| s["name"] == stage) {
        return Err(CliBackupsError::NoSuchStage {
            file: file.into(),
            stage: stage.into(),
        });
    };
    let block = format!("restore:\n  snapshot: \"{snapshot}\"\n");
    let edit = StageKeyEdit {
        stage,
        key: "restore",
        value: serde_json::json!({"snapshot": snapshot}),
        block: &block,
        insert: Insert::AtEnd,
    };
    set_stage_key(text, &edit).map_err(|error| CliBackupsError::CannotEdit {
        file: file.into(),
        stage: stage.into(),
        why: error.to_string(),
        snippet: restore_snippet(snapshot, 6),
    })
}

/// The lines `backups list` prints from an instance's status.
pub fn describe_stage_backups(instance: &MessengerInstance, stage: &str) -> Result<String, String> {
    let name = instance.metadata.name.clone().unwrap_or_default();
    if !instance.spec.stages.iter().any(|s| s.name == stage) {
        return Err(format!("MessengerInstance {name} has no stage '{stage}'"));
    }
    let status: Option<&StageStatus> = instance
        .status
        .as_ref()
        .and_then(|s| s.stages.iter().find(|s| s.name == stage));
    let mut out = String::new();
    let Some(backups) = &instance.spec.backups else {
        return Ok(format!(
            "{name}/{stage}: no backups (spec.backups is not set)\n"
        ));
    };
    let _ = writeln!(
        out,
        "{name}/{stage}: schedule \"{}\", keep daily {} weekly {} monthly {}",
        backups.schedule, backups.keep.daily, backups.keep.weekly, backups.keep.monthly
    );
    match status.and_then(|s| s.backups.as_ref()) {
        None => out.push_str("  no backup has finished yet\n"),
        Some(b) => {
            let time = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
                t.as_ref()
                    .map_or_else(|| "-".to_owned(), |t| t.0.to_string())
            };
            let _ = writeln!(
                out,
                "  last success:  {}  snapshot {}",
                time(&b.last_success_time),
                b.last_success_snapshot.as_deref().unwrap_or("-")
            );
            let _ = writeln!(
                out,
                "  last backup:   {}  {}  (Job {})",
                time(&b.last_time),
                b.last_result
                    .map_or_else(|| "-".to_owned(), |r| format!("{r:?}")),
                b.last_job.as_deref().unwrap_or("-")
            );
            if let Some(message) = &b.last_message {
                let _ = writeln!(out, "  message:       {message}");
            }
        }
    }
    if let Some(restore) = status.and_then(|s| s.restore.as_ref()) {
        let _ = writeln!(
            out,
            "  restore of {}: {:?}{}",
            restore.requested,
            restore.phase,
            restore
                .message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        );
    }
    out.push_str("  (every snapshot: caduceus backups list … --repository REPOSITORY)\n");
    Ok(out)
}

/// A table of `restic snapshots --json` output: id, time, reason.
pub fn format_snapshots(json: &str) -> Result<String, String> {
    let snapshots: Vec<Value> = serde_json::from_str::<Option<Vec<Value>>>(json)
        .map_err(|e| format!("reading restic's output: {e}"))?
        .unwrap_or_default();
    let mut out = format!("{:<10} {:<20} {}\n", "SNAPSHOT", "TIME (UTC)", "REASON");
    for snapshot in &snapshots {
        let tags: Vec<&str> = snapshot["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(Value::as_str)
                    .filter(|t| !t.starts_with("stage:"))
                    .collect()
            })
            .unwrap_or_default();
        let time = snapshot["time"].as_str().unwrap_or("");
        let time = time.get(..19).unwrap_or(time).replace('T', " ");
        let _ = writeln!(
            out,
            "{:<10} {:<20} {}",
            snapshot["short_id"].as_str().unwrap_or("?"),
            time,
            tags.join(",")
        );
    }
    let _ = writeln!(out, "{} snapshots", snapshots.len());
    Ok(out)
}

/// `caduceus backups list`.
pub fn backups_command(args: BackupsArgs) -> Result<(), CliError> {
    let BackupsCommand::List(args) = args.command;
    match &args.repository {
        Some(repository) => {
            let names = StageNames::new(&args.instance, &args.stage);
            let mut restic = Command::new("restic");
            restic
                .args([
                    "snapshots",
                    "--json",
                    "--host",
                    &restic_host(&names),
                    "--tag",
                ])
                .arg(format!("stage:{}", args.stage))
                .env("RESTIC_REPOSITORY", repository)
                // Times in UTC, as the table's header says.
                .env("TZ", "UTC");
            if let Some(file) = &args.password_file {
                restic.env("RESTIC_PASSWORD_FILE", file);
            }
            let output = restic.output().map_err(|e| {
                CliBackupsError::Io(format!(
                    "running restic (install it, for example `apt-get install restic`): {e}"
                ))
            })?;
            if !output.status.success() {
                return Err(CliBackupsError::Io(format!(
                    "restic could not list {repository}: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
                .into());
            }
            print!(
                "{}",
                format_snapshots(&String::from_utf8_lossy(&output.stdout))
                    .map_err(CliBackupsError::Io)?
            );
        }
        None => {
            let (_, _, instance) = block_on(async {
                let client = connect("").await?;
                read_instance(&client, &args.instance, args.namespace.as_deref()).await
            })??;
            print!(
                "{}",
                describe_stage_backups(&instance, &args.stage).map_err(CliBackupsError::Io)?
            );
        }
    }
    Ok(())
}

/// `caduceus restore`.
pub fn restore_command(args: RestoreArgs) -> Result<(), CliError> {
    check_snapshot(&args.snapshot)?;
    match &args.file {
        Some(path) => {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| CliError::ReadFile {
                path: path.clone(),
                source,
            })?;
            let parsed: Value = serde_saphyr::from_str(&text)
                .map_err(|e| CliBackupsError::Io(format!("{file}: {e}")))?;
            let found = parsed["metadata"]["name"].as_str().unwrap_or_default();
            if found != args.instance {
                return Err(CliBackupsError::OtherInstance {
                    file,
                    found: found.into(),
                    instance: args.instance.clone(),
                }
                .into());
            }
            let edited = set_stage_restore(&text, &file, &args.stage, &args.snapshot)?;
            std::fs::write(path, edited).map_err(|source| CliError::WriteFile {
                path: path.clone(),
                source,
            })?;
            println!(
                "{file}: stage {} restores snapshot {}. Commit and push it; the operator restores the stage if it has never been ready \
                 (Synapse stays stopped meanwhile) and shows progress in status.stages[].restore.",
                args.stage, args.snapshot
            );
        }
        None => {
            println!(
                "# Add this to stage {} of MessengerInstance {} (under spec.stages), then apply or commit it:",
                args.stage, args.instance
            );
            print!("{}", restore_snippet(&args.snapshot, 6));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# Our messenger
apiVersion: caduceus.dev/v1alpha1
kind: MessengerInstance
metadata:
  name: umessenger
spec:
  release: {synapse: v1.163.2, elementWeb: v1.12.3}
  backups:
    schedule: \"30 1 * * *\"
    repository: {pvc: {size: 200Gi}}
    passwordSecretRef: {name: pw}
  stages:
    - name: beta   # first
      serverName: beta.example.org
    - serverName: messenger.example.org
      name: \"production\"
      release: {synapse: v1.160.0}

  clients: {}
";

    #[test]
    fn the_restore_is_added_to_the_right_stage_and_comments_stay() {
        let edited = set_stage_restore(FILE, "f.yaml", "production", "12345678").unwrap();
        assert!(edited.contains(
            "      release: {synapse: v1.160.0}\n      restore:\n        snapshot: \"12345678\"\n"
        ));
        assert!(edited.starts_with("# Our messenger\n"));
        assert!(edited.contains("- name: beta   # first"));
        let parsed: MessengerInstance = serde_saphyr::from_str(&edited).unwrap();
        assert_eq!(
            parsed.spec.stages[1].restore.as_ref().unwrap().snapshot,
            "12345678"
        );
        assert!(parsed.spec.stages[0].restore.is_none());

        // Again, with another snapshot: the block is replaced, not doubled.
        let again = set_stage_restore(&edited, "f.yaml", "production", "latest").unwrap();
        assert_eq!(again.matches("restore:").count(), 1);
        assert!(again.contains("snapshot: \"latest\""));
        let first = set_stage_restore(FILE, "f.yaml", "beta", "latest").unwrap();
        assert!(first.contains("      serverName: beta.example.org\n      restore:\n        snapshot: \"latest\"\n    - serverName"));
    }

    #[test]
    fn sequences_at_the_key_indentation_work_too() {
        let text = "metadata:\n  name: i\nspec:\n  backups: {schedule: x}\n  stages:\n  - name: main\n    serverName: m.example.org\n";
        let edited = set_stage_restore(text, "f.yaml", "main", "latest").unwrap();
        assert!(
            edited.ends_with(
                "    serverName: m.example.org\n    restore:\n      snapshot: \"latest\"\n"
            ),
            "{edited}"
        );
    }

    #[test]
    fn bad_requests_are_refused_with_the_fix() {
        assert!(matches!(
            set_stage_restore(FILE, "f.yaml", "staging", "latest"),
            Err(CliBackupsError::NoSuchStage { .. })
        ));
        assert_eq!(
            check_snapshot("yesterday"),
            Err(CliBackupsError::BadSnapshot("yesterday".into()))
        );
        assert!(check_snapshot("1A2B3C4D").is_err());
        let no_backups = FILE.replace("  backups:\n    schedule: \"30 1 * * *\"\n    repository: {pvc: {size: 200Gi}}\n    passwordSecretRef: {name: pw}\n", "");
        assert!(matches!(
            set_stage_restore(&no_backups, "f.yaml", "beta", "latest"),
            Err(CliBackupsError::NoBackups { .. })
        ));
        let flow = "metadata: {name: i}\nspec:\n  backups: {schedule: x}\n  stages: [{name: main, serverName: m.example.org}]\n";
        let error = set_stage_restore(flow, "f.yaml", "main", "latest").unwrap_err();
        assert!(error.to_string().contains("add it by hand"), "{error}");
    }

    #[test]
    fn the_status_view_shows_the_last_backups_and_the_restore() {
        use crate::api::{
            BackupResult, BackupStatus, MessengerInstanceStatus, RestorePhase, RestoreStatus,
        };
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        use k8s_openapi::jiff::Timestamp;

        let mut instance: MessengerInstance = serde_saphyr::from_str(FILE).unwrap();
        let at = |s: i64| Some(Time(Timestamp::from_second(s).unwrap()));
        instance.status = Some(MessengerInstanceStatus {
            stages: vec![StageStatus {
                name: "beta".into(),
                backups: Some(BackupStatus {
                    last_time: at(1_767_232_000),
                    last_result: Some(BackupResult::Failed),
                    last_job: Some("umessenger-beta-backup-29430".into()),
                    last_message: Some("the database is unreachable".into()),
                    last_success_time: at(1_767_145_600),
                    last_success_snapshot: Some("1a2b3c4d".into()),
                }),
                restore: Some(RestoreStatus {
                    requested: "latest".into(),
                    phase: RestorePhase::Succeeded,
                    ..RestoreStatus::default()
                }),
                ..StageStatus::default()
            }],
            ..MessengerInstanceStatus::default()
        });
        let text = describe_stage_backups(&instance, "beta").unwrap();
        assert!(
            text.contains("last success:  2025-12-31T01:46:40Z  snapshot 1a2b3c4d"),
            "{text}"
        );
        assert!(
            text.contains("Failed  (Job umessenger-beta-backup-29430)"),
            "{text}"
        );
        assert!(
            text.contains("message:       the database is unreachable"),
            "{text}"
        );
        assert!(text.contains("restore of latest: Succeeded"), "{text}");
        let production = describe_stage_backups(&instance, "production").unwrap();
        assert!(
            production.contains("no backup has finished yet"),
            "{production}"
        );
        assert!(describe_stage_backups(&instance, "staging").is_err());
    }

    #[test]
    fn snapshots_are_listed_with_their_reason() {
        let json = r#"[{"short_id":"1a2b3c4d","time":"2026-01-01T01:30:05.123Z","tags":["stage:beta","scheduled"]},
                       {"short_id":"5e6f7a8b","time":"2026-01-02T02:00:00Z","tags":["stage:beta","pre-upgrade:v1.163.2"]}]"#;
        let table = format_snapshots(json).unwrap();
        assert!(
            table.contains("1a2b3c4d   2026-01-01 01:30:05  scheduled"),
            "{table}"
        );
        assert!(table.contains("pre-upgrade:v1.163.2"));
        assert!(table.ends_with("2 snapshots\n"));
        assert!(format_snapshots("null").unwrap().ends_with("0 snapshots\n"));
    }
}
