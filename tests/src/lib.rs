//! The harness for switchyard's end-to-end tests: the real `switchyard` binary, the real plugin
//! libraries loaded from disk, real HTTP on loopback.
//!
//! - [`artifacts`] builds the workspace once per test process and finds the binary and libraries.
//! - [`TestDir`] is one test's private directory: a plugins directory holding copies of the five
//!   real plugins (plus any fixture a loader test installs), the data directory, sink files and
//!   the routes file written from a [`Config`].
//! - [`Server`] runs `switchyard serve`, finds its public and operator addresses in its log,
//!   waits for it by polling `/readyz` on the operator listener, talks HTTP to both, and kills it
//!   on drop.
//! - [`VendorScheme`] signs deliveries with this crate's own HMAC-SHA256, independent of the
//!   server's code.
//! - [`SinkFile`] reads a file sink's JSON lines, polling until what a test waits for arrives.
//! - [`servers`] runs real `nats-server` and `redis-server` processes for the broker sinks.
//!
//! Nothing here sleeps to wait for something to happen: every wait polls a condition against a
//! deadline and panics with the server's log when the deadline passes.
//!
//! [`artifacts`]: artifacts()

pub use serde_json::{json, Value};

mod artifacts;
mod capture;
mod command;
mod config;
mod receiver;
mod reply;
mod server;
pub mod servers;
mod sink_file;
mod test_dir;
mod vendors;

pub use artifacts::{artifacts, library_file_name, Artifacts};
pub use capture::Capture;
pub use command::{check, run, serve_expecting_exit, switchyard_command, Run, EXIT_DEADLINE};
pub use config::{Config, HttpSink, NatsSink, RedisSink, Route, Vendor, Workspace};
pub use receiver::{Mode, Receiver, SinkRequest};
pub use reply::{Connection, Received, Reply};
pub use server::{hook, Server, REQUEST_TIMEOUT, START_DEADLINE};
pub use servers::*;
pub use sink_file::{assert_subset, count_id, SinkFile, DELIVERY_DEADLINE};
pub use test_dir::TestDir;
pub use vendors::{
    hmac_sha256_hex, secret, VendorScheme, DOCSSMITH, PANICS, VENDORS, WAPPCLOUD, WATSI, WHATSABLE,
    WHATSSYNC,
};
