//! The README as the tests read it: its sections, their shell blocks, inline code and the
//! Commands table, so that a test runs what the README says and fails when the two drift apart.
//! It is read from the working tree: the README is the developer's to keep true, and a change to
//! it is tested before it is committed.

use std::path::Path;

/// README.md, read once per call.
pub struct Readme {
    text: String,
}

impl Readme {
    #[track_caller]
    pub fn load() -> Readme {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the e2e package has a parent directory")
            .join("README.md");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Readme { text }
    }

    /// The text under `## {title}`, up to the next second-level heading (its subsections
    /// included). Panics if there is no such section.
    #[track_caller]
    pub fn section(&self, title: &str) -> &str {
        let heading = format!("## {title}\n");
        let start = self
            .text
            .match_indices(&heading)
            .map(|(at, _)| at)
            .find(|&at| at == 0 || self.text[..at].ends_with('\n'))
            .unwrap_or_else(|| panic!("README.md has no section `## {title}`"))
            + heading.len();
        let rest = &self.text[start..];
        let end = rest.find("\n## ").map_or(rest.len(), |at| at + 1);
        &rest[..end]
    }
}

/// The contents of every ```` ```sh ```` block in `section`, in order.
pub fn shell_blocks(section: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in section.lines() {
        match &mut current {
            None if line.trim_start() == "```sh" => current = Some(Vec::new()),
            None => {}
            Some(lines) if line.trim_start() == "```" => {
                blocks.push(lines.join("\n"));
                current = None;
            }
            Some(lines) => lines.push(line),
        }
    }
    blocks
}

/// Every `inline code` span in `section` outside fenced blocks.
pub fn inline_code(section: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in section.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            spans.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
        }
    }
    spans
}

/// The commands a table in `section` names in its first column, `switchyard dlq list --workspace
/// W ...` as `dlq list`: the words after `switchyard` up to the first that is not a lower-case
/// word (an option, a placeholder such as `ID`, an optional part in brackets).
pub fn table_commands(section: &str) -> Vec<String> {
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `switchyard "))
        .map(|rest| {
            rest.split([' ', '`'])
                .take_while(|word| !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}
