//! The event as switchyard holds it: the canonical envelope (and what a plugin says an event
//! is), the dedupe key, signature verification of the body it came in, and the payload filters
//! routes select events with.

pub mod dedupe;
pub mod envelope;
pub mod filter;
pub mod verify;
