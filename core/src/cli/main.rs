//! The `switchyard` command: serve, check a configuration, list plugins, sign a test delivery.

use std::io::{IsTerminal, Read};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use hyper::Method;
mod operate;

use operate as admin_client;
use switchyard::config::{self, Config, LogFormat};
use switchyard::event::verify::{Signable, Signed};
use switchyard::plugins::{self, Plugins, VendorPlugin};
use switchyard::server;

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
    #[arg(long, short, env = "SWITCHYARD_CONFIG", default_value = "routes.yaml")]
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
    /// List one page of a sink's dead letters, oldest first.
    List {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        sink: String,
        /// Dead letters per page (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this event id: the previous page's `next`.
        #[arg(long)]
        after: Option<String>,
        #[command(flatten)]
        operator: Operator,
    },
    /// Delete one dead letter for good.
    Delete {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        sink: String,
        #[arg(long)]
        id: String,
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
    /// Make a running server write a consistent copy of its store into a new directory (on
    /// the server's machine); restore by starting a server with that directory as data_dir.
    Backup {
        /// The directory to create; it must not exist yet.
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        operator: Operator,
    },
    /// Make a running server read its configuration again (as SIGHUP does); prints what
    /// changed, or every problem of a refused file.
    Reload {
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
        #[arg(long, short, env = "SWITCHYARD_CONFIG", default_value = "routes.yaml")]
        config: PathBuf,
    },
    /// Validate a routes file and the plugins it needs (test vectors included), without serving.
    Check {
        #[arg(long, short, env = "SWITCHYARD_CONFIG", default_value = "routes.yaml")]
        config: PathBuf,
    },
    /// List the plugins found in the plugins directory.
    Plugins {
        /// Directory to scan; default: the routes file's plugins_dir, else beside this binary.
        #[arg(long)]
        plugins_dir: Option<PathBuf>,
        /// Routes file whose plugins_dir to use (ignored if absent and no --plugins-dir).
        #[arg(long, short, env = "SWITCHYARD_CONFIG", default_value = "routes.yaml")]
        config: PathBuf,
    },
    /// Print the headers a vendor would send for a body, and a ready curl line.
    Sign(SignArgs),
}

/// What blocking work gets after the server stops before the process exits anyway.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// sysexits' EX_CONFIG: what `switchyard check` refuses (the routes file, the files it
/// includes, the plugins they need) stops every command with this status.
const EX_CONFIG: u8 = 78;

/// Why a command failed, which decides its exit status.
enum Failure {
    /// The configuration cannot be used: exit [`EX_CONFIG`].
    Config(String),
    /// Anything else (the store, the network, the operator API): exit 1.
    Runtime(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Runtime(message)
    }
}

fn config_failure(error: impl std::fmt::Display) -> Failure {
    Failure::Config(error.to_string())
}

