//! The invalid instances under `tests/fixtures/invalid/`. Each file starts
//! with where it is refused and what the refusal says:
//!
//! ```yaml
//! # refused-by: admission          (the API server) or operator (Stalled)
//! # message: TEXT                  (in render's error and in the refusal)
//! # render-message: TEXT           (optional: render's, where its wording differs)
//! # reason: RULE                   (operator only: the Stalled condition's reason)
//! ```

use std::path::{Path, PathBuf};

/// Where an invalid instance is refused in a cluster (render refuses all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedBy {
    Admission,
    Operator,
}

#[derive(Clone, Debug)]
pub struct InvalidFixture {
    pub path: PathBuf,
    pub text: String,
    pub refused_by: RefusedBy,
    pub message: String,
    pub render_message: String,
    /// The `Stalled` reason, for what the operator refuses.
    pub reason: Option<String>,
}

fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .take_while(|line| line.starts_with('#'))
        .find_map(|line| line.strip_prefix(&format!("# {key}: ")))
}

/// Every invalid fixture, sorted by file name.
pub fn invalid_fixtures() -> Vec<InvalidFixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let field = |key: &str| {
                header(&text, key)
                    .unwrap_or_else(|| panic!("{} has no `# {key}:` line", path.display()))
                    .to_owned()
            };
            let refused_by = match field("refused-by").as_str() {
                "admission" => RefusedBy::Admission,
                "operator" => RefusedBy::Operator,
                other => panic!(
                    "{}: refused-by {other:?} is not admission or operator",
                    path.display()
                ),
            };
            let message = field("message");
            let render_message = header(&text, "render-message")
                .map(str::to_owned)
                .unwrap_or_else(|| message.clone());
            let reason = header(&text, "reason").map(str::to_owned);
            InvalidFixture {
                reason,
                path,
                text,
                refused_by,
                message,
                render_message,
            }
        })
        .collect()
}
