//! The one GitOps YAML editor: sets one key of one stage entry under
//! `spec.stages` in an instance's YAML text, in place, keeping every other
//! line (comments, order, quoting, layout) as it is, and re-parses the
//! result to verify that it is the original with exactly that change.
//! `promote` moves release pins with it and `restore` declares restores.

use serde_json::Value;
use thiserror::Error;

/// Why a stage's key could not be set safely; the callers add the file and
/// what to write by hand.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EditError {
    #[error("the file does not parse: {0}")]
    Unparsable(String),
    #[error("stage {0} not found under spec.stages")]
    NoStage(String),
    #[error("no block-style spec.stages found (write `stages:` under `spec:` as a block)")]
    NoStagesBlock,
    #[error(
        "the stage entry is not written as a block (it is in flow style, {{...}}); write it in block style"
    )]
    FlowStyle,
    #[error("the edited file does not parse")]
    EditUnparsable,
    #[error("the edited file would differ in more than stages[{stage}].{key}")]
    Unverified { stage: String, key: String },
}

/// Where a key the stage entry does not have yet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// Right after the entry's `name:` line.
    AfterName,
    /// After the entry's last line.
    AtEnd,
}

/// One edit: `stages[name=stage].key = value`, written as `block` (the YAML
/// of `key: …`, its first line unindented, further lines indented relative
/// to it).
#[derive(Clone, Debug)]
pub struct StageKeyEdit<'a> {
    pub stage: &'a str,
    pub key: &'a str,
    pub value: Value,
    pub block: &'a str,
    pub insert: Insert,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let trimmed = line.trim();
    !trimmed.is_empty() && !trimmed.starts_with('#')
}

/// A scalar without its quotes and trailing comment.
fn unquote(value: &str) -> &str {
    let value = value.split(" #").next().unwrap_or(value).trim();
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value)
}

/// A line's `key:` after an optional sequence dash.
fn key_of(line: &str) -> &str {
    let rest = line.trim_start();
    let rest = rest.strip_prefix("- ").unwrap_or(rest).trim_start();
    rest.split(':').next().unwrap_or_default()
}

/// The trailing ` # comment` of a line, if any.
fn comment_of(line: &str) -> Option<&str> {
    line.find(" #").map(|at| line[at..].trim())
}

/// The lines of the stage entry: `(first, end)` (end exclusive) and the
/// indentation of its keys.
fn find_entry(lines: &[&str], stage: &str) -> Result<(usize, usize, usize), EditError> {
    let spec = lines
        .iter()
        .position(|l| l.trim_end() == "spec:")
        .ok_or(EditError::NoStagesBlock)?;
    let stages = (spec + 1..lines.len())
        .find(|&i| is_content(lines[i]) && indent_of(lines[i]) > 0 && key_of(lines[i]) == "stages")
        .ok_or(EditError::NoStagesBlock)?;
    let inline = lines[stages].split_once(':').map_or("", |(_, value)| {
        value.split(" #").next().unwrap_or("").trim()
    });
    if !inline.is_empty() {
        // `stages: [...]`: a flow sequence.
        return Err(EditError::FlowStyle);
    }
    let key_indent = indent_of(lines[stages]);
    // The block ends at the next content line at or left of the key (a
    // sequence may sit at the key's own indentation, but only as `- `).
    let end = (stages + 1..lines.len())
        .find(|&i| {
            is_content(lines[i])
                && (indent_of(lines[i]) < key_indent
                    || (indent_of(lines[i]) == key_indent
                        && !lines[i].trim_start().starts_with("- ")))
        })
        .unwrap_or(lines.len());
    let dashes: Vec<usize> = (stages + 1..end)
        .filter(|&i| lines[i].trim_start().starts_with("- "))
        .collect();
    let dash_indent = dashes
        .iter()
        .map(|&i| indent_of(lines[i]))
        .min()
        .ok_or(EditError::FlowStyle)?;
    let items: Vec<usize> = dashes
        .into_iter()
        .filter(|&i| indent_of(lines[i]) == dash_indent)
        .collect();
    let content_indent = dash_indent + 2;
    for (n, &start) in items.iter().enumerate() {
        let item_end = items.get(n + 1).copied().unwrap_or(end);
        let named = (start..item_end).any(|i| {
            (i == start || indent_of(lines[i]) == content_indent)
                && key_of(lines[i]) == "name"
                && lines[i]
                    .split_once(':')
                    .is_some_and(|(_, value)| unquote(value) == stage)
        });
        if named {
            if lines[start].trim_start()[2..].trim_start().starts_with('{') {
                return Err(EditError::FlowStyle);
            }
            return Ok((start, item_end, content_indent));
        }
    }
    Err(EditError::NoStage(stage.to_owned()))
}

