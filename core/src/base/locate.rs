//! Key paths, and finding the line a key path sits on in the raw YAML text: for routes.yaml
//! (`config`) and vendor definitions (`plugins::definition`).
//!
//! serde_yaml's `Value` keeps no positions, so the text is read a second time with yaml-rust2's
//! event parser, whose events carry their line: one pass records where every mapping entry and
//! sequence item starts, block or flow style alike. The same pass bounds nesting, before
//! serde_yaml ever sees the text: libyaml's scanner does work proportional to the flow depth
//! for every token, so a deeply nested file would take time quadratic in its size.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, Parser};

/// Collections nested deeper than this are refused. serde_yaml refuses them as well (its
/// recursion limit is 128); a routes file needs 6.
pub(crate) const MAX_DEPTH: usize = 127;

/// One step of a key path: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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

    /// Each prefix of the path as displayed, shortest first: ``, `a`, `a.b`, `a.b[0]`.
    pub(crate) fn shown_prefixes(&self) -> impl Iterator<Item = String> + '_ {
        (0..=self.0.len()).map(|n| KeyPath(self.0[..n].to_vec()).to_string())
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

/// Node 0 is the document's root; every other node is a mapping entry or a sequence item.
const ROOT: usize = 0;

/// The tree of the first YAML document's nodes, enough to turn a key path into a line number.
pub(crate) struct Locator {
    /// The line (1-based) of each node: a mapping entry's key, a sequence item's first token.
    lines: Vec<usize>,
    /// `(parent node, step)` to the child node.
    children: HashMap<(usize, Seg), usize>,
    /// The line where nesting first went past [`MAX_DEPTH`]; nothing after it was read.
    too_deep: Option<usize>,
}

/// An open collection while the events are read.
enum Open {
    Seq {
        node: usize,
        next: usize,
    },
    /// `key`: the key just read, awaiting its value (`None` inside: a key that is no scalar).
    Map {
        node: usize,
        key: Option<(Option<String>, usize)>,
    },
}

impl Locator {
    /// Reads `text` once. Text yaml-rust2 cannot read is indexed up to that point: serde_yaml
    /// reports the syntax error itself.
    pub(crate) fn new(text: &str) -> Self {
        let mut locator = Locator {
            lines: vec![1],
            children: HashMap::new(),
            too_deep: None,
        };
        let mut parser = Parser::new_from_str(text);
        let mut open: Vec<Open> = Vec::new();
        loop {
            let (event, mark) = match parser.next_token() {
                Ok(next) => next,
                // yaml-rust2 allows 255 flow levels and scans ahead of the events, so a deep
                // flow collection can end the reading before the events reach MAX_DEPTH.
                Err(error) if error.info() == "recursion limit exceeded" => {
                    locator.too_deep = Some(error.marker().line());
                    break;
                }
                Err(_) => break,
            };
            let line = mark.line();
            let collection = match event {
                Event::SequenceStart(..) | Event::MappingStart(..) => true,
                Event::Scalar(..) | Event::Alias(_) => false,
                Event::SequenceEnd | Event::MappingEnd => {
                    open.pop();
                    if open.is_empty() {
                        break; // the first document's root is complete
                    }
                    continue;
                }
                Event::StreamEnd => break,
                _ => continue,
            };
            let node = match open.last_mut() {
                None => {
                    locator.lines[ROOT] = line;
                    Some(ROOT)
                }
                Some(Open::Seq { node, next }) => {
                    *next += 1;
                    Some(locator.child(*node, Seg::Index(*next - 1), line))
                }
                Some(Open::Map {
                    key: key @ None, ..
                }) => {
                    let name = match &event {
                        Event::Scalar(name, ..) => Some(name.clone()),
                        _ => None,
                    };
                    *key = Some((name, line));
                    None
                }
                Some(Open::Map { node, key }) => match key.take() {
                    Some((Some(name), key_line)) => {
                        Some(locator.child(*node, Seg::Key(name), key_line))
                    }
                    _ => None,
                },
            };
            if !collection {
                if open.is_empty() {
                    break; // the root is a scalar
                }
                continue;
            }
            if open.len() == MAX_DEPTH {
                locator.too_deep = Some(line);
                break;
            }
            // A collection used as a key gets a node nothing points to: no path reaches it.
            let node = node.unwrap_or_else(|| locator.node(line));
            open.push(match event {
                Event::SequenceStart(..) => Open::Seq { node, next: 0 },
                _ => Open::Map { node, key: None },
            });
        }
        locator
    }

