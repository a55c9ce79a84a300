//! The ground floor: names, ids and times every layer shares, and how a broker is reached.

pub mod broker_url;
pub mod id;
pub mod names;
pub mod nats;
