//! Names that carry meaning through the pipeline, so a workspace id is never confused with a
//! sink name or a vendor.

use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn new(name: impl Into<Arc<str>>) -> Self {
                $name(name.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map(|s| $name::new(s))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A tenant: the first path segment of `/hooks/{workspace}/{vendor}`.
    WorkspaceId
);
name_type!(
    /// A vendor, as its plugin names itself: the second path segment of the hook URL.
    VendorName
);
name_type!(
    /// A sink, as a workspace names it in routes.yaml.
    SinkName
);

/// A signing secret. Its `Debug` never shows the value (and it has no `Display`), so it cannot
/// leak into logs or error bodies by accident.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    pub fn new(value: impl AsRef<[u8]>) -> Self {
        Secret(Arc::from(value.as_ref()))
    }

    /// The secret's bytes, for the MAC only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// In constant time: how long a comparison takes says nothing about where two secrets differ.
/// Only the lengths may show, as they do in any HMAC key handling.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2-hunter2-hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        // Nor when nested in a structure's derived Debug, pretty or not.
        let nested = format!("{:?} {:#?}", Some([s.clone()]), vec![s.clone()]);
        assert!(!nested.contains("hunter2"), "{nested}");
        assert_eq!(s.expose(), b"hunter2-hunter2-hunter2");
    }

    #[test]
    fn secrets_compare_by_value() {
        let a = Secret::new("0123456789abcdef");
        assert_eq!(a, Secret::new(String::from("0123456789abcdef")));
        assert_ne!(a, Secret::new("0123456789abcdeF"));
        assert_ne!(a, Secret::new("0123456789abcde"));
        assert_ne!(a, Secret::new(""));
    }
}