impl Command {
    /// The routes file the command reads (the operator commands, `plugins` and `sign` only
    /// when it exists).
    fn config_path(&self) -> &Path {
        match self {
            Command::Dlq {
                command:
                    DlqCommand::List { operator, .. }
                    | DlqCommand::Replay { operator, .. }
                    | DlqCommand::Delete { operator, .. },
            }
            | Command::Queues { operator }
            | Command::Reload { operator }
            | Command::Backup { operator, .. }
            | Command::Event { operator, .. } => &operator.config,
            Command::Serve { config }
            | Command::Check { config }
            | Command::Plugins { config, .. } => config,
            Command::Sign(args) => &args.config,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(message) = init_logging(cli.command.config_path()) {
        eprintln!("error: {message}");
        return ExitCode::from(EX_CONFIG);
    }
    let result = match cli.command {
        Command::Dlq {
            command:
                DlqCommand::List {
                    workspace,
                    sink,
                    limit,
                    after,
                    operator,
                },
        } => {
            let after = after.map_or_else(String::new, |id| format!("&after={id}"));
            operate(
                &operator,
                Method::GET,
                &format!(
                    "/admin/workspaces/{workspace}/sinks/{sink}/dead-letters?limit={limit}{after}"
                ),
            )
        }
        Command::Dlq {
            command:
                DlqCommand::Delete {
                    workspace,
                    sink,
                    id,
                    operator,
                },
        } => operate(
            &operator,
            Method::DELETE,
            &format!("/admin/workspaces/{workspace}/sinks/{sink}/dead-letters/{id}"),
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
        Command::Reload { operator } => operate(&operator, Method::POST, "/admin/reload"),
        Command::Backup { to, operator } => {
            let to = std::path::absolute(&to).unwrap_or(to);
            let to: String =
                form_urlencoded::byte_serialize(to.to_string_lossy().as_bytes()).collect();
            operate(&operator, Method::POST, &format!("/admin/backup?to={to}"))
        }
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

/// Logs go to standard error: standard output belongs to the stdout sink and to commands. The
/// format is `SWITCHYARD_LOG_FORMAT`, else the routes file's `server.log_format` (read ahead of
/// the rest, which may log while it loads), else text.
fn init_logging(config_path: &Path) -> Result<(), String> {
    let format = match std::env::var("SWITCHYARD_LOG_FORMAT") {
        Ok(text) if !text.is_empty() => text
            .parse()
            .map_err(|message| format!("SWITCHYARD_LOG_FORMAT: {message}"))?,
        _ => config::log_format(config_path).unwrap_or_default(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // Fields at the top level, beside `message`; the request's span (workspace, vendor,
        // event id...) under `span`.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    Ok(())
}

/// Reads the routes file and loads the plugins it needs: everything `check` proves.
fn load(config_path: &Path) -> Result<(Config, Plugins), Failure> {
    let config = config::load(config_path).map_err(config_failure)?;
    let dir = plugins::plugins_dir(config.server.plugins_dir.as_ref());
    let plugins = load_plugins(&dir)?;
    config
        .check_vendors(&|vendor| plugins.get(vendor.as_str()).is_some())
        .map_err(|e| {
            Failure::Config(format!(
                "{e}\n(plugins in {}: {})",
                dir.display(),
                vendor_list(&plugins)
            ))
        })?;
    Ok((config, plugins))
}

fn load_plugins(dir: &Path) -> Result<Plugins, Failure> {
    let plugins = Plugins::load_dir(dir).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        Failure::Config(format!(
            "{} plugin(s) refused:\n{}",
            errors.len(),
            lines.join("\n")
        ))
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

fn vendor_list(plugins: &Plugins) -> String {
    plugins
        .iter()
        .map(|p| p.vendor.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn serve(config_path: &Path) -> Result<(), Failure> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Some(error) = server::exec_with_malloc_tuning() {
        tracing::warn!(%error, "cannot fix malloc's mmap threshold; memory taken by a burst of large bodies may stay with the process");
    }
    let (config, plugins) = load(config_path)?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let result = runtime.block_on(server::run(config, plugins));
    // A plugin call or a sink write stuck in the blocking pool must not keep the process
    // alive past the shutdown deadline.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result.map_err(|e| Failure::Runtime(e.to_string()))
}

fn check(config_path: &Path) -> Result<(), Failure> {
    let (config, plugins) = load(config_path)?;
    println!(
        "{}: ok: {} workspace(s), plugins: {}",
        config.path.display(),
        config.workspaces.len(),
        vendor_list(&plugins)
    );
    for file in &config.included {
        println!("  included {}", file.display());
    }
    for default in &config.default_secrets {
        println!(
            "warning: {} uses the development default of ${{{}}}",
            default.key, default.var
        );
    }
    Ok(())
}

/// The routes file for commands that can do without one: `None` when it does not exist.
fn optional_config(config_path: &Path) -> Result<Option<Config>, Failure> {
    if !config_path.exists() {
        return Ok(None);
    }
    config::load(config_path).map(Some).map_err(config_failure)
}

/// The plugins directory: `explicit`, else the routes file's, else beside the binary.
fn plugins_dir_for(explicit: Option<PathBuf>, config: Option<&Config>) -> PathBuf {
    explicit
        .unwrap_or_else(|| plugins::plugins_dir(config.and_then(|c| c.server.plugins_dir.as_ref())))
}

/// `http://` and the address a local client reaches the server at: a wildcard listen address
/// (0.0.0.0, ::) is reached on loopback.
fn base_url(listen: SocketAddr) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

fn list_plugins(explicit: Option<PathBuf>, config_path: &Path) -> Result<(), Failure> {
    let config = match explicit {
        Some(_) => None,
        None => optional_config(config_path)?,
    };
    let dir = plugins_dir_for(explicit, config.as_ref());
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
    /// Server base URL for the curl line; default: http:// + the routes file's server.listen.
    #[arg(long)]
    url: Option<String>,
    /// Delivery id to send, for vendors that have a delivery-id header.
    #[arg(long)]
    delivery_id: Option<String>,
    /// Event type to send, for vendors that name it in a header (Wappcloud).
    #[arg(long)]
    event_type: Option<String>,
    #[arg(long)]
    plugins_dir: Option<PathBuf>,
    /// Routes file giving the plugins directory and the listen address when not set above.
    #[arg(long, short, env = "SWITCHYARD_CONFIG", default_value = "routes.yaml")]
    config: PathBuf,
}

fn sign(args: SignArgs) -> Result<(), Failure> {
    let config = optional_config(&args.config)?;
    let dir = plugins_dir_for(args.plugins_dir, config.as_ref());
    let url = match (args.url, &config) {
        (Some(url), _) => url,
        (None, Some(config)) => base_url(config.server.listen),
        (None, None) => base_url(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080))),
    };
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
        url.trim_end_matches('/'),
        args.workspace,
        plugin.vendor,
        header_args.join(" "),
        shell_quote(&data)
    );
    Ok(())
}

/// Calls the operator API and prints its JSON answer.
fn operate(operator: &Operator, method: Method, path: &str) -> Result<(), Failure> {
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
            None => return Err(Failure::Runtime("no admin token: pass --token, set SWITCHYARD_ADMIN_TOKEN, or set server.admin_token".into())),
        },
        (None, None) => return Err(Failure::Runtime("no admin token: pass --token or set SWITCHYARD_ADMIN_TOKEN".into())),
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
        Err(Failure::Runtime(format!(
            "the server answered {status}: {}",
            answer["message"].as_str().unwrap_or("no message")
        )))
    }
}

/// Single-quotes a string for POSIX shells.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
