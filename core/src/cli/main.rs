//! The `switchyard` command: serve, check a configuration, list plugins, sign a test delivery,
//! and the operator commands that talk to a running server.

mod args;
mod failure;
mod load;
mod operate;
mod serve;
mod sign;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::failure::{Failure, EX_CONFIG};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Err(Failure::Runtime(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
