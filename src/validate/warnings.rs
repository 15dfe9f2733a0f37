//! What is allowed but worth a second look: shown as the instance's
//! `Degraded` condition (and an Event), never refused.

use crate::api::MessengerInstanceSpec;

use super::releases::ReleaseSupport;
use super::stage_release_support;
use super::windows::{opening_days_per_year, parse_windows};

/// Windows that open on fewer days a year than this hold a stage back for
/// weeks at a time.
const RARE_WINDOW_DAYS: usize = 12;

/// A warning: the rule's name (the `Degraded` reason and the Event's) and
/// what it found, naming the field, the stage where it has one, and what to
/// change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub reason: &'static str,
    pub message: String,
}

/// The warnings of a spec.
pub fn spec_warnings(spec: &MessengerInstanceSpec) -> Vec<Warning> {
    let mut warnings = Vec::new();
    if spec.access.ingress.is_some() {
        for (index, range) in spec.access.admin_source_ranges.iter().enumerate() {
            if is_whole_internet(range) {
                warnings.push(Warning {
                    reason: "AdminRangeOpen",
                    message: format!(
                        "spec.access.adminSourceRanges[{index}]: {range} opens the admin API to the whole internet; list the administrators' networks instead, for example 10.1.2.0/24"
                    ),
                });
            }
        }
    }
    for stage in &spec.stages {
        if let Some(promotion) = &stage.promotion
            && let Ok(windows) = parse_windows(&promotion.windows)
            && !windows.is_empty()
        {
            let days = opening_days_per_year(&windows);
            if days < RARE_WINDOW_DAYS {
                warnings.push(Warning {
                    reason: "RareWindows",
                    message: format!(
                        "spec.stages[{}].promotion.windows: the windows open on only {days} days a year, so stage {} may wait months for a release; add days or months",
                        stage.name, stage.name
                    ),
                });
            }
        }
        if let ReleaseSupport::AcknowledgedUnlisted { warning } = stage_release_support(spec, stage)
        {
            warnings.push(Warning {
                reason: "UnlistedReleaseAcknowledged",
                message: warning,
            });
        }
    }
    warnings
}

/// `0.0.0.0/0`, `::/0` and the like: every address.
fn is_whole_internet(range: &str) -> bool {
    range
        .trim()
        .split_once('/')
        .is_some_and(|(_, prefix)| prefix.trim() == "0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IngressAccess, Promotion, Stage, Weekday, Window};

    #[test]
    fn open_admin_rare_windows_and_acknowledged_releases_warn() {
        let mut spec = MessengerInstanceSpec::default();
        spec.release.synapse = "v1.163.2".into();
        assert!(spec_warnings(&spec).is_empty());
        spec.access.ingress = Some(IngressAccess::default());
        spec.access.admin_source_ranges = vec!["10.0.0.0/8".into(), "0.0.0.0/0".into()];
        spec.stages.push(Stage {
            name: "production".into(),
            promotion: Some(Promotion {
                from: "beta".into(),
                windows: vec![Window {
                    days: vec![Weekday::Sun],
                    months: vec![2],
                    start: "02:00".into(),
                    duration: "3h".into(),
                    time_zone: "Europe/Berlin".into(),
                }],
                ..Promotion::default()
            }),
            ..Stage::default()
        });
        spec.release.synapse = "v1.200.0".into();
        spec.release.acknowledge_unlisted = true;
        let warnings: Vec<String> = spec_warnings(&spec)
            .into_iter()
            .map(|warning| warning.message)
            .collect();
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains("adminSourceRanges[1]: 0.0.0.0/0"));
        assert!(warnings[1].contains("spec.stages[production].promotion.windows"));
        assert!(
            warnings[1].contains("only 4 days a year"),
            "{}",
            warnings[1]
        );
        assert!(warnings[2].contains("v1.200.0"));
    }
}
