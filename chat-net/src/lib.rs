//! The network and the storage the chat runs on, as traits.
//!
//! chat-core's server and client drivers are generic over [`Network`], so the
//! same code runs over real TCP ([`TokioNetwork`]) and, behind the `sim`
//! feature, over turmoil's simulated network (`SimNetwork`), where partitions,
//! delays and crashes are injected deterministically. Likewise its
//! write-ahead log is generic over [`Storage`] ([`storage`]): the real file
//! system ([`TokioStorage`]) or turmoil's simulated one (`SimStorage`).
//!
//! The network trait asks only for what both implementations offer: bind a
//! listener, accept, connect, and split a stream into an owned read half and
//! write half. This crate is the only one that names tokio's or turmoil's
//! socket and file types, and it knows nothing about chat.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

mod tcp;
pub use tcp::{TokioListener, TokioNetwork};

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

/// Errors of this crate: each names the address involved.
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
