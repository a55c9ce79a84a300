//! Reading a YAML value key by key: every unknown key and wrong type is reported, and reading
//! goes on around it. A value of the wrong type is named by its kind, never quoted: it may be a
//! secret. [`super::raw`] reads routes.yaml's shapes with it.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::error::Problems;
use super::locate::{kind, KeyPath};

pub(super) struct Reader<'a> {
    pub(super) problems: &'a mut Problems,
}

/// The entries of one mapping, handed out by key; what is never asked for is unknown.
pub(super) struct Fields {
    pub(super) at: KeyPath,
    entries: Vec<(String, Value)>,
    known: Vec<&'static str>,
}

impl Fields {
    /// The value at `key`; an explicit null is as good as absent.
    pub(super) fn take(&mut self, key: &'static str) -> Option<Value> {
        self.known.push(key);
        let index = self.entries.iter().position(|(name, _)| name == key)?;
        Some(self.entries.swap_remove(index).1).filter(|value| !value.is_null())
    }
}

impl Reader<'_> {
    /// The entries of a mapping; none (after a problem) if `value` is something else.
    pub(super) fn fields(&mut self, at: &KeyPath, value: Value, expecting: &str) -> Fields {
        let entries = self
            .mapping(at, value, expecting)
            .map(|mapping| self.entries(at, mapping))
            .unwrap_or_default();
        Fields {
            at: at.clone(),
            entries,
            known: Vec::new(),
        }
    }

    /// Reports every key of `fields` that was never asked for.
    pub(super) fn finish(&mut self, fields: Fields) {
        let expected: Vec<String> = fields.known.iter().map(|k| format!("`{k}`")).collect();
        for (key, _) in fields.entries {
            let message = format!(
                "unknown field `{key}`, expected one of {}",
                expected.join(", ")
            );
            self.problems.add_settled(&fields.at.key(&key), message);
        }
    }

    /// A mapping of names to what `read` makes of each value. A value that is not what it
    /// should be still yields its name (read from nothing), so it counts as defined.
    pub(super) fn map<T>(
        &mut self,
        at: &KeyPath,
        value: Value,
        expecting: &str,
        mut read: impl FnMut(&mut Self, &KeyPath, Value) -> T,
    ) -> BTreeMap<String, T> {
        let Some(mapping) = self.mapping(at, value, expecting) else {
            return BTreeMap::new();
        };
        (self.entries(at, mapping).into_iter())
            .map(|(name, value)| {
                let item = read(self, &at.key(&name), value);
                (name, item)
            })
            .collect()
    }

    pub(super) fn list<T>(
        &mut self,
        at: &KeyPath,
        value: Value,
        expecting: &str,
        mut read: impl FnMut(&mut Self, &KeyPath, Value) -> T,
    ) -> Vec<T> {
        match value {
            Value::Sequence(items) => (items.into_iter().enumerate())
                .map(|(i, item)| read(self, &at.index(i), item))
                .collect(),
            other => {
                self.wrong(at, expecting, &other);
                Vec::new()
            }
        }
    }

    /// A null (`watsi:` with nothing after it) reads as an empty mapping, so what it lacks is
    /// named key by key.
    pub(super) fn mapping(
        &mut self,
        at: &KeyPath,
        value: Value,
        expecting: &str,
    ) -> Option<Mapping> {
        match value {
            Value::Mapping(mapping) => Some(mapping),
            Value::Null => Some(Mapping::new()),
            other => {
                self.wrong(at, expecting, &other);
                None
            }
        }
    }

    /// A mapping's entries by name. `env` has already turned number and boolean keys into
    /// strings; any other key cannot name anything.
    pub(super) fn entries(&mut self, at: &KeyPath, mapping: Mapping) -> Vec<(String, Value)> {
        (mapping.into_iter())
            .filter_map(|(key, value)| match key {
                Value::String(name) => Some((name, value)),
                other => {
                    let message = format!("expected a name as key, found {}", kind(&other));
                    self.problems.add(at, message);
                    None
                }
            })
            .collect()
    }

    pub(super) fn string(&mut self, at: &KeyPath, value: Option<Value>) -> Option<String> {
        match value? {
            Value::String(text) => Some(text),
            other => {
                self.wrong(at, "a string", &other);
                None
            }
        }
    }

    pub(super) fn wrong(&mut self, at: &KeyPath, expecting: &str, found: &Value) {
        let message = format!("expected {expecting}, found {}", kind(found));
        self.problems.add_settled(at, message);
    }
}
