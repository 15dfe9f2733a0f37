//! Checks of a spec that no schema can express: what `homeserver.settings`
//! may contain, whether durations and retention bounds make sense together,
//! and whether registration and federation say something coherent. Each
//! problem names the field path (`spec.homeserver…` or
//! `spec.stages[NAME].homeserver…`) and the fix.

use serde_json::Value;
use thiserror::Error;

use crate::api::values::{MAX_DURATION, MAX_DURATION_MILLIS, is_duration_shaped};
use crate::api::{
    Duration, FederationMode, Homeserver, MessengerInstanceSpec, Registration, RegistrationMode,
    Release, Retention, Stage, StageHomeserver, effective_release, effective_retention,
    unlisted_release_acknowledged,
};
use crate::settings_keys::owned::{OWNED_RETENTION_KEYS, owned_key, owned_oidc_key};
use crate::settings_keys::synapse_keys::{KNOWN_KEYS, SYNAPSE_VERSION};

use self::network::{NetworkError, SourceRanges, source_ranges};
use self::releases::{ReleaseSupport, release_support};
use self::schedule::{BackupSchedule, ScheduleError, backup_schedule};
use self::windows::{ValidatedPromotion, WindowError};

pub mod network;
pub mod releases;
pub mod schedule;
pub mod warnings;
pub mod windows;

/// A spec problem, naming the field and the fix.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ValidationError {
    #[error("{field}: {key} is set by the operator and cannot be set in settings; {fix}")]
    OwnedSetting {
        field: String,
        key: String,
        fix: &'static str,
    },
    #[error(
        "{field}: Synapse {SYNAPSE_VERSION} has no setting {key}{}; fix the name or remove it (Synapse would silently ignore it)",
        did_you_mean(.suggestion)
    )]
    UnknownSetting {
        field: String,
        key: String,
        suggestion: Option<&'static str>,
    },
    #[error("{field} must be a map of homeserver.yaml keys to values, not {found}")]
    SettingsNotAMap { field: String, found: &'static str },
    #[error(
        "{field}: {value:?} is not a duration; write a whole number and one unit of ms, s, m, h, d, w or y, for example 90d"
    )]
    MalformedDuration { field: String, value: String },
    #[error(
        "{field}: {value} is too large (maximum {MAX_DURATION}); durations beyond it are refused before any arithmetic"
    )]
    DurationTooLarge { field: String, value: String },
    #[error("{field} must be longer than zero; {why}")]
    ZeroDuration { field: String, why: &'static str },
    #[error(
        "{field}: allowedMinLifetime ({min}) is above allowedMaxLifetime ({max}); lower allowedMinLifetime or raise allowedMaxLifetime"
    )]
    RetentionMinAboveMax {
        field: String,
        min: String,
        max: String,
    },
    #[error(
        "{field}: defaultMaxLifetime ({default}) is outside the lifetimes rooms may choose ({bound_name} is {bound}); move defaultMaxLifetime inside allowedMinLifetime..allowedMaxLifetime"
    )]
    RetentionDefaultOutsideAllowed {
        field: String,
        default: String,
        bound_name: &'static str,
        bound: String,
    },
    #[error(
        "{field}: OIDC provider {id} has no clientSecretRef; store the client secret in a Secret and set clientSecretRef: {{name: SECRET, key: KEY}} (client secrets are never written inline)"
    )]
    MissingClientSecretRef { field: String, id: String },
    #[error(
        "{field}: {id:?} is not a valid provider id; use a DNS label such as keycloak (lowercase letters, digits and '-'), as it names the login button's provider and the secret's mount"
    )]
    InvalidOidcId { field: String, id: String },
    #[error("{field}: provider id {id} is used more than once; give each OIDC provider its own id")]
    DuplicateOidcId { field: String, id: String },
    #[error(
        "{field}: mode sso needs at least one entry in oidcProviders; add your identity provider or use mode closed"
    )]
    SsoWithoutProviders { field: String },
    #[error("{field}: oidcProviders are only used with mode sso; set mode: sso or remove them")]
    ProvidersWithoutSso { field: String },
    #[error(
        "{field}: mode allowlist needs at least one server name in allowlist; list the homeservers to federate with, or use mode closed"
    )]
    EmptyAllowlist { field: String },
    #[error(
        "{field}: allowlist is only used with mode allowlist; set mode: allowlist or remove the list"
    )]
    AllowlistWithoutMode { field: String },
    #[error(transparent)]
    SourceRange(#[from] NetworkError),
    #[error(transparent)]
    BackupSchedule(#[from] ScheduleError),
    #[error("spec.stages[{stage}].{source}")]
    Window {
        stage: String,
        #[source]
        source: WindowError,
    },
}

impl ValidationError {
    /// The rule broken, as the `Stalled` condition's reason.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::OwnedSetting { .. } => "OwnedSetting",
            Self::UnknownSetting { .. } => "UnknownSetting",
            Self::SettingsNotAMap { .. } => "SettingsNotAMap",
            Self::MalformedDuration { .. } => "MalformedDuration",
            Self::DurationTooLarge { .. } => "DurationTooLarge",
            Self::ZeroDuration { .. } => "ZeroDuration",
            Self::RetentionMinAboveMax { .. } | Self::RetentionDefaultOutsideAllowed { .. } => {
                "RetentionBounds"
            }
            Self::MissingClientSecretRef { .. }
            | Self::InvalidOidcId { .. }
            | Self::DuplicateOidcId { .. } => "OidcProvider",
            Self::SsoWithoutProviders { .. } | Self::ProvidersWithoutSso { .. } => "Registration",
            Self::EmptyAllowlist { .. } | Self::AllowlistWithoutMode { .. } => "Federation",
            Self::SourceRange(_) => "SourceRange",
            Self::BackupSchedule(_) => "BackupSchedule",
            Self::Window {
                source: WindowError::SoakTooLarge { .. } | WindowError::DurationTooLarge { .. },
                ..
            } => "DurationTooLarge",
            Self::Window {
                source: WindowError::Soak { .. },
                ..
            } => "MalformedDuration",
            Self::Window { .. } => "MaintenanceWindow",
        }
    }
}

