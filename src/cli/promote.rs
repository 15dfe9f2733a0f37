//! `caduceus promote`: moves a stage's release pin to what its `from` stage
//! runs — in the instance's YAML file in a git checkout (keeping comments and
//! layout), or on the cluster object for users without GitOps — and refuses
//! when the operator's gates would.

use jiff::Timestamp;
use thiserror::Error;

use serde_json::json;

use super::gitops::{Insert, StageKeyEdit, set_stage_key};
use crate::api::{
    MessengerInstance, Release, StagePhase, Version, effective_release,
    unlisted_release_acknowledged,
};
use crate::plan::rollout::machine::{Source, schema_refusal, soak_gate};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PromoteError {
    #[error("no stage named {0} in spec.stages")]
    UnknownStage(String),
    #[error("stage {0} has no promotion.from; set its release pin in the file instead")]
    NoSource(String),
    #[error("{from} has no status yet; is the operator running and the instance applied?")]
    NoStatus { from: String },
    #[error("refused: {0}")]
    Gate(String),
    #[error("{file}: {problem}")]
    Edit { file: String, problem: String },
}

/// The release `stage` would be promoted to, if the gates allow it now.
/// Maintenance windows are not checked here: the operator waits for the
/// next window itself once the pin has moved.
pub fn promotion_target(
    instance: &MessengerInstance,
    stage: &str,
    now: Timestamp,
) -> Result<Release, PromoteError> {
    let spec_stage = instance
        .spec
        .stages
        .iter()
        .find(|s| s.name == stage)
        .ok_or_else(|| PromoteError::UnknownStage(stage.into()))?;
    let promotion = spec_stage
        .promotion
        .as_ref()
        .ok_or_else(|| PromoteError::NoSource(stage.into()))?;
    let status = instance.status.clone().unwrap_or_default();
    let source = status
        .stages
        .iter()
        .find(|s| s.name == promotion.from)
        .ok_or_else(|| PromoteError::NoStatus {
            from: promotion.from.clone(),
        })?;
    let running = source.release.clone().unwrap_or_default();
    let (Some(synapse), Some(element_web)) = (running.synapse, running.element_web) else {
        return Err(PromoteError::NoStatus {
            from: promotion.from.clone(),
        });
    };
    // An unlisted release the source stage runs by acknowledgement keeps
    // that acknowledgement, or the promoted stage would stall on it.
    let acknowledge_unlisted = instance
        .spec
        .stages
        .iter()
        .find(|s| s.name == promotion.from)
        .is_some_and(|from| {
            unlisted_release_acknowledged(&instance.spec, from)
                && effective_release(&instance.spec, from).synapse.as_str() == synapse
        });
    let target = Release {
        synapse: Version(synapse),
        element_web: Version(element_web),
        acknowledge_unlisted,
    };
    if source.phase != StagePhase::Ready {
        return Err(PromoteError::Gate(format!(
            "{} is {} ({}); promote only from a Ready stage",
            promotion.from,
            source.phase,
            source.message.as_deref().unwrap_or_default()
        )));
    }
    let gate = Source {
        name: &promotion.from,
        status: Some(source),
    };
    if let Some(waiting) = soak_gate(
        crate::validate::windows::soak(promotion),
        &gate,
        &target,
        now,
    ) {
        return Err(PromoteError::Gate(waiting));
    }
    if let Some(current) = status.stages.iter().find(|s| s.name == stage)
        && let Some(refused) = schema_refusal(current, &target)
    {
        return Err(PromoteError::Gate(refused));
    }
    Ok(target)
}

