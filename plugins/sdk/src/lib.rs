//! The switchyard plugin SDK: the safe Rust that vendor plugins are written in, over the C ABI
//! of the `switchyard-plugin-abi` crate (re-exported as [`abi`]). A plugin author fills in a
//! [`Plugin`], writes one `map_event` function with the helpers in [`payload`] and the shapes in
//! [`canonical`], says what identifies an event ([`Identity`]), and calls [`export_plugin!`]. No
//! unsafe code is needed: the macro wraps every entry point, and panics become error statuses.

pub mod canonical;
mod event;
#[doc(hidden)]
pub mod export;
pub mod payload;
mod plugin;

pub use event::{Identity, MapError, MappedEvent};
pub use plugin::{
    Encoding, Handshake, HandshakeReply, Plugin, Request, Signature, Signed, TestVector, Verdict,
};
pub use serde_json::{self, json, Map, Value};
pub use switchyard_plugin_abi as abi;

/// Everything a plugin usually needs, in one import.
pub mod prelude {
    pub use crate::canonical::{self, Contact, Media};
    pub use crate::payload;
    pub use crate::{
        export_plugin, json, Handshake, Identity, Map, MapError, MappedEvent, Plugin, Request,
        Signature, Signed, TestVector, Value,
    };
}
