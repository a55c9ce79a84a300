//! Name templates for broker sinks: a NATS subject (`webhooks.{workspace}.{type}`) or a Redis
//! stream key (`webhooks:{workspace}`), filled in per event from its envelope.
//!
//! `{workspace}`, `{vendor}` and `{type}` are the only placeholders; any other `{...}`, and any
//! brace outside a placeholder, is refused when the configuration is read.

use std::borrow::Cow;

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Workspace,
    Vendor,
    Type,
}

impl Field {
    const ALL: [(&'static str, Field); 3] = [
        ("workspace", Field::Workspace),
        ("vendor", Field::Vendor),
        ("type", Field::Type),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(Field),
}

/// A parsed template. Compares by its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("must not be empty")]
    Empty,
    #[error("unknown placeholder `{{{0}}}`: expected {{workspace}}, {{vendor}} or {{type}}")]
    UnknownPlaceholder(String),
    #[error("a `{{` is never closed: placeholders are {{workspace}}, {{vendor}} and {{type}}")]
    Unclosed,
    #[error("a `}}` closes nothing: braces are only for {{workspace}}, {{vendor}} and {{type}}")]
    StrayBrace,
    #[error("{0}")]
    Subject(&'static str),
}

/// The values one event fills a template with, from its envelope.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Fields<'a> {
    #[serde(borrow)]
    pub workspace: Cow<'a, str>,
    #[serde(borrow)]
    pub vendor: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    pub event_type: Cow<'a, str>,
}

impl<'a> Fields<'a> {
    /// Reads the fields from an envelope's JSON (the rest of it is skipped).
    pub fn of_envelope(envelope: &'a [u8]) -> Result<Fields<'a>, serde_json::Error> {
        serde_json::from_slice(envelope)
    }

    fn get(&self, field: Field) -> &str {
        match field {
            Field::Workspace => &self.workspace,
            Field::Vendor => &self.vendor,
            Field::Type => &self.event_type,
        }
    }
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            if rest.as_bytes()[i] == b'}' {
                return Err(TemplateError::StrayBrace);
            }
            literal.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let end = after.find('}').ok_or(TemplateError::Unclosed)?;
            let name = &after[..end];
            if name.contains('{') {
                return Err(TemplateError::Unclosed);
            }
            let field = Field::ALL
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, field)| *field)
                .ok_or_else(|| TemplateError::UnknownPlaceholder(name.to_owned()))?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Field(field));
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            text: text.to_owned(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the template names a field at all (a fixed name otherwise).
    pub fn has_fields(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(_)))
    }

    /// The template filled in, each value passed through `clean` (which gets whether the value
    /// is in the template's last `.`-separated token).
    fn fill(&self, fields: &Fields<'_>, clean: impl Fn(&str, bool) -> String) -> String {
        let last_token_from = self.last_token_start();
        let mut out = String::with_capacity(self.text.len() + 32);
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field(field) => {
                    out.push_str(&clean(fields.get(*field), i >= last_token_from))
                }
            }
        }
        out
    }

    /// The index of the first part in the template's last token (after its last literal `.`).
    fn last_token_start(&self) -> usize {
        self.parts
            .iter()
            .rposition(|p| matches!(p, Part::Literal(text) if text.contains('.')))
            .unwrap_or(0)
    }

    // --- NATS subjects ---

    /// Checks that the template makes valid NATS subjects whatever the values: no whitespace
    /// or wildcard in its fixed text, and no empty token (`a..b`, a leading or trailing `.`).
    pub fn check_subject(&self) -> Result<(), TemplateError> {
        for part in &self.parts {
            if let Part::Literal(text) = part {
                if text.contains(char::is_whitespace) {
                    return Err(TemplateError::Subject(
                        "a NATS subject cannot hold spaces or other whitespace",
                    ));
                }
                if text.contains(['*', '>']) {
                    return Err(TemplateError::Subject(
                        "a NATS subject to publish to cannot hold the wildcards `*` or `>`",
                    ));
                }
            }
        }
        let sample = self.fill(
            &Fields {
                workspace: "w".into(),
                vendor: "v".into(),
                event_type: "t".into(),
            },
            |value, _| value.to_owned(),
        );
        if sample.split('.').any(str::is_empty) {
            return Err(TemplateError::Subject(
                "a NATS subject cannot have an empty token: no `..`, and no `.` at either end",
            ));
        }
        Ok(())
    }

    /// The subject an event is published on. A value in the last token keeps its dots (so
    /// `message.received` is two tokens); elsewhere a dot becomes `_`, so each placeholder is
    /// one token. Whitespace, `*` and `>` become `_`, and an empty token becomes `_`.
    pub fn subject(&self, fields: &Fields<'_>) -> String {
        self.fill(fields, |value, last| {
            let tokens: Vec<String> = if last {
                value.split('.').map(subject_token).collect()
            } else {
                vec![subject_token(value)]
            };
            tokens.join(".")
        })
    }

    /// The subjects a stream must capture to hold every subject [`Template::subject`] makes:
    /// each token holding a placeholder becomes `*`, except the last, which becomes `>` (it may
    /// be several tokens). `webhooks.{workspace}.{type}` gives `webhooks.*.>`.
    pub fn stream_subject(&self) -> String {
        let sample = self.fill(
            &Fields {
                workspace: "\u{0}".into(),
                vendor: "\u{0}".into(),
                event_type: "\u{0}".into(),
            },
            |value, _| value.to_owned(),
        );
        let tokens: Vec<&str> = sample.split('.').collect();
        let last = tokens.len() - 1;
        let wild: Vec<&str> = (tokens.iter().enumerate())
            .map(|(i, token)| match token.contains('\u{0}') {
                false => token,
                true if i == last => ">",
                true => "*",
            })
            .collect();
        wild.join(".")
    }

    // --- Redis keys ---

    /// The Redis key for an event. Braces in a value become `_`: the key then holds no brace at
    /// all, so `{<key>}` is a Redis Cluster hash tag that hashes exactly as the key does.
    pub fn redis_key(&self, fields: &Fields<'_>) -> String {
        self.fill(fields, |value, _| value.replace(['{', '}'], "_"))
    }
}

