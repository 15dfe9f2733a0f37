//! Offline rendering: every object the operator would create for an
//! instance, from a file, with no cluster and placeholder secrets.

use std::path::{Path, PathBuf};

use kube::api::ObjectMeta;
use thiserror::Error;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::MessengerInstance;
use crate::api::admission::admission_errors;
use crate::api::structural::schema_errors;
use crate::desired::homeserver::{self, HomeserverFiles};
use crate::desired::keys::{StageSecrets, keys_secret};
use crate::desired::{self, BuildError, Child, Ownership};
use crate::names::{STAGE_LABEL, StageNames};
use crate::observe::{InstanceObservation, StageObservation};
use crate::pipeline;
use crate::plan::StageView;
use crate::plan::keys::{self, Keys};
use crate::validate::{self, ValidatedSpec, ValidationError};

/// Why an instance file cannot be rendered. Each message says what to fix.
#[derive(Debug, Error)]
pub enum RenderError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid MessengerInstance: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error(
        "{path} has kind {kind}; expected apiVersion caduceus.dev/v1alpha1, kind MessengerInstance"
    )]
    WrongKind { path: PathBuf, kind: String },
    #[error("the API server would reject this instance:\n  {}", .0.join("\n  "))]
    Admission(Vec<String>),
    #[error("invalid spec:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid(Vec<ValidationError>),
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A stage that would stall in the controller too (the message names
    /// the field and the fix).
    #[error("{0}")]
    Blocked(String),
    #[error("no stage named {stage}; the instance has: {known}")]
    UnknownStage { stage: String, known: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads one MessengerInstance from a YAML file.
pub fn load_instance(path: &Path) -> Result<MessengerInstance, RenderError> {
    let text = std::fs::read_to_string(path).map_err(|source| RenderError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_instance(&text, path)
}

/// Parses one MessengerInstance; YAML errors carry line and column.
pub fn parse_instance(text: &str, path: &Path) -> Result<MessengerInstance, RenderError> {
    let value: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|error| RenderError::Yaml {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
    let kind = value
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or("<none>");
    if kind != "MessengerInstance" {
        return Err(RenderError::WrongKind {
            path: path.to_owned(),
            kind: kind.to_owned(),
        });
    }
    // The file as written, before typed parsing drops unknown fields.
    let schema = schema_errors(&value);
    if !schema.is_empty() {
        return Err(RenderError::Admission(schema));
    }
    // Parse again as the typed instance so that errors keep their position.
    serde_saphyr::from_str(text).map_err(|error| RenderError::Yaml {
        path: path.to_owned(),
        message: error.to_string(),
    })
}

/// Checks an instance as admission and the operator would.
pub fn check(instance: &MessengerInstance) -> Result<ValidatedSpec<'_>, RenderError> {
    let object = serde_json::to_value(instance).expect("instances serialize");
    let mut admission = schema_errors(&object);
    admission.extend(admission_errors(instance));
    if !admission.is_empty() {
        return Err(RenderError::Admission(admission));
    }
    validate::validate(&instance.spec).map_err(RenderError::Invalid)
}

/// Gives an instance without a namespace the given one.
pub fn with_namespace(
    mut instance: MessengerInstance,
    namespace: Option<&str>,
) -> MessengerInstance {
    if let Some(namespace) = namespace {
        instance.metadata.namespace = Some(namespace.to_owned());
    } else if instance.metadata.namespace.is_none() {
        instance.metadata.namespace = Some("default".into());
    }
    instance
}

/// Every object of the instance (or of one stage), as the operator would
/// create them for an instance with no prior state, secrets as
/// placeholders.
pub fn render_objects(
    instance: &MessengerInstance,
    stage: Option<&str>,
) -> Result<Vec<Child>, RenderError> {
    check(instance)?;
    select_stages(instance, stage)?;
    let objects = desired_from_nothing(instance, StageSecrets::placeholders)?;
    Ok(match stage {
        None => objects,
        Some(stage) => objects
            .into_iter()
            .filter(|child| {
                child.object.labels().get(STAGE_LABEL).map(String::as_str) == Some(stage)
            })
            .collect(),
    })
}

/// What the controller writes for an instance when nothing of it exists yet:
/// the same observation, planners and builders, run on an empty
/// observation. Minted keys first, then the applied children, then the
/// Jobs, in the controller's order.
pub fn desired_from_nothing(
    instance: &MessengerInstance,
    mint: impl Fn() -> StageSecrets,
) -> Result<Vec<Child>, RenderError> {
    // No prior state: neither objects nor a recorded status.
    let mut instance = instance.clone();
    instance.status = None;
    let instance = &instance;
    let namespace = instance
        .metadata
        .namespace
        .as_deref()
        .ok_or(BuildError::MissingNamespace)?;
    let observed = InstanceObservation {
        stages: vec![StageObservation::default(); instance.spec.stages.len()],
        objects: Vec::new(),
    };
    let validated = validate::validate(&instance.spec).map_err(RenderError::Invalid)?;
    let views = StageView::all(instance, &validated, namespace, &observed);
    let mut minted = Vec::new();
    let mut stage_keys = Vec::new();
    for view in &views {
        stage_keys.push(match keys::prerequisites(view, &mint) {
            Ok(Keys::Existing(secrets)) => Ok(secrets),
            Ok(Keys::Mint(secrets)) => {
                minted.push(Child::new(
                    keys_secret(&view.names, namespace, &secrets),
                    Ownership::Retained,
                ));
                Ok(secrets)
            }
            Err(stall) => Err(stall),
        });
    }
    let plan = pipeline::plan_instance(&views, stage_keys, Timestamp::UNIX_EPOCH);
    if let Some(stall) = plan.stall() {
        return Err(RenderError::Blocked(stall.message.clone()));
    }
    Ok(minted
        .into_iter()
        .chain(plan.children)
        .chain(plan.jobs)
        .collect())
}

/// The configuration files of one stage, secrets as placeholders.
pub fn render_homeserver(
    instance: &MessengerInstance,
    stage: &str,
) -> Result<HomeserverFiles, RenderError> {
    let validated = check(instance)?;
    let stage = select_stages(instance, Some(stage))?[0];
    let settings = validated
        .stages
        .iter()
        .find(|s| s.stage.name == stage.name)
        .expect("validate keeps every stage");
    let name = instance.metadata.name.as_deref().unwrap_or_default();
    let names = StageNames::new(name, &stage.name);
    let connection = desired::database::connection(&instance.spec, &names);
    Ok(homeserver::homeserver_files(
        settings,
        &connection,
        &StageSecrets::placeholders(),
    ))
}

/// Writes `homeserver.yaml`, `log.yaml` and `secrets.yaml` into `dir`.
pub fn write_homeserver_files(files: &HomeserverFiles, dir: &Path) -> Result<(), RenderError> {
    let write = |name: &str, content: &str| {
        let path = dir.join(name);
        std::fs::write(&path, content).map_err(|source| RenderError::Write { path, source })
    };
    std::fs::create_dir_all(dir).map_err(|source| RenderError::Write {
        path: dir.to_owned(),
        source,
    })?;
    write(homeserver::HOMESERVER_FILE, &files.homeserver_yaml)?;
    write(homeserver::LOG_CONFIG_FILE, &files.log_yaml)?;
    write(homeserver::SECRETS_FILE, &files.secrets_yaml)
}

fn select_stages<'a>(
    instance: &'a MessengerInstance,
    stage: Option<&str>,
) -> Result<Vec<&'a crate::api::Stage>, RenderError> {
    let stages = &instance.spec.stages;
    match stage {
        None => Ok(stages.iter().collect()),
        Some(wanted) => stages
            .iter()
            .find(|s| s.name == wanted)
            .map(|s| vec![s])
            .ok_or_else(|| RenderError::UnknownStage {
                stage: wanted.to_owned(),
                known: stages
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
    }
}

/// Objects as a multi-document YAML stream, without server-managed fields.
pub fn to_yaml_stream(objects: &[Child]) -> String {
    objects
        .iter()
        .map(|child| {
            let mut object = child.object.clone();
            object.metadata = ObjectMeta {
                resource_version: None,
                ..object.metadata
            };
            let value = serde_json::to_value(&object).expect("objects serialize");
            format!("---\n{}", homeserver::to_yaml(&value))
        })
        .collect()
}
