//! turmoil's simulated TCP (feature `sim`), for deterministic simulation.
//!
//! Host names registered with the simulation resolve here (`server:9999`).

use std::io;
use std::net::SocketAddr;

use turmoil::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use turmoil::net::{TcpListener, TcpStream};

use crate::{Connection, Listener, NetError, Network};

/// turmoil's network, as seen from the simulated host the code runs on.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimNetwork;

/// A listener bound with [`SimNetwork::bind`].
pub struct SimListener {
    inner: TcpListener,
}

fn split(stream: TcpStream, peer: SocketAddr) -> Connection<OwnedReadHalf, OwnedWriteHalf> {
    let (reader, writer) = stream.into_split();
    Connection {
        reader,
        writer,
        peer,
    }
}

impl Network for SimNetwork {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;
    type Listener = SimListener;

    async fn bind(&self, addr: &str) -> Result<SimListener, NetError> {
        let inner = TcpListener::bind(addr)
            .await
            .map_err(|source| NetError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        Ok(SimListener { inner })
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

impl Listener for SimListener {
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