/// One subject token: whitespace, wildcards and dots become `_`; empty becomes `_`.
fn subject_token(value: &str) -> String {
    if value.is_empty() {
        return "_".to_owned();
    }
    value
        .chars()
        .map(|c| {
            if c.is_whitespace() || matches!(c, '*' | '>' | '.') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(workspace: &'a str, vendor: &'a str, event_type: &'a str) -> Fields<'a> {
        Fields {
            workspace: workspace.into(),
            vendor: vendor.into(),
            event_type: event_type.into(),
        }
    }

    #[test]
    fn placeholders_are_filled_and_dots_in_the_last_token_kept() {
        let t = Template::parse("webhooks.{workspace}.{type}").unwrap();
        assert_eq!(
            t.subject(&fields("acme", "watsi", "message.received")),
            "webhooks.acme.message.received"
        );
        assert_eq!(t.stream_subject(), "webhooks.*.>");
        let t = Template::parse("wh.{type}.{vendor}").unwrap();
        assert_eq!(
            t.subject(&fields("acme", "watsi", "message.received")),
            "wh.message_received.watsi"
        );
        assert_eq!(t.stream_subject(), "wh.*.>");
        let t = Template::parse("wh.ws-{workspace}.all").unwrap();
        assert_eq!(t.subject(&fields("acme", "v", "t")), "wh.ws-acme.all");
        assert_eq!(t.stream_subject(), "wh.*.all");
        let t = Template::parse("fixed.subject").unwrap();
        assert!(!t.has_fields());
        assert_eq!(t.stream_subject(), "fixed.subject");
    }

    #[test]
    fn forbidden_subject_characters_and_empty_tokens_become_underscores() {
        let t = Template::parse("wh.{vendor}.{type}").unwrap();
        assert_eq!(
            t.subject(&fields("a", "we ird*", "a..b>.")),
            "wh.we_ird_.a._.b_._"
        );
        assert_eq!(t.subject(&fields("a", "", "")), "wh._._");
        assert_eq!(t.subject(&fields("a", "x.y", "t")), "wh.x_y.t");
    }

    #[test]
    fn unknown_placeholders_and_stray_braces_are_refused() {
        assert_eq!(
            Template::parse("wh.{tenant}"),
            Err(TemplateError::UnknownPlaceholder("tenant".into()))
        );
        assert_eq!(Template::parse("wh.{type"), Err(TemplateError::Unclosed));
        assert_eq!(Template::parse("wh.{ty{pe}"), Err(TemplateError::Unclosed));
        assert_eq!(Template::parse("wh.}"), Err(TemplateError::StrayBrace));
        assert_eq!(Template::parse(""), Err(TemplateError::Empty));
        // The message names the placeholder as written, braces and all.
        assert!(TemplateError::UnknownPlaceholder("tenant".into())
            .to_string()
            .starts_with("unknown placeholder `{tenant}`"));
    }

    #[test]
    fn subject_templates_are_checked_for_nats_rules() {
        assert!(Template::parse("wh.{workspace}.{type}")
            .unwrap()
            .check_subject()
            .is_ok());
        for bad in [
            "wh..{type}",
            ".wh.{type}",
            "wh.{type}.",
            "wh x.{type}",
            "wh.*.{type}",
            "wh.>",
        ] {
            let t = Template::parse(bad).unwrap();
            assert!(t.check_subject().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn redis_keys_hold_no_braces() {
        let t = Template::parse("webhooks:{workspace}:{type}").unwrap();
        assert_eq!(
            t.redis_key(&fields("acme", "v", "a{b}.c")),
            "webhooks:acme:a_b_.c"
        );
    }

    #[test]
    fn fields_are_read_from_the_envelope() {
        let envelope = br#"{"id":"01J","workspace":"acme","vendor":"watsi","type":"message.received","data":{"x":1}}"#;
        let f = Fields::of_envelope(envelope).unwrap();
        assert_eq!(f, fields("acme", "watsi", "message.received"));
        assert!(Fields::of_envelope(b"{}").is_err());
    }
}
