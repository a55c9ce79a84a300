//! A `where` mapping from routes.yaml compiled into a [`Filter`], every problem reported at its
//! key below `where`: an unknown operator, a path no envelope has, an operand of the wrong kind
//! (a number given to `prefix`, text that is no time given to `gt`).

use serde_yaml::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Bound, Filter, Node, Order, Path, Scalar, Test, FIELDS};

/// One step of a problem's key path below `where`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A problem with a `where`, at its key path below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterProblem {
    pub at: Vec<Step>,
    pub message: String,
}

const OPERATORS: &str =
    "in, not_in, exists, prefix, suffix, contains, gt, gte, lt or lte (or a value to equal)";
const TIME_OR_NUMBER: &str = "a number, or an RFC 3339 time such as \"2024-05-01T00:00:00Z\"";

/// Compiles `value`, the mapping under `where`.
pub fn compile(value: &Value) -> Result<Filter, Vec<FilterProblem>> {
    let mut compiler = Compiler {
        at: Vec::new(),
        problems: Vec::new(),
    };
    let root = compiler.conditions(value);
    if compiler.problems.is_empty() {
        Ok(Filter { root })
    } else {
        Err(compiler.problems)
    }
}

/// An RFC 3339 time as nanoseconds since the epoch.
pub(super) fn rfc3339_nanos(text: &str) -> Option<i128> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp_nanos)
}

struct Compiler {
    at: Vec<Step>,
    problems: Vec<FilterProblem>,
}

impl Compiler {
    fn problem(&mut self, message: impl Into<String>) {
        self.problems.push(FilterProblem {
            at: self.at.clone(),
            message: message.into(),
        });
    }

    /// `f` with `step` added to the key path.
    fn under<T>(&mut self, step: Step, f: impl FnOnce(&mut Self) -> T) -> T {
        self.at.push(step);
        let out = f(self);
        self.at.pop();
        out
    }

    /// A mapping of conditions, all of which must hold.
    fn conditions(&mut self, value: &Value) -> Node {
        let Value::Mapping(mapping) = value else {
            self.problem(
                "expected a mapping of conditions, such as { data.status: failed }, or \
                 all / any / not",
            );
            return Node::All(Vec::new());
        };
        if mapping.is_empty() {
            self.problem("no conditions: write at least one, such as { data.status: failed }");
        }
        let mut nodes = Vec::new();
        for (key, value) in mapping {
            let Some(key) = key.as_str() else {
                self.problem("expected a field path or all / any / not as key");
                continue;
            };
            let node = self.under(Step::Key(key.to_owned()), |c| match key {
                "all" => Node::All(c.list(value)),
                "any" => Node::Any(c.list(value)),
                "not" => Node::Not(Box::new(c.conditions(value))),
                path => {
                    let path = c.path(path);
                    c.tests(path, value)
                }
            });
            nodes.push(node);
        }
        single(nodes, Node::All)
    }

    /// `all` or `any`: a non-empty list of mappings of conditions.
    fn list(&mut self, value: &Value) -> Vec<Node> {
        match value {
            Value::Sequence(items) if !items.is_empty() => (items.iter().enumerate())
                .map(|(i, item)| self.under(Step::Index(i), |c| c.conditions(item)))
                .collect(),
            _ => {
                self.problem("expected a non-empty list of conditions, such as [{ type: a }]");
                Vec::new()
            }
        }
    }

    fn path(&mut self, text: &str) -> Path {
        let steps: Vec<(String, Option<usize>)> = text
            .split('.')
            .map(|step| (step.to_owned(), step.parse().ok()))
            .collect();
        let first = steps[0].0.as_str();
        if steps.iter().any(|(step, _)| step.is_empty()) {
            self.problem(format!(
                "invalid path {text:?}: steps are separated by single dots, such as data.status"
            ));
        } else if !FIELDS.contains(&first) {
            self.problem(format!(
                "unknown field `{first}`: a path starts with one of {}",
                FIELDS.join(", ")
            ));
        } else if steps.len() > 1 && !matches!(first, "data" | "raw") {
            self.problem(format!(
                "invalid path {text:?}: `{first}` is a single value; only data and raw have \
                 fields below them"
            ));
        }
        Path {
            text: text.to_owned(),
            steps,
        }
    }