/// The reason a spec with these problems stalls: the rule's name when one
/// rule is broken, else `InvalidSpec`.
pub fn stall_reason(problems: &[ValidationError]) -> crate::status::StallReason {
    use crate::status::StallReason;
    match problems.first() {
        Some(first) if problems.iter().all(|p| p.rule() == first.rule()) => {
            StallReason::SpecRule(first.rule())
        }
        _ => StallReason::InvalidSpec,
    }
}

fn did_you_mean(suggestion: &Option<&'static str>) -> String {
    suggestion
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default()
}

/// A spec that passed every check, with what it amounts to per stage. Only
/// `validate` makes one, so whatever takes it (the planners) knows its
/// input was checked.
#[derive(Clone, Debug)]
pub struct ValidatedSpec<'a> {
    pub spec: &'a MessengerInstanceSpec,
    /// One per stage, in spec order.
    pub stages: Vec<ValidatedStage<'a>>,
    /// `spec.backups.schedule`, parsed; `None` without backups.
    pub backup_schedule: Option<BackupSchedule>,
}

/// The effective settings of one stage.
#[derive(Clone, Debug)]
pub struct ValidatedStage<'a> {
    /// The instance's spec the stage belongs to.
    pub spec: &'a MessengerInstanceSpec,
    pub stage: &'a Stage,
    /// The release the spec asks for: the stage's pin, else the train.
    pub release: Release,
    /// Rollouts are paused for the instance or the stage.
    pub paused: bool,
    /// `spec.backups.schedule`, parsed; `None` without backups.
    pub backup_schedule: Option<BackupSchedule>,
    /// `spec.access`'s source ranges, canonical.
    pub source_ranges: SourceRanges,
    /// The stage's promotion, its windows and soak parsed.
    pub promotion: Option<ValidatedPromotion>,
    /// Whether the operator can vouch for the stage's Synapse release; an
    /// unlisted one stalls this stage only.
    pub release_support: ReleaseSupport,
}

