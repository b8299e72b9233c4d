//! Real TCP through tokio.

use std::io;
use std::net::SocketAddr;

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::{Connection, Listener, NetError, Network};

/// The operating system's TCP, through tokio.
///
/// Every stream gets `TCP_NODELAY`: the chat batches its own writes, so
/// Nagle's algorithm would only add latency.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioNetwork;

/// A listener bound with [`TokioNetwork::bind`].
#[derive(Debug)]
pub struct TokioListener {
    inner: TcpListener,
}

fn split(stream: TcpStream, peer: SocketAddr) -> Connection<OwnedReadHalf, OwnedWriteHalf> {
    if let Err(error) = stream.set_nodelay(true) {
        // Not fatal: the stream still works, only with Nagle's delays.
        tracing::debug!(%error, %peer, "could not set TCP_NODELAY");
    }
    let (reader, writer) = stream.into_split();
    Connection {
        reader,
        writer,
        peer,
    }
}

impl Network for TokioNetwork {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;
    type Listener = TokioListener;

    async fn bind(&self, addr: &str) -> Result<TokioListener, NetError> {
        let inner = TcpListener::bind(addr)
            .await
            .map_err(|source| NetError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        Ok(TokioListener { inner })
    }

    async fn connect(
        &self,
        addr: &str,
    ) -> Result<Connection<OwnedReadHalf, OwnedWriteHalf>, NetError> {
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
        Ok(split(stream, peer))
    }
}

impl Listener for TokioListener {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;

    async fn accept(&mut self) -> Result<Connection<OwnedReadHalf, OwnedWriteHalf>, NetError> {
        let (stream, peer) = self.inner.accept().await.map_err(NetError::Accept)?;
        Ok(split(stream, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
