//! The network and the storage the chat runs on, as traits.
//!
//! chat-core's server and client drivers are generic over [`Network`], so the
//! same code runs over real TCP ([`TokioNetwork`], optionally with TLS) and,
//! behind the `sim` feature, over turmoil's simulated network (`SimNetwork`),
//! where partitions, delays and crashes are injected deterministically.
//! Likewise the chat's write-ahead log is generic over [`Storage`]
//! ([`storage`]): the real file system ([`TokioStorage`]) or turmoil's
//! simulated one (`SimStorage`).
//!
//! The network trait asks only for what both implementations offer: bind a
//! listener, accept, connect, and split a stream into an owned read half and
//! write half. TLS sits below it ([`TlsServerConfig`], [`TlsClientConfig`]),
//! so the chat reads and writes the same bytes either way. This crate is the
//! only one that names tokio's or turmoil's socket and file types, and it
//! knows nothing about chat.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};

mod tcp;
mod tls;
pub use tcp::{TokioListener, TokioNetwork, TokioReader, TokioWriter};
pub use tls::{TlsClientConfig, TlsServerConfig};

#[cfg(feature = "sim")]
mod sim;
#[cfg(feature = "sim")]
pub use sim::{SimListener, SimNetwork};

pub mod storage;
#[cfg(feature = "sim")]
pub use storage::SimStorage;
pub use storage::{
    FaultyStorage, Storage, StorageError, StorageFile, StorageOperation, TokioStorage,
};

/// Errors of this crate: each names the address or the file involved.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the operating system (or simulator) said.
        source: io::Error,
    },
    /// The connection could not be established.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address asked for.
        addr: String,
        /// What the operating system (or simulator) said.
        source: io::Error,
    },
    /// Accepting a connection failed (for example: out of file descriptors).
    #[error("cannot accept a connection: {0}")]
    Accept(#[source] io::Error),
    /// A TLS certificate or key file could not be read.
    #[error("cannot read the TLS {what} file {}: {source}", path.display())]
    TlsFileUnreadable {
        /// What the file should hold ("certificate", "private key", ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A TLS certificate or key file holds nothing usable of its kind.
    #[error("the TLS {what} file {} {problem}", path.display())]
    TlsFileInvalid {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The private key is not the certificate's.
    #[error(
        "the private key in {} does not match the certificate in {}",
        key.display(),
        certificate.display()
    )]
    TlsKeyMismatch {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the certificate and key for another reason.
    #[error(
        "the TLS certificate in {} with the key in {} cannot be used: {reason}",
        certificate.display(),
        key.display()
    )]
    TlsIdentityUnusable {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The system has no root certificates to verify servers with.
    #[error("no trusted root certificates found on this system ({detail})")]
    TlsRootsMissing {
        /// What loading them reported.
        detail: String,
    },
    /// A name that cannot be checked against a certificate.
    #[error("{name:?} is not a host name or IP address a TLS certificate can be checked against")]
    TlsNameInvalid {
        /// The name given.
        name: String,
    },
    /// The server's certificate did not verify.
    #[error("the certificate of {addr} is not trusted: {reason}")]
    TlsUntrusted {
        /// The address connected to.
        addr: String,
        /// Why, in words.
        reason: String,
    },
    /// The peer answered the TLS handshake with something else than TLS,
    /// or closed the connection.
    #[error(
        "the server at {addr} did not answer the TLS handshake: is it a TLS server? try without --tls"
    )]
    TlsNotAnswered {
        /// The address connected to.
        addr: String,
    },
    /// The TLS handshake failed for another reason.
    #[error("the TLS handshake with {addr} failed: {reason}")]
    TlsHandshake {
        /// The address connected to.
        addr: String,
        /// What rustls said.
        reason: String,
    },
}

/// One established stream, already split into halves that can move to
/// different tasks.
pub struct Connection<R, W> {
    /// The half that reads what the peer sent.
    pub reader: R,
    /// The half that writes to the peer.
    pub writer: W,
    /// The peer's address.
    pub peer: SocketAddr,
}

/// A network on which the chat can listen and connect.
pub trait Network: Clone + Send + Sync + 'static {
    /// Read half of a stream.
    type Reader: AsyncRead + Unpin + Send + 'static;
    /// Write half of a stream.
    type Writer: AsyncWrite + Unpin + Send + 'static;
    /// A bound listener.
    type Listener: Listener<Reader = Self::Reader, Writer = Self::Writer>;

    /// Binds a listener to `addr` (`host:port`; port 0 picks a free port).
    fn bind(&self, addr: &str) -> impl Future<Output = Result<Self::Listener, NetError>> + Send;

    /// Connects to `addr` (`host:port`). No timeout: callers add their own.
    fn connect(
        &self,
        addr: &str,
    ) -> impl Future<Output = Result<Connection<Self::Reader, Self::Writer>, NetError>> + Send;
}

/// A bound listener.
pub trait Listener: Send + 'static {
    /// Read half of an accepted stream.
    type Reader;
    /// Write half of an accepted stream.
    type Writer;

    /// Waits for the next incoming connection.
    fn accept(
        &mut self,
    ) -> impl Future<Output = Result<Connection<Self::Reader, Self::Writer>, NetError>> + Send;

    /// The address actually bound (the real port when 0 was asked for).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}