/// Every problem of a spec, or the spec validated.
pub fn validate(spec: &MessengerInstanceSpec) -> Result<ValidatedSpec<'_>, Vec<ValidationError>> {
    let mut problems = instance_problems(&spec.homeserver);
    for stage in &spec.stages {
        problems.extend(stage_problems(spec, stage));
    }
    let ranges = source_ranges(spec).unwrap_or_else(|error| {
        problems.push(error.into());
        SourceRanges::default()
    });
    let backup_schedule = match backup_schedule(spec).transpose() {
        Ok(schedule) => schedule,
        Err(error) => {
            problems.push(error.into());
            None
        }
    };
    let mut promotions = Vec::with_capacity(spec.stages.len());
    for stage in &spec.stages {
        let promotion = stage.promotion.as_ref().map(windows::promotion).transpose();
        promotions.push(promotion.unwrap_or_else(|source| {
            problems.push(ValidationError::Window {
                stage: stage.name.clone(),
                source,
            });
            None
        }));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let stages = spec
        .stages
        .iter()
        .zip(promotions)
        .map(|(stage, promotion)| ValidatedStage {
            spec,
            stage,
            release_support: stage_release_support(spec, stage),
            release: effective_release(spec, stage),
            paused: spec.paused || stage.paused,
            backup_schedule: backup_schedule.clone(),
            source_ranges: ranges.clone(),
            promotion,
        })
        .collect();
    Ok(ValidatedSpec {
        spec,
        stages,
        backup_schedule,
    })
}

/// What the operator knows of a stage's Synapse release.
pub fn stage_release_support(spec: &MessengerInstanceSpec, stage: &Stage) -> ReleaseSupport {
    let pinned = stage
        .release
        .as_ref()
        .is_some_and(|pin| pin.synapse.is_some());
    let field = if pinned {
        format!("spec.stages[{}].release.synapse", stage.name)
    } else {
        "spec.release.synapse".to_owned()
    };
    release_support(
        &stage.name,
        &field,
        effective_release(spec, stage).synapse.as_str(),
        unlisted_release_acknowledged(spec, stage),
    )
}

fn instance_problems(homeserver: &Homeserver) -> Vec<ValidationError> {
    let base = "spec.homeserver";
    let mut problems = Vec::new();
    if let Some(lifetime) = &homeserver.session_lifetime {
        check_duration(
            &format!("{base}.sessionLifetime"),
            lifetime,
            Some(SESSION_ZERO),
            &mut problems,
        );
    }
    if let Some(retention) = &homeserver.retention {
        check_retention(&format!("{base}.retention"), retention, &mut problems);
    }
    if let Some(registration) = &homeserver.registration {
        check_registration(&format!("{base}.registration"), registration, &mut problems);
    }
    if let Some(federation) = &homeserver.federation {
        let field = format!("{base}.federation");
        match (federation.mode, federation.allowlist.is_empty()) {
            (FederationMode::Allowlist, true) => {
                problems.push(ValidationError::EmptyAllowlist { field })
            }
            (FederationMode::Closed | FederationMode::Open, false) => {
                problems.push(ValidationError::AllowlistWithoutMode {
                    field: format!("{field}.allowlist"),
                })
            }
            _ => {}
        }
    }
    if let Some(settings) = &homeserver.settings {
        check_settings(&format!("{base}.settings"), settings, &mut problems);
    }
    problems
}

