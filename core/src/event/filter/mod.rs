//! Payload filters: a route's `match.where`, conditions on an envelope's fields by dot path
//! (`data.status`, `vendor_event_id`, `raw.entry.0.id`), composed with `all`, `any` and `not`.
//!
//! A filter is compiled once, when routes.yaml is checked ([`compile`]), into a tree whose
//! leaves are a path (split into steps) and a test with its operand already parsed (numbers,
//! RFC 3339 times), so evaluating it against an event is a few map lookups and comparisons.
//! The event is the envelope parsed once as JSON, whatever the number of routes.

mod compile;

use std::fmt;

use serde_json::Value;

pub use compile::{compile, FilterProblem, Step as ProblemStep};

/// The envelope fields a path may start with.
pub const FIELDS: [&str; 12] = [
    "id",
    "workspace",
    "vendor",
    "type",
    "vendor_type",
    "vendor_event_id",
    "dedupe_key",
    "dedupe_basis",
    "occurred_at",
    "received_at",
    "data",
    "raw",
];

/// A compiled `where`: every condition of its mapping must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Node,
}

// Operands are never NaN (compile refuses it), so equality is an equivalence.
impl Eq for Filter {}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Test(Path, Test),
}

/// A dot path: `data.status` is the steps `data`, `status`. A step that is a whole number also
/// indexes a list.
#[derive(Debug, Clone, PartialEq)]
struct Path {
    text: String,
    steps: Vec<(String, Option<usize>)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    Equals(Scalar),
    In(Vec<Scalar>),
    NotIn(Vec<Scalar>),
    /// Present and not null.
    Exists(bool),
    Prefix(String),
    Suffix(String),
    /// A substring of a string, or an item of a list.
    Contains(Scalar),
    Compare(Order, Bound),
}

#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Order {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, PartialEq)]
enum Bound {
    Number(f64),
    /// An RFC 3339 time, as nanoseconds since the epoch, and as written.
    Time(i128, String),
}

impl Filter {
    /// Whether `event` (an envelope as JSON) satisfies every condition.
    pub fn matches(&self, event: &Value) -> bool {
        self.root.holds(event)
    }

    /// `None` when `event` matches; else the first condition that does not hold, with what the
    /// event has there: `data.status is "delivered", not one of [failed, undelivered]`.
    pub fn explain(&self, event: &Value) -> Option<String> {
        self.root.miss(event)
    }
}

impl Node {
    fn holds(&self, event: &Value) -> bool {
        match self {
            Node::All(nodes) => nodes.iter().all(|n| n.holds(event)),
            Node::Any(nodes) => nodes.iter().any(|n| n.holds(event)),
            Node::Not(node) => !node.holds(event),
            Node::Test(path, test) => test.holds(path.find(event)),
        }
    }

    fn miss(&self, event: &Value) -> Option<String> {
        match self {
            Node::All(nodes) => nodes.iter().find_map(|n| n.miss(event)),
            Node::Any(nodes) => {
                let misses: Vec<String> = nodes.iter().map_while(|n| n.miss(event)).collect();
                (misses.len() == nodes.len())
                    .then(|| format!("none of `any` holds: {}", misses.join("; ")))
            }
            Node::Not(node) => node.holds(event).then(|| format!("`not` fails: {node}")),
            Node::Test(path, test) => {
                let found = path.find(event);
                (!test.holds(found)).then(|| {
                    let has = found.map_or_else(|| "absent".to_owned(), |v| format!("is {v}"));
                    format!("{} {has}, {}", path.text, test.expected())
                })
            }
        }
    }
}

impl Path {
    fn find<'v>(&self, event: &'v Value) -> Option<&'v Value> {
        let mut at = event;
        for (key, index) in &self.steps {
            at = match at {
                Value::Object(map) => map.get(key)?,
                Value::Array(items) => items.get((*index)?)?,
                _ => return None,
            };
        }
        Some(at)
    }
}

impl Test {
    fn holds(&self, found: Option<&Value>) -> bool {
        match self {
            Test::Exists(wanted) => found.is_some_and(|v| !v.is_null()) == *wanted,
            Test::NotIn(values) => found.is_none_or(|v| !values.iter().any(|s| s.equals(v))),
            _ => found.is_some_and(|v| self.holds_for(v)),
        }
    }

