//! `switchyard sign`: the headers a vendor would send for a body, and a ready curl line.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use switchyard::event::verify::{Signable, Signed};
use switchyard::plugins::VendorPlugin;

use crate::args::SignArgs;
use crate::failure::Failure;
use crate::load::{load_plugins, optional_config, plugins_dir_for, vendor_list};
use crate::operate::base_url;

pub fn sign(args: SignArgs) -> Result<(), Failure> {
    let config = optional_config(&args.config)?;
    let dir_from = config.as_ref().filter(|_| args.plugins_dir.is_none());
    let dir = plugins_dir_for(args.plugins_dir, config.as_ref());
    let url = match (args.url, &config) {
        (Some(url), _) => url,
        (None, Some(config)) => base_url(config.server.listen),
        (None, None) => base_url(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080))),
    };
    let plugins = load_plugins(&dir, dir_from)?;
    let plugin: &VendorPlugin = plugins.get(&args.vendor).ok_or_else(|| {
        format!(
            "no plugin for vendor `{}` in {} (have: {})",
            args.vendor,
            dir.display(),
            vendor_list(&plugins)
        )
    })?;
    let scheme = plugin.scheme.as_ref().ok_or_else(|| {
        format!(
            "vendor `{}` signs nothing (`signature: none` in {}): send the body as it is",
            plugin.vendor,
            plugin.path.display()
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
    } = &scheme.signed
    {
        headers.push((name.to_string(), timestamp.clone()));
    }
    if let (Some(header), Some(id)) = (&plugin.delivery_id_header, &args.delivery_id) {
        headers.push((header.to_string(), id.clone()));
    }
    if let (Some(header), Some(event_type)) = (&plugin.event_type_header, &args.event_type) {
        headers.push((header.to_string(), event_type.clone()));
    }
    let signature = scheme.sign(
        args.secret.as_bytes(),
        &Signable {
            body: &body,
            timestamp: Some(&timestamp),
            delivery_id: args.delivery_id.as_deref(),
        },
    );
    headers.push((scheme.header.to_string(), signature));
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

/// Single-quotes a string for POSIX shells.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
