//! The ground floor: names, ids and times every layer shares, how a broker is reached, and
//! directory entries made durable.

pub mod broker_url;
pub mod durable;
pub mod id;
pub mod names;
pub mod nats;