fn stage_problems(spec: &MessengerInstanceSpec, stage: &Stage) -> Vec<ValidationError> {
    let Some(StageHomeserver {
        retention,
        session_lifetime,
        settings,
    }) = &stage.homeserver
    else {
        return Vec::new();
    };
    let base = format!("spec.stages[{}].homeserver", stage.name);
    let mut problems = Vec::new();
    if let Some(lifetime) = session_lifetime {
        check_duration(
            &format!("{base}.sessionLifetime"),
            lifetime,
            Some(SESSION_ZERO),
            &mut problems,
        );
    }
    if let Some(own) = retention {
        let field = format!("{base}.retention");
        let mut own_problems = Vec::new();
        check_retention_durations(&field, own, &mut own_problems);
        // Bounds are checked on what is in force on the stage, so an override
        // that only lowers the instance's maximum is caught too.
        if own_problems.is_empty()
            && let Some(merged) = effective_retention(spec, stage)
        {
            check_retention_bounds(&field, &merged, &mut own_problems);
        }
        problems.extend(own_problems);
    }
    if let Some(settings) = settings {
        check_settings(&format!("{base}.settings"), settings, &mut problems);
    }
    problems
}

const SESSION_ZERO: &str = "a zero session lifetime would log every user out at once";

fn check_duration(
    field: &str,
    duration: &Duration,
    zero: Option<&'static str>,
    problems: &mut Vec<ValidationError>,
) {
    match (duration.millis(), zero) {
        (Some(ms), _) if ms > MAX_DURATION_MILLIS => {
            problems.push(ValidationError::DurationTooLarge {
                field: field.to_owned(),
                value: duration.0.clone(),
            })
        }
        (None, _) if is_duration_shaped(duration.as_str()) => {
            problems.push(ValidationError::DurationTooLarge {
                field: field.to_owned(),
                value: duration.0.clone(),
            })
        }
        (None, _) => problems.push(ValidationError::MalformedDuration {
            field: field.to_owned(),
            value: duration.0.clone(),
        }),
        (Some(0), Some(why)) => problems.push(ValidationError::ZeroDuration {
            field: field.to_owned(),
            why,
        }),
        _ => {}
    }
}

fn check_retention(field: &str, retention: &Retention, problems: &mut Vec<ValidationError>) {
    let before = problems.len();
    check_retention_durations(field, retention, problems);
    if problems.len() == before {
        check_retention_bounds(field, retention, problems);
    }
}

fn check_retention_durations(
    field: &str,
    retention: &Retention,
    problems: &mut Vec<ValidationError>,
) {
    let Retention {
        enabled: _,
        default_max_lifetime,
        allowed_min_lifetime,
        allowed_max_lifetime,
        purge_interval,
    } = retention;
    let fields: [(&str, &Option<Duration>, Option<&'static str>); 4] = [
        (
            "defaultMaxLifetime",
            default_max_lifetime,
            Some("a zero lifetime would purge every message as soon as it is sent"),
        ),
        ("allowedMinLifetime", allowed_min_lifetime, None),
        (
            "allowedMaxLifetime",
            allowed_max_lifetime,
            Some("a zero maximum would let rooms purge every message as soon as it is sent"),
        ),
        (
            "purgeInterval",
            purge_interval,
            Some("purge jobs need a pause between runs"),
        ),
    ];
    for (name, duration, zero) in fields {
        if let Some(duration) = duration {
            check_duration(&format!("{field}.{name}"), duration, zero, problems);
        }
    }
}

/// Checks the bounds of a retention policy whose durations all parse.
fn check_retention_bounds(field: &str, retention: &Retention, problems: &mut Vec<ValidationError>) {
    let millis = |d: &Option<Duration>| d.as_ref().and_then(Duration::millis);
    let text = |d: &Option<Duration>| d.as_ref().map(|d| d.0.clone()).unwrap_or_default();
    let (default, min, max) = (
        millis(&retention.default_max_lifetime),
        millis(&retention.allowed_min_lifetime),
        millis(&retention.allowed_max_lifetime),
    );
    if let (Some(min_ms), Some(max_ms)) = (min, max)
        && min_ms > max_ms
    {
        problems.push(ValidationError::RetentionMinAboveMax {
            field: field.to_owned(),
            min: text(&retention.allowed_min_lifetime),
            max: text(&retention.allowed_max_lifetime),
        });
        return;
    }
    let outside = |bound_name: &'static str, bound: &Option<Duration>| {
        ValidationError::RetentionDefaultOutsideAllowed {
            field: field.to_owned(),
            default: text(&retention.default_max_lifetime),
            bound_name,
            bound: text(bound),
        }
    };
    match (default, min, max) {
        (Some(d), _, Some(m)) if d > m => problems.push(outside(
            "allowedMaxLifetime",
            &retention.allowed_max_lifetime,
        )),
        (Some(d), Some(m), _) if d < m => problems.push(outside(
            "allowedMinLifetime",
            &retention.allowed_min_lifetime,
        )),
        _ => {}
    }
}

