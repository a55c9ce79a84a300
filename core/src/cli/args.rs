//! The command line: every subcommand and its flags, as clap reads them.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Verify, dedupe and route vendor webhooks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the operator commands find the server.
#[derive(clap::Args)]
pub struct Operator {
    /// Routes file giving the operator address and admin token when not set below.
    #[arg(long, short, env = "SWITCHYARD_CONFIG", default_value = "routes.yaml")]
    pub config: PathBuf,
    /// Operator listener base URL; default: http:// + the routes file's server.admin_listen,
    /// else http://127.0.0.1:9090.
    #[arg(long, env = "SWITCHYARD_ADMIN_URL")]
    pub url: Option<String>,
    /// Admin bearer token; default: the routes file's server.admin_token.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Subcommand)]
pub enum DlqCommand {
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
pub enum SinkCommand {
    /// Resume a disabled sink: one probe delivery, then its kept queue flows.
    Enable {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        sink: String,
        #[command(flatten)]
        operator: Operator,
    },
}

#[derive(Subcommand)]
pub enum RouteCommand {
    /// Map a body through the vendor's plugin (no signature check) and show which routes
    /// match it, why the others do not, and the sinks it would reach.
    Test(RouteTestArgs),
}

#[derive(clap::Args)]
pub struct RouteTestArgs {
    #[arg(long)]
    pub workspace: String,
    /// A vendor the workspace enables.
    #[arg(long)]
    pub vendor: String,
    /// The request body, as the vendor would send it.
    #[arg(long)]
    pub file: PathBuf,
    /// A request header as `Name: value`, for vendors that name the type or delivery in one;
    /// may be repeated.
    #[arg(long = "header", value_name = "K:V")]
    pub headers: Vec<String>,
    #[arg(long, short, env = "SWITCHYARD_CONFIG", default_value = "routes.yaml")]
    pub config: PathBuf,
}

/// The commands that talk to a running server through its operator API.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Dead letters: list and replay (talks to a running server).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// A sink's state: enable a disabled one (talks to a running server).
    Sink {
        #[command(subcommand)]
        command: SinkCommand,
    },
    /// State, queue depth and dead letters of every sink (talks to a running server).
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
    /// Deliver again to one sink every event accepted in a window that was routed to it,
    /// delivered or not (talks to a running server; needs the embedded store).
    Replay {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        sink: String,
        /// Accepted at or after this RFC 3339 time.
        #[arg(long)]
        since: String,
        /// Accepted at or before this RFC 3339 time.
        #[arg(long)]
        until: String,
        /// Only events of this canonical type, a glob (`message.*`).
        #[arg(long = "type")]
        event_type: Option<String>,
        #[command(flatten)]
        operator: Operator,
    },
    /// Find events, newest first, with each sink's status (talks to a running server; needs
    /// the embedded store). Print the next page with `--after` set to the answer's `next`.
    Events {
        #[command(flatten)]
        search: EventSearch,
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
}

/// The filters of `switchyard events`, each optional; they are `GET /admin/events`'s.
#[derive(clap::Args)]
pub struct EventSearch {
    #[arg(long)]
    pub workspace: Option<String>,
    #[arg(long)]
    pub vendor: Option<String>,
    /// Canonical event type, a glob (`message.*`).
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Accepted at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Accepted at or before this RFC 3339 time.
    #[arg(long)]
    pub until: Option<String>,
    /// delivered, pending, retrying or dead (at any of its sinks, or at --sink).
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub sink: Option<String>,
    /// A vendor event id, delivery id, sender or recipient.
    #[arg(long)]
    pub q: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// The previous page's `next`.
    #[arg(long)]
    pub after: Option<String>,
}

impl EventSearch {
    /// The query string, with only the filters given.
    pub fn query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        let limit = self.limit.to_string();
        let fields = [
            ("workspace", self.workspace.as_deref()),
            ("vendor", self.vendor.as_deref()),
            ("type", self.event_type.as_deref()),
            ("since", self.since.as_deref()),
            ("until", self.until.as_deref()),
            ("status", self.status.as_deref()),
            ("sink", self.sink.as_deref()),
            ("q", self.q.as_deref()),
            ("limit", Some(limit.as_str())),
            ("after", self.after.as_deref()),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                query.append_pair(key, value);
            }
        }
        query.finish()
    }
}