/// Applies `edit` to the YAML `text`; see the module comment.
pub fn set_stage_key(text: &str, edit: &StageKeyEdit<'_>) -> Result<String, EditError> {
    let original: Value =
        serde_saphyr::from_str(text).map_err(|e| EditError::Unparsable(e.to_string()))?;
    let index = original["spec"]["stages"]
        .as_array()
        .and_then(|stages| stages.iter().position(|s| s["name"] == edit.stage))
        .ok_or_else(|| EditError::NoStage(edit.stage.to_owned()))?;
    let lines: Vec<&str> = text.lines().collect();
    let (start, end, indent) = find_entry(&lines, edit.stage)?;
    let pad = " ".repeat(indent);
    let mut block: Vec<String> = edit
        .block
        .lines()
        .map(|line| format!("{pad}{line}"))
        .collect();
    let existing = (start..end)
        .find(|&i| (i == start || indent_of(lines[i]) == indent) && key_of(lines[i]) == edit.key);
    let (from, to) = match existing {
        Some(at) => {
            // The key's lines: deeper-indented ones and comments among them,
            // but not the blank lines after them.
            let mut to = at + 1;
            while to < end && (!is_content(lines[to]) || indent_of(lines[to]) > indent) {
                to += 1;
            }
            while to > at + 1 && lines[to - 1].trim().is_empty() {
                to -= 1;
            }
            if let (Some(comment), Some(first)) = (comment_of(lines[at]), block.first_mut()) {
                first.push_str("  ");
                first.push_str(comment);
            }
            if at == start {
                // The key opened the entry: keep its dash.
                if let Some(first) = block.first_mut() {
                    first.replace_range(indent - 2..indent, "- ");
                }
            }
            (at, to)
        }
        None => {
            let after = match edit.insert {
                Insert::AfterName => (start..end).find(|&i| {
                    (i == start || indent_of(lines[i]) == indent) && key_of(lines[i]) == "name"
                }),
                Insert::AtEnd => (start..end).rev().find(|&i| is_content(lines[i])),
            }
            .unwrap_or(start);
            (after + 1, after + 1)
        }
    };
    let mut out: Vec<String> = lines[..from].iter().map(|l| (*l).to_owned()).collect();
    out.append(&mut block);
    out.extend(lines[to..].iter().map(|l| (*l).to_owned()));
    let mut edited = out.join("\n");
    if text.ends_with('\n') {
        edited.push('\n');
    }
    let mut expected = original;
    expected["spec"]["stages"][index][edit.key] = edit.value.clone();
    let parsed: Value = serde_saphyr::from_str(&edited).map_err(|_| EditError::EditUnparsable)?;
    if parsed != expected {
        return Err(EditError::Unverified {
            stage: edit.stage.to_owned(),
            key: edit.key.to_owned(),
        });
    }
    Ok(edited)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = "\
spec:
  stages:
    - name: beta   # first
      serverName: beta.example.org
    - release: {synapse: v1}   # pinned
      name: production

  clients: {}
";

    fn edit<'a>(
        stage: &'a str,
        key: &'a str,
        value: Value,
        block: &'a str,
        insert: Insert,
    ) -> StageKeyEdit<'a> {
        StageKeyEdit {
            stage,
            key,
            value,
            block,
            insert,
        }
    }

    #[test]
    fn a_key_opening_an_entry_keeps_its_dash_and_comment_and_blank_lines_stay() {
        let edited = set_stage_key(
            FILE,
            &edit(
                "production",
                "release",
                json!({"synapse": "v2"}),
                "release: {synapse: v2}",
                Insert::AfterName,
            ),
        )
        .unwrap();
        assert_eq!(
            edited,
            FILE.replace("{synapse: v1}   # pinned", "{synapse: v2}  # pinned")
        );
    }

    #[test]
    fn a_missing_key_is_inserted_where_asked() {
        let after_name = set_stage_key(
            FILE,
            &edit(
                "beta",
                "paused",
                json!(true),
                "paused: true",
                Insert::AfterName,
            ),
        )
        .unwrap();
        assert!(
            after_name.contains("- name: beta   # first\n      paused: true\n      serverName")
        );
        let at_end = set_stage_key(
            FILE,
            &edit("beta", "paused", json!(true), "paused: true", Insert::AtEnd),
        )
        .unwrap();
        assert!(at_end.contains("serverName: beta.example.org\n      paused: true\n    - release"));
    }

    #[test]
    fn what_cannot_be_edited_safely_is_refused() {
        let missing = set_stage_key(
            FILE,
            &edit(
                "staging",
                "paused",
                json!(true),
                "paused: true",
                Insert::AtEnd,
            ),
        );
        assert_eq!(missing, Err(EditError::NoStage("staging".into())));
        let flow = "spec:\n  stages: [{name: main}]\n";
        assert_eq!(
            set_stage_key(
                flow,
                &edit("main", "paused", json!(true), "paused: true", Insert::AtEnd)
            ),
            Err(EditError::FlowStyle)
        );
        // A block that does not say what the value says is caught by the re-parse.
        assert_eq!(
            set_stage_key(
                FILE,
                &edit(
                    "beta",
                    "paused",
                    json!(true),
                    "paused: false",
                    Insert::AtEnd
                )
            ),
            Err(EditError::Unverified {
                stage: "beta".into(),
                key: "paused".into()
            })
        );
    }
}
