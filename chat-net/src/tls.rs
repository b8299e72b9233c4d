//! TLS over tokio's TCP: rustls (ring provider) through tokio-rustls.
//!
//! TLS lives here, below the [`Network`](crate::Network) seam, so that the
//! chat above it reads and writes the same bytes with or without it.
//!
//! - [`TlsServerConfig`]: the server's certificate chain and key, read from
//!   PEM files, swappable while serving ([`TlsServerConfig::reload_from_pem_files`]):
//!   open connections keep the configuration they started with, new
//!   handshakes use the newest.
//! - [`TlsClientConfig`]: the roots a client trusts (the system's or one
//!   private CA) and the name it checks the server's certificate against.
//!
//! An accepted connection does not handshake in `accept`: its stream
//! ([`TlsStream`]) first waits for the client's first byte, then handshakes,
//! both when the connection's task first reads or writes. A slow or silent
//! client thus never holds up the accept loop, and the server's own silence
//! timeout bounds the handshake. A first byte that cannot start a TLS record
//! is a plain-TCP client: it gets the caller's plaintext refusal, then the
//! stream reads its input to its end and reports a clean end of stream.

mod stream;

use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, RootCertStore};
use tokio::net::TcpStream;

use crate::NetError;
pub(crate) use stream::TlsStream;

/// The server side of TLS: certificate chain, key, and what to tell a
/// client that does not speak TLS.
///
/// Cloning is cheap and clones share the certificate: a reload through any
/// clone applies to the listener holding another.
#[derive(Clone)]
pub struct TlsServerConfig {
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    plaintext_refusal: Arc<[u8]>,
}

impl std::fmt::Debug for TlsServerConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TlsServerConfig")
            .finish_non_exhaustive()
    }
}

impl TlsServerConfig {
    /// Reads a certificate chain (leaf first) and its private key, both PEM.
    /// Fails, naming the file, when one is missing, unreadable, holds no
    /// PEM item of its kind, or when the key does not match the certificate.
    pub fn from_pem_files(certificate: &Path, key: &Path) -> Result<Self, NetError> {
        Ok(Self {
            current: Arc::new(RwLock::new(server_config(certificate, key)?)),
            plaintext_refusal: Arc::from(&b""[..]),
        })
    }

    /// Bytes written, unencrypted, to a client whose first byte shows that it
    /// does not speak TLS, before its connection is closed (empty by
    /// default: the connection is just closed).
    pub fn with_plaintext_refusal(mut self, refusal: &[u8]) -> Self {
        self.plaintext_refusal = Arc::from(refusal);
        self
    }

    /// Reads a new certificate chain and key for the handshakes to come.
    /// On error the current pair stays in use.
    pub fn reload_from_pem_files(&self, certificate: &Path, key: &Path) -> Result<(), NetError> {
        let config = server_config(certificate, key)?;
        // Invariant: the lock is only held to clone or replace an `Arc`,
        // which cannot panic.
        *self.current.write().expect("TLS config lock poisoned") = config;
        Ok(())
    }

    /// The configuration for a handshake starting now.
    fn current(&self) -> Arc<rustls::ServerConfig> {
        // Invariant: as in `reload_from_pem_files`.
        self.current
            .read()
            .expect("TLS config lock poisoned")
            .clone()
    }

    /// A lazily handshaking stream over an accepted connection.
    pub(crate) fn accept_lazily(&self, tcp: TcpStream, peer: std::net::SocketAddr) -> TlsStream {
        TlsStream::accepted(tcp, peer, self.clone())
    }
}

