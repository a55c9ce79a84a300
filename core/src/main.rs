//! The `switchyard` command: serve, check a configuration, list plugins, sign a test delivery.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use hyper::Method;
use switchyard::admin_client;
use switchyard::config::{self, Config};
use switchyard::plugins::{Plugins, VendorPlugin};
use switchyard::server;
use switchyard::verify::{Signable, Signed};

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Verify, dedupe and route vendor webhooks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the operator commands find the server.
#[derive(clap::Args)]
struct Operator {
    /// Routes file giving the operator address and admin token when not set below.
    #[arg(long, short, default_value = "routes.yaml")]
    config: PathBuf,
    /// Operator listener base URL; default: http:// + the routes file's server.admin_listen.
    #[arg(long)]
    url: Option<String>,
    /// Admin bearer token; default: the routes file's server.admin_token.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List a sink's dead letters.
    List {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        sink: String,
        #[command(flatten)]
        operator: Operator,
    },
    /// Put dead letters back on the sink's queue (never blocked by the dedupe index).
    Replay {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        sink: String,
        /// One event id; omit with --all to replay every dead letter of the sink.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        operator: Operator,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Dead letters: list and replay (talks to a running server).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Queue depth and dead letters of every sink (talks to a running server).
    Queues {
        #[command(flatten)]
        operator: Operator,
    },
    /// An event with its delivery attempts to each sink (talks to a running server).
    Event {
        /// The envelope id.
        id: String,
        #[command(flatten)]
        operator: Operator,
    },
    /// Serve the hooks in a routes file.
    Serve {
        #[arg(long, short, default_value = "routes.yaml")]
        config: PathBuf,
    },
    /// Validate a routes file and the plugins it needs (test vectors included), without serving.
    Check {
        #[arg(long, short, default_value = "routes.yaml")]
        config: PathBuf,
    },
    /// List the plugins found in the plugins directory.
    Plugins {
        /// Directory to scan; default: the routes file's plugins_dir, else beside this binary.
        #[arg(long)]
        plugins_dir: Option<PathBuf>,
        /// Routes file whose plugins_dir to use (ignored if absent and no --plugins-dir).
        #[arg(long, short, default_value = "routes.yaml")]
        config: PathBuf,
    },
    /// Print the headers a vendor would send for a body, and a ready curl line.
    Sign(SignArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to standard error: standard output belongs to the stdout sink and to commands.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Dlq {
            command:
                DlqCommand::List {
                    workspace,
                    sink,
                    operator,
                },
        } => operate(
            &operator,
            Method::GET,
            &format!("/admin/workspaces/{workspace}/sinks/{sink}/dead-letters"),
        ),
        Command::Dlq {
            command:
                DlqCommand::Replay {
                    workspace,
                    sink,
                    id,
                    all: _,
                    operator,
                },
        } => {
            let which = id.map_or_else(String::new, |id| format!("/{id}"));
            operate(
                &operator,
                Method::POST,
                &format!("/admin/workspaces/{workspace}/sinks/{sink}/dead-letters{which}/replay"),
            )
        }
        Command::Queues { operator } => operate(&operator, Method::GET, "/admin/queues"),
        Command::Event { id, operator } => {
            operate(&operator, Method::GET, &format!("/admin/events/{id}"))
        }
        Command::Serve { config } => serve(&config),
        Command::Check { config } => check(&config),
        Command::Plugins {
            plugins_dir,
            config,
        } => list_plugins(plugins_dir, &config),
        Command::Sign(args) => sign(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the routes file and loads the plugins it needs: everything `check` proves.
fn load(config_path: &Path) -> Result<(Config, Plugins), String> {
    let config = config::load(config_path).map_err(|e| e.to_string())?;
    let dir = server::plugins_dir(config.server.plugins_dir.as_ref());
    let plugins = load_plugins(&dir)?;
    config
        .check_vendors(&|vendor| plugins.get(vendor.as_str()).is_some())
        .map_err(|e| {
            format!(
                "{e}\n(plugins in {}: {})",
                dir.display(),
                vendor_list(&plugins)
            )
        })?;
    Ok((config, plugins))
}

fn load_plugins(dir: &Path) -> Result<Plugins, String> {
    let plugins = Plugins::load_dir(dir).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        format!("{} plugin(s) refused:\n{}", errors.len(), lines.join("\n"))
    })?;
    if plugins.is_empty() {
        return Err(format!(
            "no plugins (libswitchyard_*{}) in {}; run `cargo build --release` or set server.plugins_dir",
            std::env::consts::DLL_SUFFIX,
            dir.display()
        ));
    }
    Ok(plugins)
}

fn vendor_list(plugins: &Plugins) -> String {
    plugins
        .iter()
        .map(|p| p.vendor.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn serve(config_path: &Path) -> Result<(), String> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Some(error) = server::exec_with_malloc_tuning() {
        tracing::warn!(%error, "cannot fix malloc's mmap threshold; memory taken by a burst of large bodies may stay with the process");
    }
    let (config, plugins) = load(config_path)?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime
        .block_on(server::run(config, plugins))
        .map_err(|e| e.to_string())
}

fn check(config_path: &Path) -> Result<(), String> {
    let (config, plugins) = load(config_path)?;
    println!(
        "{}: ok: {} workspace(s), plugins: {}",
        config.path.display(),
        config.workspaces.len(),
        vendor_list(&plugins)
    );
    for default in &config.default_secrets {
        println!(
            "warning: {} uses the development default of ${{{}}}",
            default.key, default.var
        );
    }
    Ok(())
}

/// The plugins directory for commands that do not need a whole configuration.
fn plugins_dir_for(explicit: Option<PathBuf>, config_path: &Path) -> Result<PathBuf, String> {
    if let Some(dir) = explicit {
        return Ok(dir);
    }
    if config_path.exists() {
        let config = config::load(config_path).map_err(|e| e.to_string())?;
        return Ok(server::plugins_dir(config.server.plugins_dir.as_ref()));
    }
    Ok(server::plugins_dir(None))
}

fn list_plugins(explicit: Option<PathBuf>, config_path: &Path) -> Result<(), String> {
    let dir = plugins_dir_for(explicit, config_path)?;
    let plugins = load_plugins(&dir)?;
    println!(
        "{:<10} {:<8} {:<5} {:<24} {:<22} {:<8} SCHEME",
        "VENDOR", "VERSION", "ABI", "SIGNATURE HEADER", "DELIVERY-ID HEADER", "VECTORS"
    );
    for p in plugins.iter() {
        println!(
            "{:<10} {:<8} {:<5} {:<24} {:<22} {:<8} {}",
            p.vendor,
            p.version,
            format!("{}.{}", switchyard_plugin_abi::ABI_MAJOR, p.abi_minor),
            p.scheme.header.as_str(),
            p.delivery_id_header.as_ref().map_or("-", |h| h.as_str()),
            p.test_vector_count,
            p.scheme_summary(),
        );
        println!("{:<10} dedupe: {}", "", p.dedupe_summary());
    }
    println!("({} plugin(s) in {})", plugins.len(), dir.display());
    Ok(())
}

#[derive(clap::Args)]
struct SignArgs {
    /// Vendor whose scheme to sign with (a loaded plugin's name).
    #[arg(long)]
    vendor: String,
    /// The signing secret.
    #[arg(long, env = "SWITCHYARD_SIGN_SECRET", hide_env_values = true)]
    secret: String,
    /// File holding the body; standard input when absent.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Workspace for the curl line's URL.
    #[arg(long, default_value = "demo")]
    workspace: String,
    /// Server base URL for the curl line.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Delivery id to send, for vendors that have a delivery-id header.
    #[arg(long)]
    delivery_id: Option<String>,
    /// Event type to send, for vendors that name it in a header (Wappcloud).
    #[arg(long)]
    event_type: Option<String>,
    #[arg(long)]
    plugins_dir: Option<PathBuf>,
    #[arg(long, short, default_value = "routes.yaml")]
    config: PathBuf,
}

fn sign(args: SignArgs) -> Result<(), String> {
    let dir = plugins_dir_for(args.plugins_dir, &args.config)?;
    let plugins = load_plugins(&dir)?;
    let plugin: &VendorPlugin = plugins.get(&args.vendor).ok_or_else(|| {
        format!(
            "no plugin for vendor `{}` in {} (have: {})",
            args.vendor,
            dir.display(),
            vendor_list(&plugins)
        )
    })?;
    let body = match &args.file {
        Some(path) => std::fs::read(path)
            .map_err(|e| format!("cannot read body file {}: {e}", path.display()))?,
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| format!("cannot read the body from standard input: {e}"))?;
            body
        }
    };
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().to_string())
        .unwrap_or_default();
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let Signed::Template {
        timestamp_header: Some(name),
        ..
    } = &plugin.scheme.signed
    {
        headers.push((name.to_string(), timestamp.clone()));
    }
    if let (Some(header), Some(id)) = (&plugin.delivery_id_header, &args.delivery_id) {
        headers.push((header.to_string(), id.clone()));
    }
    if let (Some(header), Some(event_type)) = (&plugin.event_type_header, &args.event_type) {
        headers.push((header.to_string(), event_type.clone()));
    }
    let signature = plugin.scheme.sign(
        args.secret.as_bytes(),
        &Signable {
            body: &body,
            timestamp: Some(&timestamp),
            delivery_id: args.delivery_id.as_deref(),
        },
    );
    headers.push((plugin.scheme.header.to_string(), signature));
    for (name, value) in &headers {
        println!("{name}: {value}");
    }
    let data = match &args.file {
        Some(path) => format!("@{}", path.display()),
        None => String::from_utf8_lossy(&body).into_owned(),
    };
    let header_args: Vec<String> = headers
        .iter()
        .map(|(n, v)| format!("-H {}", shell_quote(&format!("{n}: {v}"))))
        .collect();
    println!();
    println!(
        "curl -sS -X POST {}/hooks/{}/{} {} --data-binary {}",
        args.url.trim_end_matches('/'),
        args.workspace,
        plugin.vendor,
        header_args.join(" "),
        shell_quote(&data)
    );
    Ok(())
}