#[derive(Subcommand)]
pub enum Command {
    #[command(flatten)]
    Admin(AdminCommand),
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
    /// Try the routes on a body, without a server.
    Route {
        #[command(subcommand)]
        command: RouteCommand,
    },
    /// Vendor definitions (`<vendor>.vendor.yaml`).
    Vendor {
        #[command(subcommand)]
        command: VendorCommand,
    },
    /// The embedded store's data directory, with the server stopped.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Read every log segment and record of a stopped server's store and report each damage
    /// (exit 65 when data is lost); with --salvage, rewrite damaged segments keeping every
    /// readable frame.
    Verify(StoreVerifyArgs),
}

#[derive(clap::Args)]
pub struct StoreVerifyArgs {
    /// The data directory; default: the routes file's server.data_dir.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Copy each damaged segment aside, then rewrite it with its unreadable bytes replaced by
    /// an empty frame, so that the server starts and delivers every readable event.
    #[arg(long)]
    pub salvage: bool,
    #[arg(long, short, env = "SWITCHYARD_CONFIG", default_value = "routes.yaml")]
    pub config: PathBuf,
}

#[derive(Subcommand)]
pub enum VendorCommand {
    /// Load one definition and prove its test vectors; with --body, print the envelope it
    /// makes of that delivery, or exactly why the delivery would be refused.
    Test(VendorTestArgs),
}

#[derive(clap::Args)]
pub struct VendorTestArgs {
    /// The definition file.
    pub file: PathBuf,
    /// A file holding a delivery's body.
    #[arg(long)]
    pub body: Option<PathBuf>,
    /// A header of the delivery, `Name: value`; repeat for more.
    #[arg(long = "header", value_name = "K:V")]
    pub headers: Vec<String>,
    /// The signing secret, to check the delivery's signature too.
    #[arg(long, env = "SWITCHYARD_VENDOR_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}

impl Command {
    /// The routes file the command reads (the operator commands, `plugins` and `sign` only
    /// when it exists).
    pub fn config_path(&self) -> &Path {
        match self {
            Command::Admin(command) => &command.operator().config,
            Command::Serve { config }
            | Command::Check { config }
            | Command::Plugins { config, .. } => config,
            Command::Sign(args) => &args.config,
            Command::Route {
                command: RouteCommand::Test(args),
            } => &args.config,
            Command::Store {
                command: StoreCommand::Verify(args),
            } => &args.config,
            // Reads no routes file: logs in the default format.
            Command::Vendor { .. } => Path::new(""),
        }
    }
}

#[derive(clap::Args)]
pub struct SignArgs {
    /// Vendor whose scheme to sign with (a loaded plugin's name).
    #[arg(long)]
    pub vendor: String,
    /// The signing secret.
    #[arg(long, env = "SWITCHYARD_SIGN_SECRET", hide_env_values = true)]
    pub secret: String,
    /// File holding the body; standard input when absent.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Workspace for the curl line's URL.
    #[arg(long, default_value = "demo")]
    pub workspace: String,
    /// Server base URL for the curl line; default: http:// + the routes file's server.listen.
    #[arg(long)]
    pub url: Option<String>,
    /// Delivery id to send, for vendors that have a delivery-id header.
    #[arg(long)]
    pub delivery_id: Option<String>,
    /// Event type to send, for vendors that name it in a header (Wappcloud).
    #[arg(long)]
    pub event_type: Option<String>,
    #[arg(long)]
    pub plugins_dir: Option<PathBuf>,
    /// Routes file giving the plugins directory and the listen address when not set above.
    #[arg(long, short, env = "SWITCHYARD_CONFIG", default_value = "routes.yaml")]
    pub config: PathBuf,
}
