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
//! - [`Collector`] is an OTLP/HTTP collector that decodes the spans the server exports.
//! - [`Browser`] is a headless Chromium driven over WebDriver, for the console's tests.
//! - [`servers`] runs real `nats-server` and `redis-server` processes for the broker sinks.
//! - [`tool`] finds the other programs the tests run, failing with how to install one that is
//!   missing; [`python_env`] is the Python virtual environment the harness makes itself for the
//!   independent checkers (Standard Webhooks, the Prometheus parsers, hadolint).
//! - [`DemoDir`] is the shipped demo (routes.yaml, examples/, target/release/) in a private
//!   directory, for the tests of the README's walkthrough.
//! - [`Readme`] reads the README's sections, shell blocks and Commands table for the tests that
//!   run what it says.
//! - [`shipped_file`] reads a file as the project ships it, never the user's edited copy.
//!
//! Nothing here sleeps to wait for something to happen: every wait polls a condition against a
//! deadline and panics with the server's log when the deadline passes.
//!
//! [`artifacts`]: artifacts()

pub use serde_json::{json, Value};

mod artifacts;
mod browser;
mod capture;
mod command;
mod config;
mod demo;
mod load;
mod otlp;
mod python;
mod readme;
mod receiver;
mod reply;
mod server;
pub mod servers;
mod shipped;
mod sink_file;
mod test_dir;
mod tools;
mod vendors;

pub use artifacts::{artifacts, library_file_name, Artifacts};
pub use browser::{Browser, BROWSER_DEADLINE};
pub use capture::Capture;
pub use command::{check, run, serve_expecting_exit, switchyard_command, Run, EXIT_DEADLINE};
pub use config::{Config, HttpSink, NatsSink, RedisSink, Route, Vendor, Workspace};
pub use demo::DemoDir;
pub use load::Load;
pub use otlp::{CollectedSpan, Collector};
pub use python::{python_env, PythonEnv};
pub use readme::{inline_code, shell_blocks, table_commands, Readme};
pub use receiver::{Mode, Receiver, SinkRequest};
pub use reply::{Connection, Received, Reply};
pub use server::{hook, Server, REQUEST_TIMEOUT, START_DEADLINE};
pub use servers::*;
pub use shipped::shipped_file;
pub use sink_file::{assert_subset, count_id, SinkFile, DELIVERY_DEADLINE};
pub use test_dir::{TestDir, VendorForm};
pub use tools::{install_hint, tool};
pub use vendors::{
    hmac_sha256_hex, secret, VendorScheme, DOCSSMITH, PANICS, VENDORS, WAPPCLOUD, WATSI, WHATSABLE,
    WHATSSYNC,
};
