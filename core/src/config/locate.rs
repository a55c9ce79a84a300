//! Key paths, and finding the line a key path sits on in the raw YAML text.
//!
//! serde_yaml's `Value` keeps no positions, so errors found after parsing are placed by walking
//! the text itself: block mappings by indentation, block sequences by counting `- ` items. Flow
//! collections (`[a, b]`, `{k: v}`) are not entered: their key's line is close enough.

use std::fmt;

/// One step of a key path: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A key path such as `workspaces.acme.routes[0].to[1]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(Vec<Seg>);

impl KeyPath {
    pub(crate) fn root() -> Self {
        KeyPath(Vec::new())
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        KeyPath(segs)
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }

    pub(crate) fn segs(&self) -> &[Seg] {
        &self.0
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) if i == 0 => f.write_str(key)?,
                Seg::Key(key) => write!(f, ".{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Item,
    Key(String),
}

/// A block-structure node start: a `- ` item or a `key:` at a column on a line.
#[derive(Debug)]
struct Node {
    line: usize,
    col: usize,
    kind: Kind,
}

/// The block structure of a YAML text, enough to turn a key path into a line number.
pub(crate) struct Locator {
    nodes: Vec<Node>,
}

impl Locator {
    pub(crate) fn new(text: &str) -> Self {
        let mut nodes = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let content = raw.trim_start_matches(' ');
            let mut col = raw.len() - content.len();
            let mut rest = content;
            if rest.is_empty() || rest.starts_with(['#', '%']) || rest.starts_with("---") {
                continue;
            }
            // One line may open several nodes: `- - key: v` is two items and a key.
            loop {
                if rest == "-" || rest.starts_with("- ") {
                    nodes.push(Node {
                        line: i + 1,
                        col,
                        kind: Kind::Item,
                    });
                    let after = rest[1..].trim_start_matches(' ');
                    col += rest.len() - after.len();
                    rest = after;
                    continue;
                }
                if let Some(key) = key_of(rest) {
                    nodes.push(Node {
                        line: i + 1,
                        col,
                        kind: Kind::Key(key),
                    });
                }
                break;
            }
        }
        Locator { nodes }
    }

    /// The line (1-based) of the deepest part of `path` found in the text.
    pub(crate) fn line(&self, path: &KeyPath) -> Option<usize> {
        let mut range = 0..self.nodes.len();
        let mut found = None;
        for seg in path.segs() {
            let Some(first) = self.nodes.get(range.start).filter(|_| !range.is_empty()) else {
                break;
            };
            // The first node of a block collection sets the column all its entries share.
            let col = first.col;
            let mut at_col = range.clone().filter(|&n| self.nodes[n].col == col);
            let hit = match seg {
                Seg::Key(key) => at_col.find(|&n| self.nodes[n].kind == Kind::Key(key.clone())),
                Seg::Index(index) => at_col
                    .filter(|&n| self.nodes[n].kind == Kind::Item)
                    .nth(*index),
            };
            let Some(n) = hit else { break };
            found = Some(self.nodes[n].line);
            let end = (n + 1..range.end)
                .find(|&m| ends(&self.nodes[n], &self.nodes[m]))
                .unwrap_or(range.end);
            range = n + 1..end;
        }
        found
    }
}

/// Whether `next` is past the value of `node`.
fn ends(node: &Node, next: &Node) -> bool {
    match node.kind {
        // A sequence may sit at its key's own column (`to:` then `- crm` below it).
        Kind::Key(_) => next.col < node.col || (next.col == node.col && next.kind != Kind::Item),
        Kind::Item => next.col <= node.col,
    }
}

/// The key a line starts with, if it is a block mapping entry (`key:` or `key: value`).
fn key_of(content: &str) -> Option<String> {
    let (key, rest) = match content.chars().next()? {
        quote @ ('"' | '\'') => {
            let body = &content[1..];
            let close = body.find(quote)?;
            (body[..close].to_owned(), &body[close + 1..])
        }
        '{' | '[' | '#' | '&' | '*' | '!' | '|' | '>' | '?' => return None,
        _ => {
            let colon = content
                .char_indices()
                .find(|&(i, c)| c == ':' && ends_key(&content[i + 1..]))
                .map(|(i, _)| i)?;
            (content[..colon].trim_end().to_owned(), &content[colon..])
        }
    };
    let rest = rest.trim_start_matches(' ');
    (rest.starts_with(':') && ends_key(&rest[1..])).then_some(key)
}

/// A `:` ends a key only when followed by a space or the end of the line (`http://x` is no key).
fn ends_key(after: &str) -> bool {
    after.is_empty() || after.starts_with([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(segs: &[Seg]) -> KeyPath {
        KeyPath(segs.to_vec())
    }

    fn k(key: &str) -> Seg {
        Seg::Key(key.to_owned())
    }

    const TEXT: &str = "\
# comment
server:
  listen: 127.0.0.1:8080

workspaces:
  acme:
    vendors:
      watsi:
        secrets:
          - one
          - two
    routes:
    - match: { vendor: watsi }
      to: [crm]
    - to:
      - audit
      - \"log\"
    \"quoted key\": 1
";

    #[test]
    fn key_path_displays_with_dots_and_brackets() {
        let p = KeyPath::root()
            .key("workspaces")
            .key("acme")
            .key("to")
            .index(1);
        assert_eq!(p.to_string(), "workspaces.acme.to[1]");
    }

    #[test]
    fn finds_nested_keys_and_items() {
        let loc = Locator::new(TEXT);
        assert_eq!(loc.line(&path(&[k("server"), k("listen")])), Some(3));
        let secrets = [
            k("workspaces"),
            k("acme"),
            k("vendors"),
            k("watsi"),
            k("secrets"),
        ];
        assert_eq!(loc.line(&path(&secrets)), Some(9));
        let mut second = secrets.to_vec();
        second.push(Seg::Index(1));
        assert_eq!(loc.line(&path(&second)), Some(11));
    }

    #[test]
    fn indentless_sequences_and_keys_beside_dashes() {
        let loc = Locator::new(TEXT);
        let routes = [k("workspaces"), k("acme"), k("routes")];
        let at = |extra: &[Seg]| loc.line(&path(&[&routes[..], extra].concat()));
        assert_eq!(at(&[Seg::Index(0), k("match")]), Some(13));
        assert_eq!(at(&[Seg::Index(0), k("to")]), Some(14));
        assert_eq!(at(&[Seg::Index(1), k("to"), Seg::Index(1)]), Some(17));
        assert_eq!(at(&[]), Some(12));
        assert_eq!(
            loc.line(&path(&[k("workspaces"), k("acme"), k("quoted key")])),
            Some(18)
        );
    }

    #[test]
    fn falls_back_to_the_nearest_parent_line() {
        let loc = Locator::new(TEXT);
        let flow = [
            k("workspaces"),
            k("acme"),
            k("routes"),
            Seg::Index(0),
            k("to"),
            Seg::Index(0),
        ];
        assert_eq!(loc.line(&path(&flow)), Some(14));
        assert_eq!(loc.line(&path(&[k("server"), k("missing")])), Some(2));
        assert_eq!(loc.line(&path(&[k("nowhere")])), None);
    }

    #[test]
    fn colons_inside_values_are_not_keys() {
        assert_eq!(key_of("url: http://x:80/a"), Some("url".to_owned()));
        assert_eq!(key_of("http://x"), None);
        assert_eq!(key_of("\"a: b\": c"), Some("a: b".to_owned()));
        assert_eq!(key_of("{ a: b }"), None);
    }
}