fn check_registration(
    field: &str,
    registration: &Registration,
    problems: &mut Vec<ValidationError>,
) {
    let providers = &registration.oidc_providers;
    match (registration.mode, providers.is_empty()) {
        (RegistrationMode::Sso, true) => problems.push(ValidationError::SsoWithoutProviders {
            field: format!("{field}.oidcProviders"),
        }),
        (RegistrationMode::Closed | RegistrationMode::Token, false) => {
            problems.push(ValidationError::ProvidersWithoutSso {
                field: format!("{field}.oidcProviders"),
            })
        }
        _ => {}
    }
    for (index, provider) in providers.iter().enumerate() {
        if !crate::api::values::is_dns_label(&provider.id) {
            problems.push(ValidationError::InvalidOidcId {
                field: format!("{field}.oidcProviders[{index}].id"),
                id: provider.id.clone(),
            });
            continue;
        }
        let entry = format!("{field}.oidcProviders[{}]", provider.id);
        if providers[..index]
            .iter()
            .any(|earlier| earlier.id == provider.id)
        {
            problems.push(ValidationError::DuplicateOidcId {
                field: entry.clone(),
                id: provider.id.clone(),
            });
        }
        if provider.client_secret_ref.is_none() {
            problems.push(ValidationError::MissingClientSecretRef {
                field: format!("{entry}.clientSecretRef"),
                id: provider.id.clone(),
            });
        }
        if let Some(settings) = &provider.settings {
            let field = format!("{entry}.settings");
            match settings.as_object() {
                None => problems.push(ValidationError::SettingsNotAMap {
                    field,
                    found: kind(settings),
                }),
                Some(map) => {
                    for key in map.keys() {
                        if let Some(fix) = owned_oidc_key(key) {
                            problems.push(ValidationError::OwnedSetting {
                                field: format!("{field}.{key}"),
                                key: key.clone(),
                                fix,
                            });
                        }
                    }
                }
            }
        }
    }
}

fn check_settings(field: &str, settings: &Value, problems: &mut Vec<ValidationError>) {
    let Some(map) = settings.as_object() else {
        problems.push(ValidationError::SettingsNotAMap {
            field: field.to_owned(),
            found: kind(settings),
        });
        return;
    };
    for (key, value) in map {
        let path = format!("{field}.{key}");
        if let Some(fix) = owned_key(key) {
            problems.push(ValidationError::OwnedSetting {
                field: path,
                key: key.clone(),
                fix,
            });
        } else if KNOWN_KEYS.binary_search(&key.as_str()).is_err() {
            problems.push(ValidationError::UnknownSetting {
                field: path,
                key: key.clone(),
                suggestion: suggest(key),
            });
        } else if key == "retention" {
            for (nested, fix) in OWNED_RETENTION_KEYS {
                if lookup(value, nested).is_some() {
                    let dotted = nested.join(".");
                    problems.push(ValidationError::OwnedSetting {
                        field: format!("{path}.{dotted}"),
                        key: format!("retention.{dotted}"),
                        fix,
                    });
                }
            }
        }
    }
}