    fn node(&mut self, line: usize) -> usize {
        self.lines.push(line);
        self.lines.len() - 1
    }

    /// A new child of `parent`; a duplicate key keeps its first place, as serde_yaml refuses it.
    fn child(&mut self, parent: usize, seg: Seg, line: usize) -> usize {
        let node = self.node(line);
        *self.children.entry((parent, seg)).or_insert(node)
    }

    /// The line (1-based) of the deepest part of `path` found in the text; `None` when not even
    /// its first step is there (a key missing at the top level, say).
    pub(crate) fn line(&self, path: &KeyPath) -> Option<usize> {
        let mut node = ROOT;
        let mut found = None;
        for seg in &path.0 {
            let Some(&child) = self.children.get(&(node, seg.clone())) else {
                break;
            };
            node = child;
            found = Some(self.lines[node]);
        }
        found
    }

    /// Where nesting went past [`MAX_DEPTH`], if it did.
    pub(crate) fn too_deep(&self) -> Option<usize> {
        self.too_deep
    }
}

/// What a YAML value is, for messages that must not quote it (it may be a secret).
pub fn kind(value: &serde_yaml::Value) -> &'static str {
    use serde_yaml::Value;
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
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
        let prefixes: Vec<String> = p.shown_prefixes().collect();
        assert_eq!(
            prefixes,
            [
                "",
                "workspaces",
                "workspaces.acme",
                "workspaces.acme.to",
                "workspaces.acme.to[1]"
            ]
        );
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
    fn enters_flow_collections_spread_over_lines() {
        let text = "\
routes:
  - match: { vendor: [watsi,
                      wappcloud],
             type: \"message.*\" }
    to: [crm,
         audit]
sinks: {
  crm: { type: http,
         url: x } }
";
        let loc = Locator::new(text);
        let route = [k("routes"), Seg::Index(0)];
        let at = |extra: &[Seg]| loc.line(&path(&[&route[..], extra].concat()));
        assert_eq!(at(&[k("match"), k("vendor"), Seg::Index(0)]), Some(2));
        assert_eq!(at(&[k("match"), k("vendor"), Seg::Index(1)]), Some(3));
        assert_eq!(at(&[k("match"), k("type")]), Some(4));
        assert_eq!(at(&[k("to"), Seg::Index(1)]), Some(6));
        let url = [k("sinks"), k("crm"), k("url")];
        assert_eq!(loc.line(&path(&url)), Some(9));
    }

    #[test]
    fn falls_back_to_the_nearest_parent_line() {
        let loc = Locator::new(TEXT);
        let past_the_end = [
            k("workspaces"),
            k("acme"),
            k("routes"),
            Seg::Index(0),
            k("to"),
            Seg::Index(5),
        ];
        assert_eq!(loc.line(&path(&past_the_end)), Some(14));
        assert_eq!(loc.line(&path(&[k("server"), k("missing")])), Some(2));
        assert_eq!(loc.line(&path(&[k("nowhere")])), None);
    }

    #[test]
    fn keys_that_are_collections_lead_nowhere() {
        let loc = Locator::new("? [a, b]\n: { c: 1 }\nd: 2\n");
        assert_eq!(loc.line(&path(&[k("c")])), None);
        assert_eq!(loc.line(&path(&[k("d")])), Some(3));
    }

    #[test]
    fn nesting_past_the_limit_is_found_and_reading_stops_there() {
        let ok = format!(
            "a: {}{}\n",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert_eq!(Locator::new(&ok).too_deep(), None);
        let deep = format!("a:\n  {}{}\n", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(Locator::new(&deep).too_deep(), Some(2));
        // Deeper than yaml-rust2's own flow limit: its scanner stops before the events do.
        let deeper = format!("a:\n\n  {}\n", "[".repeat(300));
        assert_eq!(Locator::new(&deeper).too_deep(), Some(3));
        let mut block = String::new();
        for depth in 0..MAX_DEPTH + 10 {
            block.push_str(&format!("{}k{depth}:\n", " ".repeat(depth)));
        }
        assert_eq!(Locator::new(&block).too_deep(), Some(MAX_DEPTH + 1));
    }
}
