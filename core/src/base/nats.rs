//! How switchyard reaches NATS, shared by the cluster store and the nats sink: a credentials
//! file, and TLS (the CA the servers' certificates must chain to, and a client certificate).

use std::path::PathBuf;

/// `credentials` and `tls` of a `server.store` or a nats sink, checked when routes.yaml is
/// read (each file readable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsAccess {
    /// A NATS credentials file (JWT and NKey seed), when the servers require one.
    pub credentials: Option<PathBuf>,
    /// With it, every connection must be TLS and the servers' certificates chain to it.
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and its key, for servers that verify clients.
    pub tls_client: Option<(PathBuf, PathBuf)>,
}

impl NatsAccess {
    /// Client options carrying these; the caller adds its own (name, timeouts, reconnects).
    pub async fn options(&self) -> Result<async_nats::ConnectOptions, String> {
        let mut options = match &self.credentials {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| format!("credentials {}: {e}", path.display()))?,
            None => async_nats::ConnectOptions::new(),
        };
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &self.tls_client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options)
    }
}