fn lookup<'v>(value: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter()
        .try_fold(value, |value, key| value.get(key))
        .filter(|value| !value.is_null())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// The known key closest to a misspelt one, if any is close enough to be a
/// typo. camelCase is tried as snake_case first: Kubernetes users write it.
pub fn suggest(key: &str) -> Option<&'static str> {
    let snake = to_snake_case(key);
    if let Ok(index) = KNOWN_KEYS.binary_search(&snake.as_str()) {
        return Some(KNOWN_KEYS[index]);
    }
    let limit = (snake.chars().count() / 4).clamp(1, 4);
    KNOWN_KEYS
        .iter()
        .map(|known| (edit_distance(&snake, known), *known))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, known)| known)
}

fn to_snake_case(key: &str) -> String {
    let mut snake = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            if !snake.is_empty() && !snake.ends_with('_') {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        } else if c == '-' {
            snake.push('_');
        } else {
            snake.push(c);
        }
    }
    snake
}

/// Levenshtein distance, with a transposition counting as one edit
/// (optimal string alignment): `retnetion` is one typo away.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::api::fixtures::spec_with_homeserver as spec;

    /// The messages of a spec's problems.
    fn messages(homeserver: &str, stage_homeserver: &str) -> Vec<String> {
        match validate(&spec(homeserver, stage_homeserver)) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    fn assert_one(homeserver: &str, stage_homeserver: &str, expected: &[&str]) {
        let messages = messages(homeserver, stage_homeserver);
        assert_eq!(messages.len(), 1, "{messages:?}");
        for part in expected {
            assert!(
                messages[0].contains(part),
                "expected {part:?} in {:?}",
                messages[0]
            );
        }
    }

    #[test]
    fn a_full_valid_spec_passes() {
        assert_eq!(
            messages(
                "{profile: hospital-baseline, encryption: {enforce: true}, retention: {defaultMaxLifetime: 180d, allowedMinLifetime: 1d, allowedMaxLifetime: 1y, purgeInterval: 12h}, sessionLifetime: 90d, registration: {mode: sso, oidcProviders: [{id: keycloak, issuer: 'https://sso.example.org', clientId: synapse, clientSecretRef: {name: oidc, key: secret}}]}, federation: {mode: allowlist, allowlist: [other.example.org]}, settings: {max_upload_size: 100M, push: {jitter_delay: 10s}, retention: {purge_jobs: [{interval: 1d}]}}}",
                "{retention: {defaultMaxLifetime: 7d}, sessionLifetime: 1d, settings: {presence: null}}",
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn owned_key_names_the_typed_field() {
        assert_one(
            "{settings: {server_name: other.example.org}}",
            "",
            &[
                "spec.homeserver.settings.server_name",
                "spec.stages[].serverName",
            ],
        );
        assert_one(
            "{}",
            "{settings: {database: {name: sqlite3}}}",
            &[
                "spec.stages[beta].homeserver.settings.database",
                "spec.database",
            ],
        );
        assert_one(
            "{settings: {session_lifetime: 1d}}",
            "",
            &[
                "settings.session_lifetime",
                "spec.homeserver.sessionLifetime",
            ],
        );
        assert_one(
            "{settings: {registration_shared_secret: hunter2}}",
            "",
            &["settings.registration_shared_secret", "keys Secret"],
        );
        assert_one(
            "{settings: {retention: {default_policy: {max_lifetime: 1d}}}}",
            "",
            &[
                "settings.retention.default_policy.max_lifetime",
                "retention.defaultMaxLifetime",
            ],
        );
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        assert_one(
            "{settings: {url_preview_enabeld: true}}",
            "",
            &[
                "spec.homeserver.settings.url_preview_enabeld",
                "did you mean url_preview_enabled?",
                "1.163.2",
            ],
        );
        assert_one(
            "{}",
            "{settings: {maxUploadSize: 10M}}",
            &[
                "spec.stages[beta].homeserver.settings.maxUploadSize",
                "did you mean max_upload_size?",
            ],
        );
        assert_one(
            "{settings: {retnetion: {}}}",
            "",
            &["did you mean retention?"],
        );
        let far = messages("{settings: {completely_made_up_thing: 1}}", "");
        assert_eq!(far.len(), 1);
        assert!(!far[0].contains("did you mean"), "{far:?}");
    }

    #[test]
    fn settings_must_be_a_map() {
        assert_one(
            "{settings: [a, b]}",
            "",
            &["spec.homeserver.settings must be a map", "a list"],
        );
    }

    #[test]
    fn retention_min_above_max() {
        assert_one(
            "{retention: {allowedMinLifetime: 30d, allowedMaxLifetime: 1d}}",
            "",
            &[
                "spec.homeserver.retention",
                "allowedMinLifetime (30d) is above allowedMaxLifetime (1d)",
            ],
        );
        // The stage's override is checked against the instance's bounds.
        assert_one(
            "{retention: {allowedMinLifetime: 7d}}",
            "{retention: {allowedMaxLifetime: 1d}}",
            &[
                "spec.stages[beta].homeserver.retention",
                "allowedMinLifetime (7d)",
            ],
        );
        assert_one(
            "{retention: {defaultMaxLifetime: 2y, allowedMaxLifetime: 1y}}",
            "",
            &["defaultMaxLifetime (2y)", "allowedMaxLifetime is 1y"],
        );
    }

    #[test]
    fn malformed_and_zero_durations() {
        assert_one(
            "{sessionLifetime: 90 days}",
            "",
            &[
                "spec.homeserver.sessionLifetime",
                "\"90 days\" is not a duration",
            ],
        );
        assert_one(
            "{}",
            "{retention: {purgeInterval: 1d2h}}",
            &[
                "spec.stages[beta].homeserver.retention.purgeInterval",
                "not a duration",
            ],
        );
        assert_one(
            "{sessionLifetime: 0d}",
            "",
            &["sessionLifetime must be longer than zero"],
        );
    }

    #[test]
    fn oidc_provider_needs_a_secret_reference() {
        assert_one(
            "{registration: {mode: sso, oidcProviders: [{id: keycloak, issuer: 'https://sso.example.org', clientId: synapse}]}}",
            "",
            &[
                "spec.homeserver.registration.oidcProviders[keycloak].clientSecretRef",
                "never written inline",
            ],
        );
        assert_one(
            "{registration: {mode: sso, oidcProviders: [{id: keycloak, issuer: 'https://x', clientId: c, clientSecretRef: {name: s, key: k}, settings: {client_secret: hunter2}}]}}",
            "",
            &[
                "oidcProviders[keycloak].settings.client_secret",
                "clientSecretRef",
            ],
        );
    }

    #[test]
    fn registration_and_federation_must_be_coherent() {
        assert_one(
            "{registration: {mode: sso}}",
            "",
            &["mode sso needs at least one"],
        );
        assert_one(
            "{registration: {mode: token, oidcProviders: [{id: k, issuer: 'https://x', clientId: c, clientSecretRef: {name: s, key: k}}]}}",
            "",
            &["only used with mode sso"],
        );
        assert_one(
            "{registration: {mode: sso, oidcProviders: [{id: Key_Cloak, issuer: 'https://x', clientId: c, clientSecretRef: {name: s, key: k}}]}}",
            "",
            &["oidcProviders[0].id", "DNS label"],
        );
        assert_one(
            "{federation: {mode: allowlist}}",
            "",
            &["spec.homeserver.federation", "at least one server name"],
        );
        assert_one(
            "{federation: {mode: closed, allowlist: [a.example.org]}}",
            "",
            &[
                "spec.homeserver.federation.allowlist",
                "only used with mode allowlist",
            ],
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("server_nmae"), Some("server_name"));
        assert_eq!(suggest("enableRegistration"), Some("enable_registration"));
        assert_eq!(suggest("zzzz"), None);
        assert_eq!(edit_distance("retnetion", "retention"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