/// Calls the operator API and prints its JSON answer.
fn operate(operator: &Operator, method: Method, path: &str) -> Result<(), String> {
    let config = config::load(&operator.config).ok();
    let url = match (&operator.url, &config) {
        (Some(url), _) => url.clone(),
        (None, Some(config)) => {
            let mut addr = config.server.admin_listen;
            // Listening on every interface: loopback is one of them.
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{addr}")
        }
        (None, None) => format!(
            "http://127.0.0.1:9090 (could not read {}; pass --url)",
            operator.config.display()
        ),
    };
    let token = match (&operator.token, &config) {
        (Some(token), _) => token.clone(),
        (None, Some(config)) => match &config.server.admin_token {
            Some(token) => String::from_utf8_lossy(token.expose()).into_owned(),
            None => return Err("no admin token: pass --token, set SWITCHYARD_ADMIN_TOKEN, or set server.admin_token".into()),
        },
        (None, None) => return Err("no admin token: pass --token or set SWITCHYARD_ADMIN_TOKEN".into()),
    };
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let (status, answer) = runtime.block_on(admin_client::call(&url, &token, method, path))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&answer).unwrap_or_default()
    );
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!(
            "the server answered {status}: {}",
            answer["message"].as_str().unwrap_or("no message")
        ))
    }
}

/// Single-quotes a string for POSIX shells.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
