//! Real TCP through tokio, plain or with TLS.
//!
//! One network type for both, whose halves are enums over a plain and a TLS
//! stream: the chat's drivers, generic over [`Network`], are then compiled
//! once for the binary, and plain TCP keeps its own vectored writes.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::tls::{TlsClientConfig, TlsServerConfig, TlsStream};
use crate::{Connection, Listener, NetError, Network};

/// The operating system's TCP, through tokio; with TLS when configured.
///
/// Every stream gets `TCP_NODELAY`: the chat batches its own writes, so
/// Nagle's algorithm would only add latency.
///
/// `TokioNetwork::default()` is plain TCP. With
/// [`with_tls_server`](Self::with_tls_server) its listeners speak TLS (the
/// handshake runs when the accepted connection is first read or written, so
/// it never blocks `accept`); with [`with_tls_client`](Self::with_tls_client)
/// `connect` handshakes before it returns.
#[derive(Clone, Debug, Default)]
pub struct TokioNetwork {
    server_tls: Option<TlsServerConfig>,
    client_tls: Option<TlsClientConfig>,
}

impl TokioNetwork {
    /// Listeners bound from now on speak TLS with `config`.
    pub fn with_tls_server(mut self, config: TlsServerConfig) -> Self {
        self.server_tls = Some(config);
        self
    }

    /// Connections opened from now on speak TLS with `config`.
    pub fn with_tls_client(mut self, config: TlsClientConfig) -> Self {
        self.client_tls = Some(config);
        self
    }
}

/// A listener bound with [`TokioNetwork::bind`].
#[derive(Debug)]
pub struct TokioListener {
    inner: TcpListener,
    tls: Option<TlsServerConfig>,
}

/// The read half of a [`TokioNetwork`] stream.
pub struct TokioReader(ReaderKind);

enum ReaderKind {
    Plain(OwnedReadHalf),
    Tls(ReadHalf<TlsStream>),
}

/// The write half of a [`TokioNetwork`] stream.
pub struct TokioWriter(WriterKind);

enum WriterKind {
    Plain(OwnedWriteHalf),
    Tls(WriteHalf<TlsStream>),
}

impl TokioWriter {
    /// Makes the close of this stream (when both halves are dropped) a TCP
    /// reset instead of an orderly FIN (`SO_LINGER` 0): what a client that
    /// crashed mid-conversation, or a middlebox, can leave a server with.
    /// For tests and the soak; plain TCP only (a TLS stream's socket is not
    /// reachable here).
    pub fn set_reset_on_close(&self) -> io::Result<()> {
        match &self.0 {
            WriterKind::Plain(writer) => writer.as_ref().set_zero_linger(),
            WriterKind::Tls(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a reset on close is only offered for plain TCP",
            )),
        }
    }
}

fn set_nodelay(stream: &TcpStream, peer: SocketAddr) {
    if let Err(error) = stream.set_nodelay(true) {
        // Not fatal: the stream still works, only with Nagle's delays.
        tracing::debug!(%error, %peer, "could not set TCP_NODELAY");
    }
}

fn split_plain(stream: TcpStream, peer: SocketAddr) -> Connection<TokioReader, TokioWriter> {
    let (reader, writer) = stream.into_split();
    Connection {
        reader: TokioReader(ReaderKind::Plain(reader)),
        writer: TokioWriter(WriterKind::Plain(writer)),
        peer,
    }
}

fn split_tls(stream: TlsStream, peer: SocketAddr) -> Connection<TokioReader, TokioWriter> {
    let (reader, writer) = tokio::io::split(stream);
    Connection {
        reader: TokioReader(ReaderKind::Tls(reader)),
        writer: TokioWriter(WriterKind::Tls(writer)),
        peer,
    }
}

impl Network for TokioNetwork {
    type Reader = TokioReader;
    type Writer = TokioWriter;
    type Listener = TokioListener;

    async fn bind(&self, addr: &str) -> Result<TokioListener, NetError> {
        let inner = TcpListener::bind(addr)
            .await
            .map_err(|source| NetError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        Ok(TokioListener {
            inner,
            tls: self.server_tls.clone(),
        })
    }

    async fn connect(&self, addr: &str) -> Result<Connection<TokioReader, TokioWriter>, NetError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| NetError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let peer = stream.peer_addr().map_err(|source| NetError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
        set_nodelay(&stream, peer);
        match &self.client_tls {
            None => Ok(split_plain(stream, peer)),
            Some(tls) => Ok(split_tls(tls.connect(addr, stream).await?, peer)),
        }
    }
}

impl Listener for TokioListener {
    type Reader = TokioReader;
    type Writer = TokioWriter;

    async fn accept(&mut self) -> Result<Connection<TokioReader, TokioWriter>, NetError> {
        let (stream, peer) = self.inner.accept().await.map_err(NetError::Accept)?;
        set_nodelay(&stream, peer);
        match &self.tls {
            None => Ok(split_plain(stream, peer)),
            Some(tls) => Ok(split_tls(tls.accept_lazily(stream, peer), peer)),
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for TokioReader {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            ReaderKind::Plain(reader) => Pin::new(reader).poll_read(context, buffer),
            ReaderKind::Tls(reader) => Pin::new(reader).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for TokioWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            WriterKind::Plain(writer) => Pin::new(writer).poll_write(context, buffer),
            WriterKind::Tls(writer) => Pin::new(writer).poll_write(context, buffer),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            WriterKind::Plain(writer) => Pin::new(writer).poll_write_vectored(context, buffers),
            WriterKind::Tls(writer) => Pin::new(writer).poll_write_vectored(context, buffers),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.0 {
            WriterKind::Plain(writer) => writer.is_write_vectored(),
            WriterKind::Tls(writer) => writer.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            WriterKind::Plain(writer) => Pin::new(writer).poll_flush(context),
            WriterKind::Tls(writer) => Pin::new(writer).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            WriterKind::Plain(writer) => Pin::new(writer).poll_shutdown(context),
            WriterKind::Tls(writer) => Pin::new(writer).poll_shutdown(context),
        }
    }
}
