//! Reading what a command needs: the log format, the routes file, the plugins it names.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use switchyard::config::{self, Config, LogFormat};
use switchyard::plugins::{self, PluginError, Plugins};
use switchyard::telemetry::{Telemetry, TelemetryConfig};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::failure::{config_failure, Failure};

/// Logs go to standard error: standard output belongs to the stdout sink and to commands. The
/// format is `SWITCHYARD_LOG_FORMAT`, else the routes file's `server.log_format` (read ahead of
/// the rest, which may log while it loads), else text. With `telemetry`, traces are recorded
/// and exported too; the returned handle sends what is left at exit.
pub fn init_logging(
    config_path: &Path,
    telemetry: Option<&TelemetryConfig>,
) -> Result<Option<Telemetry>, String> {
    let format = match std::env::var("SWITCHYARD_LOG_FORMAT") {
        Ok(text) if !text.is_empty() => text
            .parse()
            .map_err(|message| format!("SWITCHYARD_LOG_FORMAT: {message}"))?,
        _ => config::log_format(config_path).unwrap_or_default(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match format {
        LogFormat::Text => lines
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
        // Fields at the top level, beside `message`; the request's span (workspace, vendor,
        // event id, trace id...) under `span`.
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    tracing_subscriber::registry().with(lines).init();
    telemetry
        .map(Telemetry::start)
        .transpose()
        .map_err(|e| e.to_string())
}

/// `server.telemetry` of a routes file that loads; `None` otherwise (`serve` then reports
/// why, with logging already set up).
pub fn telemetry_of(config_path: &Path) -> Option<TelemetryConfig> {
    config::load(config_path).ok()?.server.telemetry
}

/// Reads the routes file and loads the plugins it needs: everything `check` proves.
pub fn load(config_path: &Path) -> Result<(Config, Plugins), Failure> {
    let config = config::load(config_path).map_err(config_failure)?;
    let dir = plugins::plugins_dir(config.server.plugins_dir.as_ref());
    let plugins = load_plugins(&dir, Some(&config))?;
    config
        .check_vendors(&|vendor| plugins.get(vendor.as_str()).is_some())
        .map_err(|e| {
            Failure::Config(format!(
                "{e}\n(plugins in {}: {})",
                dir.display(),
                vendor_list(&plugins)
            ))
        })?;
    config
        .check_unsigned(&|vendor| {
            plugins
                .get(vendor.as_str())
                .is_some_and(|p| p.scheme.is_none())
        })
        .map_err(config_failure)?;
    Ok((config, plugins))
}

/// The plugins in `dir`; a problem with the directory itself names where it was set.
pub fn load_plugins(dir: &Path, config: Option<&Config>) -> Result<Plugins, Failure> {
    let plugins = Plugins::load_dir(dir).map_err(|errors| {
        let message = plugins::refusal_message(&errors);
        Failure::Config(match (&errors[..], config) {
            ([PluginError::Dir { .. }], Some(config)) if config.server.plugins_dir.is_some() => {
                format!("{}: {message}", config.server_key_at("plugins_dir"))
            }
            ([PluginError::Dir { .. }], _) => format!(
                "{message} (server.plugins_dir is not set: the default is the directory of \
                 the switchyard binary)"
            ),
            _ => message,
        })
    })?;
    if plugins.is_empty() {
        return Err(Failure::Config(format!(
            "no plugins (libswitchyard_*{}) in {}; run `cargo build --release` or set server.plugins_dir",
            std::env::consts::DLL_SUFFIX,
            dir.display()
        )));
    }
    Ok(plugins)
}

pub fn vendor_list(plugins: &Plugins) -> String {
    plugins
        .iter()
        .map(|p| p.vendor.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The routes file for commands that can do without one: `None` when it does not exist.
pub fn optional_config(config_path: &Path) -> Result<Option<Config>, Failure> {
    if !config_path.exists() {
        return Ok(None);
    }
    config::load(config_path).map(Some).map_err(config_failure)
}

/// The plugins directory: `explicit`, else the routes file's, else beside the binary.
pub fn plugins_dir_for(explicit: Option<PathBuf>, config: Option<&Config>) -> PathBuf {
    explicit
        .unwrap_or_else(|| plugins::plugins_dir(config.and_then(|c| c.server.plugins_dir.as_ref())))
}
