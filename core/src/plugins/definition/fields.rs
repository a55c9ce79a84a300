//! Reading a YAML value key by key, for definitions: every unknown key and wrong type is
//! reported on its line, and reading goes on around it (as routes.yaml's reader does).

use hyper::header::HeaderName;
use serde_yaml::Value;

use super::problems::Problems;
use crate::base::locate::KeyPath;

/// One mapping's entries, handed out by key; those never asked for are reported as unknown.
pub(super) struct Fields {
    pub(super) at: KeyPath,
    entries: Vec<(String, Value)>,
    known: Vec<&'static str>,
}

impl Fields {
    /// The entries of `value`, a mapping (a problem and none when it is not).
    pub(super) fn of(at: &KeyPath, value: Value, p: &mut Problems) -> Fields {
        let entries = match value {
            Value::Mapping(mapping) => (mapping.into_iter())
                .filter_map(|(key, value)| match key {
                    Value::String(key) => Some((key, value)),
                    other => {
                        p.add(
                            at,
                            format!("expected a name as key, found {}", kind(&other)),
                        );
                        None
                    }
                })
                .collect(),
            Value::Null => Vec::new(),
            other => {
                p.add(at, format!("expected a mapping, found {}", kind(&other)));
                Vec::new()
            }
        };
        Fields {
            at: at.clone(),
            entries,
            known: Vec::new(),
        }
    }

    /// The value at `key`; null is as good as absent.
    pub(super) fn take(&mut self, key: &'static str) -> Option<Value> {
        self.known.push(key);
        let index = self.entries.iter().position(|(name, _)| name == key)?;
        Some(self.entries.swap_remove(index).1).filter(|v| !v.is_null())
    }

    /// The value at `key`, null included.
    pub(super) fn take_with_null(&mut self, key: &'static str) -> Option<Value> {
        self.known.push(key);
        let index = self.entries.iter().position(|(name, _)| name == key)?;
        Some(self.entries.swap_remove(index).1)
    }

    /// The rest, by name, for mappings whose keys are names the definition chooses.
    pub(super) fn rest(&mut self) -> Vec<(String, Value)> {
        std::mem::take(&mut self.entries)
    }

    pub(super) fn finish(self, p: &mut Problems) {
        let expected: Vec<String> = self.known.iter().map(|k| format!("`{k}`")).collect();
        for (key, _) in self.entries {
            let message = format!(
                "unknown key `{key}`, expected one of {}",
                expected.join(", ")
            );
            p.add(&self.at.key(&key), message);
        }
    }
}

pub(super) use crate::base::locate::kind;

pub(super) fn string(at: &KeyPath, value: Value, p: &mut Problems) -> Option<String> {
    match value {
        Value::String(text) => Some(text),
        other => {
            p.add(at, format!("expected a string, found {}", kind(&other)));
            None
        }
    }
}

pub(super) fn header(at: &KeyPath, value: Value, p: &mut Problems) -> Option<HeaderName> {
    let name = string(at, value, p)?;
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(header) => Some(header),
        Err(_) => {
            p.add(at, format!("{name:?} is not a valid header name"));
            None
        }
    }
}

/// One of `choices`, by name.
pub(super) fn choice<T: Copy>(
    at: &KeyPath,
    value: Value,
    choices: &[(&str, T)],
    what: &str,
    p: &mut Problems,
) -> Option<T> {
    let name = string(at, value, p)?;
    let found = choices.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    if found.is_none() {
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        p.add(
            at,
            format!(
                "unknown {what} `{name}`, expected one of {}",
                names.join(", ")
            ),
        );
    }
    found
}

pub(super) fn required(fields: &mut Fields, key: &'static str, p: &mut Problems) -> Option<Value> {
    let value = fields.take(key);
    if value.is_none() {
        p.add(&fields.at, format!("`{key}` is required"));
    }
    value
}