/// The client side of TLS: whom to trust, and which name to check.
#[derive(Clone)]
pub struct TlsClientConfig {
    config: Arc<rustls::ClientConfig>,
    /// Checked instead of the host part of the address connected to.
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for TlsClientConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TlsClientConfig")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsClientConfig {
    /// Trusts the system's root certificates (`SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` override where they are looked for).
    pub fn with_system_roots() -> Result<Self, NetError> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let detail = found
                .errors
                .iter()
                .map(|error| error.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(NetError::TlsRootsMissing { detail });
        }
        Ok(Self::trusting(roots))
    }

    /// Trusts only the certificates of the PEM file `path` (a private CA).
    pub fn with_root_pem_file(path: &Path) -> Result<Self, NetError> {
        let mut roots = RootCertStore::empty();
        for certificate in read_certificates(path, "CA certificate")? {
            roots
                .add(certificate)
                .map_err(|error| NetError::TlsFileInvalid {
                    what: "CA certificate",
                    path: path.to_owned(),
                    problem: format!("holds a certificate that cannot be a root: {error}"),
                })?;
        }
        Ok(Self::trusting(roots))
    }

    /// Checks the server's certificate against `name` rather than the host
    /// part of the address (for example `localhost` when connecting to
    /// 127.0.0.1).
    pub fn with_server_name(mut self, name: &str) -> Result<Self, NetError> {
        self.server_name = Some(server_name(name)?);
        Ok(self)
    }

    fn trusting(roots: RootCertStore) -> Self {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            // Invariant: ring's default provider supports the safe default
            // protocol versions.
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            config: Arc::new(config),
            server_name: None,
        }
    }

    /// Handshakes over `tcp`, connected to `addr` (`host:port`).
    pub(crate) async fn connect(&self, addr: &str, tcp: TcpStream) -> Result<TlsStream, NetError> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => server_name(host_part(addr))?,
        };
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        match connector.connect(name.clone(), tcp).await {
            Ok(stream) => Ok(TlsStream::established(stream.into())),
            Err(error) => Err(handshake_error(addr, &name, error)),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(certificate: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, NetError> {
    let chain = read_certificates(certificate, "certificate")?;
    let private_key = read_private_key(key)?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        // Invariant: as in `TlsClientConfig::trusting`.
        .expect("ring supports the default TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|error| match error {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                NetError::TlsKeyMismatch {
                    certificate: certificate.to_owned(),
                    key: key.to_owned(),
                }
            }
            other => NetError::TlsIdentityUnusable {
                certificate: certificate.to_owned(),
                key: key.to_owned(),
                reason: other.to_string(),
            },
        })?;
    Ok(Arc::new(config))
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, NetError> {
    std::fs::read(path).map_err(|source| NetError::TlsFileUnreadable {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of a PEM file; at least one.
fn read_certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let contents = read_file(path, what)?;
    let certificates = CertificateDer::pem_slice_iter(&contents)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(path, what, &error))?;
    if certificates.is_empty() {
        return Err(pem_error(path, what, &pem::Error::NoItemsFound));
    }
    Ok(certificates)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, NetError> {
    const WHAT: &str = "private key";
    let contents = read_file(path, WHAT)?;
    PrivateKeyDer::from_pem_slice(&contents).map_err(|error| pem_error(path, WHAT, &error))
}

fn pem_error(path: &Path, what: &'static str, error: &pem::Error) -> NetError {
    let problem = match error {
        pem::Error::NoItemsFound => format!("holds no PEM {what} (a \"-----BEGIN ...\" section)"),
        pem::Error::Base64Decode(_) => "is not valid PEM: a section is not valid base64".into(),
        pem::Error::MissingSectionEnd { .. } | pem::Error::IllegalSectionStart { .. } => {
            "is not valid PEM: a section is malformed or cut off".into()
        }
        other => format!("is not valid PEM: {other}"),
    };
    NetError::TlsFileInvalid {
        what,
        path: path.to_owned(),
        problem,
    }
}

fn server_name(name: &str) -> Result<ServerName<'static>, NetError> {
    ServerName::try_from(name.to_owned()).map_err(|_| NetError::TlsNameInvalid {
        name: name.to_owned(),
    })
}

/// `host` of `host:port`, `[v6]:port` or a bare host.
fn host_part(addr: &str) -> &str {
    if let Some(bracketed) = addr.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or(bracketed);
    }
    match addr.rsplit_once(':') {
        Some((host, _port)) => host,
        None => addr,
    }
}

/// What a failed client handshake means to a user.
fn handshake_error(addr: &str, name: &ServerName<'_>, error: io::Error) -> NetError {
    let addr = addr.to_owned();
    let tls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls_error {
        Some(rustls::Error::InvalidCertificate(certificate)) => NetError::TlsUntrusted {
            addr,
            reason: describe_certificate_error(certificate, name),
        },
        // Bytes that are no TLS record: a plain server answering garbage.
        Some(rustls::Error::InvalidMessage(_)) => NetError::TlsNotAnswered { addr },
        Some(other) => NetError::TlsHandshake {
            addr,
            reason: other.to_string(),
        },
        None => match error.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => NetError::TlsNotAnswered { addr },
            _ => NetError::TlsHandshake {
                addr,
                reason: error.to_string(),
            },
        },
    }
}

fn describe_certificate_error(error: &CertificateError, name: &ServerName<'_>) -> String {
    match error {
        CertificateError::UnknownIssuer => {
            "it is not signed by a trusted authority (a private CA can be given with --ca FILE)"
                .into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "it is not valid for the name {} (--tls-name NAME checks another name)",
                name.to_str()
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet".into()
        }
        CertificateError::Revoked => "it has been revoked".into(),
        CertificateError::BadSignature => "its signature does not verify".into(),
        CertificateError::BadEncoding => "it is malformed".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "it is not meant for a server (extended key usage)".into()
        }
        // webpki's errors arrive as text; rustls shows them by their
        // variant's name.
        CertificateError::Other(other) if other.0.to_string() == "CaUsedAsEndEntity" => {
            "it is a CA certificate, not a server's (a self-signed server certificate \
             needs basicConstraints CA:FALSE)"
                .into()
        }
        CertificateError::Other(other) => format!("it was refused ({})", other.0),
        // rustls shows the remaining variants by their names.
        other => format!("it was refused ({other:?})"),
    }
}

#[cfg(test)]
mod tests;
