//! `switchyard serve`, `check` and `plugins`: the commands that run or inspect this machine's
//! configuration and plugins.

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard::{deliver, server};

use crate::failure::Failure;
use crate::load::{load, load_plugins, optional_config, plugins_dir_for, vendor_list};

/// What blocking work gets after the server stops before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub fn serve(config_path: &Path) -> Result<(), Failure> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Some(error) = exec_with_malloc_tuning() {
        tracing::warn!(%error, "cannot fix malloc's mmap threshold; memory taken by a burst of large bodies may stay with the process");
    }
    let (config, plugins) = load(config_path)?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let delivery =
        deliver::runtime().map_err(|e| format!("cannot start the delivery runtime: {e}"))?;
    let result = runtime.block_on(server::run(config, plugins, delivery.handle().clone()));
    // A plugin call or a sink write stuck in the blocking pool must not keep the process
    // alive past the shutdown deadline.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    delivery.shutdown_timeout(SHUTDOWN_GRACE);
    result.map_err(|e| Failure::Runtime(e.to_string()))
}

pub fn check(config_path: &Path) -> Result<(), Failure> {
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
    for plugin in plugins.iter() {
        println!(
            "  plugin {}: {} ({})",
            plugin.vendor,
            plugin.path.display(),
            plugin.form()
        );
    }
    println!(
        "note: a running server loads the libraries new to it at `switchyard reload`; one that \
         replaces a library it loaded (the same file changed, or another file for the same \
         vendor) takes a restart, and the reload names it; a definition new or changed takes \
         effect at the reload"
    );
    for default in &config.default_secrets {
        println!(
            "warning: {} uses the development default of ${{{}}}",
            default.key, default.var
        );
    }
    Ok(())
}

pub fn list_plugins(explicit: Option<PathBuf>, config_path: &Path) -> Result<(), Failure> {
    let config = match explicit {
        Some(_) => None,
        None => optional_config(config_path)?,
    };
    let dir = plugins_dir_for(explicit, config.as_ref());
    let plugins = load_plugins(&dir, config.as_ref())?;
    println!(
        "{:<10} {:<8} {:<5} {:<24} {:<22} {:<8} SCHEME",
        "VENDOR", "VERSION", "ABI", "SIGNATURE HEADER", "DELIVERY-ID HEADER", "VECTORS"
    );
    for p in plugins.iter() {
        println!(
            "{:<10} {:<8} {:<5} {:<24} {:<22} {:<8} {}",
            p.vendor,
            p.version,
            p.abi().unwrap_or_else(|| "yaml".to_owned()),
            p.scheme.as_ref().map_or("-", |s| s.header.as_str()),
            p.delivery_id_header.as_ref().map_or("-", |h| h.as_str()),
            p.test_vector_count,
            p.scheme_summary(),
        );
        println!("{:<10} {}: {}", "", p.form(), p.path.display());
        println!("{:<10} dedupe: {}", "", p.dedupe_summary());
    }
    println!("({} plugin(s) in {})", plugins.len(), dir.display());
    Ok(())
}

/// glibc's malloc raises its mmap threshold each time a large block is freed; after a burst of
/// large bodies, blocks of that size come from the heap arenas instead, and their memory stays
/// with the process (RSS near the burst's peak long after it). A fixed threshold keeps large
/// blocks mmapped and returned on free. It can only be set before the process starts, and
/// `mallopt` would need unsafe code, so `serve` starts itself again (same process id, by exec)
/// with the glibc tunable set, unless it is already set. Returns only when that did not happen.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exec_with_malloc_tuning() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    const VAR: &str = "GLIBC_TUNABLES";
    const TUNABLE: &str = "glibc.malloc.mmap_threshold";
    let current = std::env::var(VAR).unwrap_or_default();
    if current.contains(TUNABLE) {
        return None;
    }
    let tunables = match current.as_str() {
        "" => format!("{TUNABLE}={MMAP_THRESHOLD}"),
        other => format!("{other}:{TUNABLE}={MMAP_THRESHOLD}"),
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return Some(error),
    };
    Some(
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(VAR, tunables)
            .exec(),
    )
}

/// glibc's own initial threshold (128 KiB), kept fixed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: usize = 128 * 1024;