    fn holds_for(&self, value: &Value) -> bool {
        match self {
            Test::Equals(scalar) => scalar.equals(value),
            Test::In(values) => values.iter().any(|s| s.equals(value)),
            Test::Prefix(text) => value.as_str().is_some_and(|v| v.starts_with(text.as_str())),
            Test::Suffix(text) => value.as_str().is_some_and(|v| v.ends_with(text.as_str())),
            Test::Contains(scalar) => match (value, scalar) {
                (Value::String(v), Scalar::String(text)) => v.contains(text.as_str()),
                (Value::Array(items), _) => items.iter().any(|item| scalar.equals(item)),
                _ => false,
            },
            Test::Compare(order, bound) => {
                let ordering = match bound {
                    Bound::Number(n) => value.as_f64().and_then(|v| v.partial_cmp(n)),
                    Bound::Time(t, _) => value
                        .as_str()
                        .and_then(compile::rfc3339_nanos)
                        .map(|v| v.cmp(t)),
                };
                ordering.is_some_and(|o| order.accepts(o))
            }
            Test::Exists(_) | Test::NotIn(_) => self.holds(Some(value)),
        }
    }

    /// What the test wanted, for [`Filter::explain`].
    fn expected(&self) -> String {
        match self {
            Test::Equals(s) => format!("not {s}"),
            Test::In(values) => format!("not one of [{}]", listing(values)),
            Test::NotIn(values) => format!("one of [{}]", listing(values)),
            Test::Exists(true) => "expected it to exist".to_owned(),
            Test::Exists(false) => "expected it absent or null".to_owned(),
            Test::Prefix(text) => format!("does not start with {text:?}"),
            Test::Suffix(text) => format!("does not end with {text:?}"),
            Test::Contains(s) => format!("does not contain {s}"),
            Test::Compare(order, bound) => format!("not {} {bound}", order.word()),
        }
    }
}

impl Scalar {
    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (Scalar::Null, Value::Null) => true,
            (Scalar::Bool(a), Value::Bool(b)) => a == b,
            (Scalar::Number(a), Value::Number(b)) => b.as_f64() == Some(*a),
            (Scalar::String(a), Value::String(b)) => a == b,
            _ => false,
        }
    }
}

impl Order {
    fn accepts(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Greater, Less};
        match self {
            Order::Gt => ordering == Greater,
            Order::Gte => ordering != Less,
            Order::Lt => ordering == Less,
            Order::Lte => ordering != Greater,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Order::Gt => "greater than",
            Order::Gte => "at least",
            Order::Lt => "less than",
            Order::Lte => "at most",
        }
    }
}

fn listing(values: &[Scalar]) -> String {
    values
        .iter()
        .map(Scalar::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Null => f.write_str("null"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Number(n) => write!(f, "{n}"),
            Scalar::String(s) => write!(f, "{s:?}"),
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Number(n) => write!(f, "{n}"),
            Bound::Time(_, text) => f.write_str(text),
        }
    }
}

/// A condition as routes.yaml could write it, for `not`'s explanation.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, word: &str, nodes: &[Node]| {
            let parts: Vec<String> = nodes.iter().map(Node::to_string).collect();
            write!(f, "{word}[{}]", parts.join(", "))
        };
        match self {
            Node::All(nodes) => join(f, "", nodes),
            Node::Any(nodes) => join(f, "any", nodes),
            Node::Not(node) => write!(f, "not {node}"),
            Node::Test(path, test) => {
                let (op, operand) = match test {
                    Test::Equals(s) => ("equals", s.to_string()),
                    Test::In(v) => ("in", format!("[{}]", listing(v))),
                    Test::NotIn(v) => ("not_in", format!("[{}]", listing(v))),
                    Test::Exists(b) => ("exists", b.to_string()),
                    Test::Prefix(t) => ("prefix", format!("{t:?}")),
                    Test::Suffix(t) => ("suffix", format!("{t:?}")),
                    Test::Contains(s) => ("contains", s.to_string()),
                    Test::Compare(o, b) => (o.op(), b.to_string()),
                };
                write!(f, "{} {op} {operand}", path.text)
            }
        }
    }
}

impl Order {
    fn op(self) -> &'static str {
        match self {
            Order::Gt => "gt",
            Order::Gte => "gte",
            Order::Lt => "lt",
            Order::Lte => "lte",
        }
    }
}

#[cfg(test)]
mod tests;
