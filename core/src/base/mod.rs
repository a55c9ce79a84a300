//! The ground floor: names, ids and times every layer shares, how a broker is reached,
//! directory entries made durable, and the line a key sits on in a YAML file.

pub mod broker_url;
pub mod durable;
pub mod id;
pub mod locate;
pub mod names;
pub mod nats;
