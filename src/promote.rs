//! `caduceus promote`: moves a stage's release pin to what its `from` stage
//! runs — in the instance's YAML file in a git checkout (keeping comments and
//! layout), or on the cluster object for users without GitOps — and refuses
//! when the operator's gates would.

use jiff::Timestamp;
use thiserror::Error;

use crate::api::{MessengerInstance, Release, StagePhase, Version};
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
    let target = Release {
        synapse: Version(synapse),
        element_web: Version(element_web),
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
    if let Some(waiting) = soak_gate(promotion, &gate, &target, now) {
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
    let edit_error = |problem: &str| PromoteError::Edit {
        file: file.into(),
        problem: problem.into(),
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let is_name = |line: &str| {
        let trimmed = line.trim_start().trim_start_matches("- ").trim_start();
        trimmed
            .strip_prefix("name:")
            .map(|value| {
                value
                    .split('#')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches(['"', '\''])
                    == stage
            })
            .unwrap_or(false)
    };
    let stages_at = lines
        .iter()
        .position(|line| line.trim_start().starts_with("stages:") && indent(line) == 2)
        .ok_or_else(|| {
            edit_error("no spec.stages block found (block style `stages:` under `spec:` is needed)")
        })?;
    // The stage's item: from its `- ` line to the next item or the block's end.
    let item_start = (stages_at + 1..lines.len())
        .find(|&i| {
            let line = lines[i];
            line.trim_start().starts_with("- ")
                && (is_name(line)
                    || (i + 1 < lines.len()
                        && !lines[i + 1].trim_start().starts_with("- ")
                        && is_name_in_item(&lines, i, &is_name)))
        })
        .ok_or_else(|| edit_error(&format!("stage {stage} not found under spec.stages")))?;
    let dash_indent = indent(lines[item_start]);
    let key_indent = dash_indent + 2;
    let item_end = (item_start + 1..lines.len())
        .find(|&i| {
            let line = lines[i];
            !line.trim().is_empty()
                && !line.trim_start().starts_with('#')
                && indent(line) <= dash_indent
        })
        .unwrap_or(lines.len());
    if lines[item_start].contains('{') {
        return Err(edit_error(
            "the stage is written in flow style ({...}); write it in block style to promote",
        ));
    }
    let pin = format!(
        "{}release: {{synapse: {}, elementWeb: {}}}",
        " ".repeat(key_indent),
        release.synapse,
        release.element_web
    );
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let release_line = (item_start..item_end).find(|&i| {
        let line = lines[i].trim_start().trim_start_matches("- ");
        line.starts_with("release:") && (indent(lines[i]) == key_indent || i == item_start)
    });
    match release_line {
        Some(i) => {
            let line = lines[i];
            let comment = line
                .find(" #")
                .map(|at| line[at..].trim_end_matches('\n').to_owned());
            // Drop a block-style mapping under `release:`.
            let mut end = i + 1;
            while end < item_end
                && (lines[end].trim().is_empty() || indent(lines[end]) > key_indent)
            {
                end += 1;
            }
            let newline = if line.ends_with('\n') { "\n" } else { "" };
            let replacement = format!(
                "{pin}{}{newline}",
                comment
                    .map(|c| format!("  {}", c.trim_start()))
                    .unwrap_or_default()
            );
            out.splice(i..end, [replacement]);
        }
        None => {
            // Right after the `name:` line of the item.
            let name_line = (item_start..item_end)
                .find(|&i| is_name(lines[i]))
                .unwrap_or(item_start);
            out.insert(name_line + 1, format!("{pin}\n"));
        }
    }
    Ok(out.concat())
}

fn is_name_in_item(lines: &[&str], start: usize, is_name: &dyn Fn(&str) -> bool) -> bool {
    let dash = lines[start].len() - lines[start].trim_start().len();
    lines[start + 1..]
        .iter()
        .take_while(|line| line.trim().is_empty() || line.len() - line.trim_start().len() > dash)
        .any(|line| is_name(line))
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
}
