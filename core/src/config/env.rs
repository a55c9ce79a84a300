//! `${NAME}` and `${NAME:-default}` expansion in every string value of the parsed YAML, and
//! `${file:/path}`: the contents of a file (a Docker or Kubernetes secret, a systemd credential),
//! less its trailing newline, so secrets need not sit in the environment.
//!
//! On the same walk, mapping keys written as numbers or booleans become strings, so a workspace
//! named `2024` is a name like any other.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::locate::KeyPath;

/// Where variables are read from: `std::env` in production, a closure in tests.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

#[derive(Debug, Default)]
pub(crate) struct Expanded {
    /// Every problem found, at the key path of the string that has it.
    pub(crate) problems: Vec<(KeyPath, String)>,
    /// For each string whose value used a default (by displayed key path), the variables.
    pub(crate) defaulted: BTreeMap<String, Vec<String>>,
}

/// Expands every string scalar of `value` in place; a string with a problem is left as written.
pub(crate) fn expand_tree(value: &mut Value, env: Env<'_>) -> Expanded {
    let mut out = Expanded::default();
    walk(value, &KeyPath::root(), env, &mut out);
    out
}

fn walk(value: &mut Value, at: &KeyPath, env: Env<'_>, out: &mut Expanded) {
    match value {
        Value::String(text) => match expand(text, env) {
            Ok((expanded, defaulted)) => {
                *text = expanded;
                if !defaulted.is_empty() {
                    out.defaulted.insert(at.to_string(), defaulted);
                }
            }
            Err(problems) => out
                .problems
                .extend(problems.into_iter().map(|p| (at.clone(), p))),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &at.index(i), env, out);
            }
        }
        Value::Mapping(map) => {
            for (key, mut item) in std::mem::take(map) {
                let key = match key {
                    Value::Number(n) => Value::String(n.to_string()),
                    Value::Bool(b) => Value::String(b.to_string()),
                    other => other,
                };
                let name = key.as_str().unwrap_or("?");
                walk(&mut item, &at.key(name), env, out);
                map.insert(key, item);
            }
        }
        Value::Tagged(tagged) => walk(&mut tagged.value, at, env, out),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

const ESCAPE_HINT: &str = "write $${ for a literal ${";

/// Expands one string. Returns the text and the variables whose default was used, or every
/// problem. Messages name variables but never quote the text: it may be a secret.
fn expand(text: &str, env: Env<'_>) -> Result<(String, Vec<String>), Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut defaulted = Vec::new();
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(open) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(close) = open.find('}') else {
            problems.push(format!("`${{` is not closed by `}}` ({ESCAPE_HINT})"));
            rest = "";
            break;
        };
        let body = &open[..close];
        rest = &open[close + 1..];
        if let Some(path) = body.strip_prefix("file:") {
            match read_file(path) {
                Ok(contents) => out.push_str(&contents),
                Err(problem) => problems.push(problem),
            }
            continue;
        }
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if !is_var_name(name) {
            problems.push(format!(
                "`${{` must be followed by a variable name (letters, digits and `_`) and `}}` \
                 ({ESCAPE_HINT})"
            ));
            continue;
        }
        // As in the shell, `:-` also applies when the variable is set but empty.
        let value = env(name).filter(|v| !v.is_empty() || default.is_none());
        match (value, default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => {
                out.push_str(default);
                defaulted.push(name.to_owned());
            }
            (None, None) => problems.push(format!(
                "environment variable {name} is not set (write ${{{name}:-value}} to give a default)"
            )),
        }
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok((out, defaulted))
    } else {
        Err(problems)
    }
}

/// A `${file:/path}`'s contents. The path is absolute: relative to what would be unclear once
/// files are included from other directories. Problems name the file, never its contents.
fn read_file(path: &str) -> Result<String, String> {
    let path = std::path::Path::new(path);
    if !path.is_absolute() {
        return Err(format!(
            "`${{file:{}}}` needs an absolute path, such as ${{file:/run/secrets/acme-watsi}}",
            path.display()
        ));
    }
    let contents = std::fs::read_to_string(path).map_err(|error| {
        format!(
            "cannot read {} for `${{file:...}}`: {error}",
            path.display()
        )
    })?;
    // `echo secret > file` and editors end the file with a newline that is not part of it.
    Ok(contents.trim_end_matches(['\n', '\r']).to_owned())
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("crm.internal".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        let (text, defaulted) = expand("http://${HOST}:${PORT:-80}/x", &env).unwrap();
        assert_eq!(text, "http://crm.internal:80/x");
        assert_eq!(defaulted, ["PORT"]);
    }

    #[test]
    fn default_applies_to_an_empty_variable_too() {
        assert_eq!(
            expand("${EMPTY:-d}", &env).unwrap(),
            ("d".to_owned(), vec!["EMPTY".to_owned()])
        );
        assert_eq!(expand("${EMPTY}", &env).unwrap(), (String::new(), vec![]));
    }

    #[test]
    fn lone_dollars_and_escapes_stay_literal() {
        assert_eq!(expand("a$b $ $${HOST}", &env).unwrap().0, "a$b $ ${HOST}");
        assert_eq!(expand("${X:-a:-b}", &env).unwrap().0, "a:-b");
    }

    #[test]
    fn every_unset_variable_is_reported() {
        let problems = expand("${A}-${HOST}-${B}", &env).unwrap_err();
        assert_eq!(problems.len(), 2);
        assert!(problems[0].contains("environment variable A is not set"));
        assert!(problems[1].contains("${B:-value}"));
    }

    #[test]
    fn malformed_references_are_errors_that_do_not_quote_the_text() {
        let problems = expand("pa55${ word", &env).unwrap_err();
        assert!(problems[0].contains("not closed"));
        let problems = expand("x${pa55 word}", &env).unwrap_err();
        assert!(problems[0].contains("variable name"));
        assert!(!problems[0].contains("pa55"));
    }

    #[test]
    fn file_references_read_the_file_less_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret-from-a-file\n").unwrap();
        let text = format!("pre-${{file:{}}}-${{HOST}}", path.display());
        let (expanded, defaulted) = expand(&text, &env).unwrap();
        assert_eq!(expanded, "pre-s3cret-from-a-file-crm.internal");
        assert!(defaulted.is_empty());

        let missing = dir.path().join("missing");
        let problems = expand(&format!("${{file:{}}}", missing.display()), &env).unwrap_err();
        assert!(
            problems[0].starts_with(&format!("cannot read {} for", missing.display())),
            "{problems:?}"
        );
        let problems = expand("${file:secrets/x}", &env).unwrap_err();
        assert!(
            problems[0].contains("needs an absolute path"),
            "{problems:?}"
        );
    }

    #[test]
    fn tree_walk_records_paths_and_stringifies_keys() {
        let mut value: Value =
            serde_yaml::from_str("2024:\n  s: [\"${A:-x}\", \"${B}\"]\n").unwrap();
        let out = expand_tree(&mut value, &env);
        assert_eq!(out.defaulted["2024.s[0]"], ["A"]);
        assert_eq!(out.problems.len(), 1);
        assert_eq!(out.problems[0].0.to_string(), "2024.s[1]");
        assert_eq!(value["2024"]["s"][0], Value::String("x".to_owned()));
    }
}