/// Sets `stage`'s `release` pin in the YAML text of an instance, keeping
/// everything else byte for byte: comments, order, quoting and layout.
pub fn set_release_pin(
    text: &str,
    stage: &str,
    release: &Release,
    file: &str,
) -> Result<String, PromoteError> {
    let acknowledgement = if release.acknowledge_unlisted {
        ", acknowledgeUnlisted: true"
    } else {
        ""
    };
    let block = format!(
        "release: {{synapse: {}, elementWeb: {}{acknowledgement}}}",
        release.synapse, release.element_web
    );
    let mut value =
        json!({"synapse": release.synapse.as_str(), "elementWeb": release.element_web.as_str()});
    if release.acknowledge_unlisted {
        value["acknowledgeUnlisted"] = json!(true);
    }
    let edit = StageKeyEdit {
        stage,
        key: "release",
        value,
        block: &block,
        insert: Insert::AfterName,
    };
    set_stage_key(text, &edit).map_err(|error| PromoteError::Edit {
        file: file.into(),
        problem: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ReleaseStatus, StageStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn release(synapse: &str) -> Release {
        Release {
            synapse: Version(synapse.into()),
            element_web: Version("v1.12.3".into()),
            acknowledge_unlisted: false,
        }
    }

    #[test]
    fn the_example_pin_moves_and_nothing_else_changes() {
        let text = std::fs::read_to_string("examples/umessenger.yaml").unwrap();
        let edited =
            set_release_pin(&text, "production", &release("v1.164.0"), "umessenger.yaml").unwrap();
        let changed: Vec<(&str, &str)> = text
            .lines()
            .zip(edited.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert!(
            changed[0]
                .1
                .contains("release: {synapse: v1.164.0, elementWeb: v1.12.3}")
        );
        assert!(changed[0].1.ends_with("# the pin promotion moves in git"));
        assert_eq!(text.lines().count(), edited.lines().count());
        let parsed: MessengerInstance = serde_saphyr::from_str(&edited).unwrap();
        let production = parsed
            .spec
            .stages
            .iter()
            .find(|s| s.name == "production")
            .unwrap();
        assert_eq!(
            production
                .release
                .as_ref()
                .unwrap()
                .synapse
                .as_ref()
                .unwrap()
                .as_str(),
            "v1.164.0"
        );
    }

    #[test]
    fn a_missing_pin_and_a_block_style_pin_are_handled() {
        let text = "spec:\n  stages:\n    - name: beta\n      serverName: beta.example.org\n    - name: production # the hospital\n      serverName: example.org\n      release:\n        synapse: v1.160.0   # old\n        elementWeb: v1.12.1\n      promotion: {from: beta}\n";
        let edited = set_release_pin(text, "production", &release("v1.163.2"), "f").unwrap();
        assert!(edited.contains("    - name: production # the hospital\n      serverName: example.org\n      release: {synapse: v1.163.2, elementWeb: v1.12.3}\n      promotion: {from: beta}\n"), "{edited}");
        let edited = set_release_pin(&edited, "beta", &release("v1.163.2"), "f").unwrap();
        assert!(edited.contains("    - name: beta\n      release: {synapse: v1.163.2, elementWeb: v1.12.3}\n      serverName: beta.example.org\n"), "{edited}");
        assert_eq!(
            set_release_pin(text, "staging", &release("v1"), "f")
                .unwrap_err()
                .to_string(),
            "f: stage staging not found under spec.stages"
        );
    }

    #[test]
    fn promotion_follows_the_gates() {
        let text = std::fs::read_to_string("examples/umessenger.yaml").unwrap();
        let mut instance: MessengerInstance = serde_saphyr::from_str(&text).unwrap();
        let now: Timestamp = "2026-11-27T00:00:00Z".parse().unwrap();
        assert!(matches!(
            promotion_target(&instance, "production", now),
            Err(PromoteError::NoStatus { .. })
        ));
        let since = |text: &str| Some(Time(text.parse().unwrap()));
        instance.status = Some(crate::api::MessengerInstanceStatus {
            stages: vec![StageStatus {
                name: "beta".into(),
                phase: StagePhase::Ready,
                release: Some(ReleaseStatus {
                    synapse: Some("v1.164.0".into()),
                    element_web: Some("v1.12.4".into()),
                }),
                ready_since: since("2026-11-25T00:00:00Z"),
                ..StageStatus::default()
            }],
            ..Default::default()
        });
        let refused = promotion_target(&instance, "production", now)
            .unwrap_err()
            .to_string();
        assert_eq!(
            refused,
            "refused: beta has run v1.164.0 Ready for 2d of 7d; ready to roll out at 2026-12-02 00:00 UTC"
        );
        let later: Timestamp = "2026-12-03T00:00:00Z".parse().unwrap();
        assert_eq!(
            promotion_target(&instance, "production", later)
                .unwrap()
                .synapse
                .as_str(),
            "v1.164.0"
        );
        assert!(matches!(
            promotion_target(&instance, "beta", later),
            Err(PromoteError::NoSource(_))
        ));
    }

    #[test]
    fn an_acknowledged_unlisted_release_is_promoted_with_its_acknowledgement() {
        let text = std::fs::read_to_string("examples/umessenger.yaml").unwrap();
        let mut instance: MessengerInstance = serde_saphyr::from_str(&text).unwrap();
        instance.spec.release.synapse = Version("v1.170.0".into());
        instance.spec.release.acknowledge_unlisted = true;
        instance.status = Some(crate::api::MessengerInstanceStatus {
            stages: vec![StageStatus {
                name: "beta".into(),
                phase: StagePhase::Ready,
                release: Some(ReleaseStatus {
                    synapse: Some("v1.170.0".into()),
                    element_web: Some("v1.12.3".into()),
                }),
                ready_since: Some(Time("2026-11-01T00:00:00Z".parse().unwrap())),
                ..StageStatus::default()
            }],
            ..Default::default()
        });
        let now: Timestamp = "2026-12-03T00:00:00Z".parse().unwrap();
        let target = promotion_target(&instance, "production", now).unwrap();
        assert!(target.acknowledge_unlisted);
        let edited = set_release_pin(&text, "production", &target, "f").unwrap();
        assert!(
            edited.contains(
                "release: {synapse: v1.170.0, elementWeb: v1.12.3, acknowledgeUnlisted: true}"
            ),
            "{edited}"
        );
        let parsed: MessengerInstance = serde_saphyr::from_str(&edited).unwrap();
        let production = parsed.spec.stages.iter().find(|s| s.name == "production");
        assert!(
            production
                .unwrap()
                .release
                .as_ref()
                .unwrap()
                .acknowledge_unlisted
        );
    }
}
