//! TLS on the public listener: the certificate and key from routes.yaml's `server.tls`, served
//! through a resolver whose key can be swapped while connections stay open, so a renewed
//! certificate is picked up on SIGHUP without a restart. New handshakes get the new key; open
//! connections keep the session they have.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// `server.tls`: PEM files, read at start and again on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Which of the two files a problem is in, so configuration errors name the right key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPart {
    Cert,
    Key,
}

/// Why the certificate and key cannot be served. Messages name files, never their contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        part: TlsPart,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} is not valid PEM: {reason}", path.display())]
    BadPem {
        part: TlsPart,
        path: PathBuf,
        reason: String,
    },
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: PathBuf },
    #[error("the key in {} cannot sign TLS handshakes: {reason}", path.display())]
    UnsupportedKey { path: PathBuf, reason: String },
    #[error("the key in {} does not belong to the certificate in {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot set up TLS: {0}")]
    Setup(rustls::Error),
}

impl TlsError {
    /// The file at fault, if it is one file's.
    pub fn part(&self) -> Option<TlsPart> {
        match self {
            TlsError::Read { part, .. } | TlsError::BadPem { part, .. } => Some(*part),
            TlsError::NoCertificate { .. } => Some(TlsPart::Cert),
            TlsError::NoKey { .. }
            | TlsError::UnsupportedKey { .. }
            | TlsError::Mismatch { .. } => Some(TlsPart::Key),
            TlsError::Setup(_) => None,
        }
    }
}

/// Reads the chain and key, and checks that they belong together.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let chain = read_chain(&files.cert)?;
    let key = read_key(&files.key)?;
    let signing_key =
        provider::sign::any_supported_type(&key).map_err(|e| TlsError::UnsupportedKey {
            path: files.key.clone(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // `Unknown`: the key cannot tell its public half, so there is nothing to compare.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(_) => Err(TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
    }
}

fn read(part: TlsPart, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        part,
        path: path.to_owned(),
        source,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(TlsPart::Cert, path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            part: TlsPart::Cert,
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(TlsPart::Key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_owned(),
        },
        other => TlsError::BadPem {
            part: TlsPart::Key,
            path: path.to_owned(),
            reason: other.to_string(),
        },
    })
}

/// Hands every handshake the current key; [`CertStore::reload`] swaps it.
#[derive(Debug)]
pub struct CertStore {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    pub fn open(files: &TlsFiles) -> Result<Arc<CertStore>, TlsError> {
        let key = load(files)?;
        Ok(Arc::new(CertStore {
            files: files.clone(),
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again; on any problem the key in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = Arc::new(load(&self.files)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(())
    }

    /// The acceptor for the public listener: TLS 1.2 and 1.3, HTTP/2 or HTTP/1.1 by ALPN.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let provider = Arc::new(provider::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// Reloads the certificate each time `reload` fires (SIGHUP), until its sender is gone.
pub async fn reload_on(mut reload: watch::Receiver<()>, store: Arc<CertStore>) {
    while reload.changed().await.is_ok() {
        match store.reload() {
            Ok(()) => tracing::info!(
                cert = %store.files.cert.display(),
                "TLS certificate reloaded; new connections use it"
            ),
            Err(error) => tracing::error!(
                %error,
                "TLS certificate not reloaded; the one in use stays"
            ),
        }
    }
}
