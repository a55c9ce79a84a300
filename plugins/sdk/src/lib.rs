//! The switchyard plugin SDK: the C ABI ([`abi`]) and the safe Rust that vendor plugins are
//! written in. A plugin author fills in a [`Plugin`], writes one `map_event` function with the
//! helpers in [`payload`] and the shapes in [`canonical`], and calls [`export_plugin!`]. No
//! unsafe code is needed: the macro wraps every entry point, and panics become error statuses.

pub mod abi;
pub mod canonical;
mod event;
#[doc(hidden)]
pub mod export;
pub mod payload;
mod plugin;

pub use event::{MapError, MappedEvent};
pub use plugin::{
    Encoding, Handshake, HandshakeReply, Plugin, Request, Signature, Signed, TestVector, Verdict,
};
pub use serde_json::{self, json, Map, Value};

/// Everything a plugin usually needs, in one import.
pub mod prelude {
    pub use crate::canonical::{self, Contact, Media};
    pub use crate::payload;
    pub use crate::{
        export_plugin, json, Handshake, Map, MapError, MappedEvent, Plugin, Request, Signature,
        Signed, TestVector, Value,
    };
}
