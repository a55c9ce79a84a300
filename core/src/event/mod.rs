//! The event as switchyard holds it: the canonical envelope (and what a plugin says an event
//! is), the dedupe key, and signature verification of the body it came in.

pub mod dedupe;
pub mod envelope;
pub mod verify;
