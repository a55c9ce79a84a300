//! The `switchyard` command: serve, check a configuration, list plugins, sign a test delivery,
//! try the routes on a body, verify a stopped server's store, and the operator commands that
//! talk to a running server.

mod args;
mod failure;
mod load;
mod operate;
mod route;
mod serve;
mod sign;
mod store;
mod vendor;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, RouteCommand, StoreCommand, VendorCommand};
use crate::failure::{Failure, EX_CONFIG, EX_DATAERR};

/// See `tikv-jemallocator` in core/Cargo.toml for why; the library and its tests keep the
/// system's.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve { .. }) {
        // First of all: a SIGHUP during start-up must not end the server (it reloads later).
        if let Err(error) = switchyard::server::hold_hangups() {
            eprintln!("warning: cannot hold SIGHUP during start-up: {error}");
        }
    }
    let telemetry = match &cli.command {
        Command::Serve { config } => load::telemetry_of(config),
        _ => None,
    };
    let telemetry = match load::init_logging(cli.command.config_path(), telemetry.as_ref()) {
        Ok(telemetry) => telemetry,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let result = match cli.command {
        Command::Admin(command) => operate::operate(&command),
        Command::Serve { config } => serve::serve(&config),
        Command::Check { config } => serve::check(&config),
        Command::Plugins {
            plugins_dir,
            config,
        } => serve::list_plugins(plugins_dir, &config),
        Command::Sign(args) => sign::sign(args),
        Command::Route {
            command: RouteCommand::Test(args),
        } => route::test(&args),
        Command::Vendor {
            command: VendorCommand::Test(args),
        } => vendor::test(args),
        Command::Store {
            command: StoreCommand::Verify(args),
        } => store::verify(&args),
    };
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EX_CONFIG)
        }
        Err(Failure::Damaged(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EX_DATAERR)
        }
        Err(Failure::Runtime(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