    /// A path's value: a scalar to equal, or a mapping of operators that must all hold.
    fn tests(&mut self, path: Path, value: &Value) -> Node {
        let operators = match value {
            Value::Mapping(operators) => operators,
            Value::Sequence(_) => {
                self.problem("a list: write { in: [...] } to match any of several values");
                return Node::All(Vec::new());
            }
            scalar => {
                let test = self.scalar(scalar).map_or(Test::Exists(true), Test::Equals);
                return Node::Test(path, test);
            }
        };
        if operators.is_empty() {
            self.problem(format!("no operator: expected {OPERATORS}"));
        }
        let mut nodes = Vec::new();
        for (op, operand) in operators {
            let Some(op) = op.as_str() else {
                self.problem(format!("expected an operator as key: {OPERATORS}"));
                continue;
            };
            let test = self.under(Step::Key(op.to_owned()), |c| c.test(op, operand));
            if let Some(test) = test {
                nodes.push(Node::Test(path.clone(), test));
            }
        }
        single(nodes, Node::All)
    }

    fn test(&mut self, op: &str, operand: &Value) -> Option<Test> {
        Some(match op {
            "in" | "not_in" => {
                let values = self.scalars(operand)?;
                if op == "in" {
                    Test::In(values)
                } else {
                    Test::NotIn(values)
                }
            }
            "exists" => match operand {
                Value::Bool(wanted) => Test::Exists(*wanted),
                _ => {
                    self.problem("expected true or false");
                    return None;
                }
            },
            "prefix" | "suffix" => {
                let text = self.text(op, operand)?;
                if op == "prefix" {
                    Test::Prefix(text)
                } else {
                    Test::Suffix(text)
                }
            }
            "contains" => Test::Contains(self.scalar(operand)?),
            "gt" | "gte" | "lt" | "lte" => {
                let order = match op {
                    "gt" => Order::Gt,
                    "gte" => Order::Gte,
                    "lt" => Order::Lt,
                    _ => Order::Lte,
                };
                Test::Compare(order, self.bound(operand)?)
            }
            other => {
                self.problem(format!("unknown operator `{other}`: expected {OPERATORS}"));
                return None;
            }
        })
    }

    fn text(&mut self, op: &str, operand: &Value) -> Option<String> {
        match operand {
            Value::String(text) => Some(text.clone()),
            Value::Number(n) => {
                self.problem(format!(
                    "`{op}` matches text, and this is a number: quote it, such as \"{n}\" (a \
                     leading + or 0 is lost otherwise)"
                ));
                None
            }
            _ => {
                self.problem(format!("`{op}` matches text: expected a string"));
                None
            }
        }
    }

    fn bound(&mut self, operand: &Value) -> Option<Bound> {
        match operand {
            Value::Number(_) => match self.scalar(operand)? {
                Scalar::Number(n) => Some(Bound::Number(n)),
                _ => None,
            },
            Value::String(text) => match rfc3339_nanos(text) {
                Some(nanos) => Some(Bound::Time(nanos, text.clone())),
                None => {
                    self.problem(format!(
                        "{text:?} is neither: a comparison takes {TIME_OR_NUMBER}"
                    ));
                    None
                }
            },
            _ => {
                self.problem(format!("expected {TIME_OR_NUMBER}"));
                None
            }
        }
    }

    /// A non-empty list of scalars.
    fn scalars(&mut self, operand: &Value) -> Option<Vec<Scalar>> {
        match operand {
            Value::Sequence(items) if !items.is_empty() => {
                let values: Vec<Option<Scalar>> = (items.iter().enumerate())
                    .map(|(i, item)| self.under(Step::Index(i), |c| c.scalar(item)))
                    .collect();
                values.into_iter().collect()
            }
            _ => {
                self.problem("expected a non-empty list of values, such as [failed, undelivered]");
                None
            }
        }
    }

    fn scalar(&mut self, value: &Value) -> Option<Scalar> {
        match value {
            Value::Null => Some(Scalar::Null),
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            Value::String(text) => Some(Scalar::String(text.clone())),
            Value::Number(n) => match n.as_f64().filter(|n| !n.is_nan()) {
                Some(n) => Some(Scalar::Number(n)),
                None => {
                    self.problem("not a number: expected a finite number");
                    None
                }
            },
            Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => {
                self.problem("expected a single value: a string, number, boolean or null");
                None
            }
        }
    }
}

/// One node alone stays itself; several are joined.
fn single(mut nodes: Vec<Node>, join: fn(Vec<Node>) -> Node) -> Node {
    if nodes.len() == 1 {
        nodes.remove(0)
    } else {
        join(nodes)
    }
}
