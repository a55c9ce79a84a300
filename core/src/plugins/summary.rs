//! How a plugin reads for people (`switchyard plugins`, `check`, `vendor test`): its form, ABI,
//! signature scheme and what identifies one of its events.

use switchyard_plugin_abi as abi;

use super::definition::Definition;
use super::{Form, VendorPlugin};
use crate::event::verify::{Encoding, Signed};

impl VendorPlugin {
    /// `library` or `definition`, for people.
    pub fn form(&self) -> &'static str {
        match self.form {
            Form::Library { .. } => "library",
            Form::Definition(_) => "definition",
        }
    }

    /// The plugin ABI a library was built for (`1.2`); `None` for a definition.
    pub fn abi(&self) -> Option<String> {
        match self.form {
            Form::Library { abi_minor, .. } => Some(format!("{}.{abi_minor}", abi::ABI_MAJOR)),
            Form::Definition(_) => None,
        }
    }

    /// What identifies one event, for `switchyard plugins`.
    pub fn dedupe_summary(&self) -> &str {
        if self.dedupe.is_empty() {
            "not stated (ABI 1.0): event_id when the event has one, else delivery_id, else body_hash"
        } else {
            &self.dedupe
        }
    }

    /// How the signature scheme reads, for `switchyard plugins`.
    pub fn scheme_summary(&self) -> String {
        let Some(scheme) = &self.scheme else {
            return "none: served only behind allow_ips".to_owned();
        };
        let encoding = match scheme.encoding {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
        };
        let signed = match &scheme.signed {
            Signed::Body => "body".to_owned(),
            Signed::Template { template, .. } => format!("template {template:?}"),
        };
        let custom = match self.form {
            Form::Library {
                verify_override: true,
                ..
            } => " (plugin's own verify)",
            _ => "",
        };
        format!(
            "HMAC-{} {encoding}{}{} of {signed}{custom}",
            scheme.algorithm.as_str().to_uppercase(),
            if scheme.prefix.is_empty() {
                String::new()
            } else {
                format!(" after {:?}", scheme.prefix)
            },
            if scheme.several {
                ", several per header"
            } else {
                ""
            },
        )
    }

    /// The definition a vendor is defined by, for `switchyard vendor test`.
    pub fn definition(&self) -> Option<&Definition> {
        match &self.form {
            Form::Definition(d) => Some(d),
            Form::Library { .. } => None,
        }
    }
}
