//! turmoil's network as a client sees it, with one fault added: a client
//! that stops reading its socket for a while (its writes, heartbeats
//! included, go on).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use chat_net::{Connection, Listener, NetError, Network, SimListener, SimNetwork};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Sleep;
use turmoil::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// [`SimNetwork`] whose streams do not read during the given windows of
/// simulated time.
#[derive(Clone, Debug)]
pub struct FreezableNetwork {
    freezes: Arc<[(Duration, Duration)]>,
}

impl FreezableNetwork {
    /// Streams that stop reading during `freezes` (start, end).
    pub fn new(freezes: &[(Duration, Duration)]) -> Self {
        Self {
            freezes: freezes.into(),
        }
    }
}

/// A read half that pauses during freeze windows.
pub struct FreezableReader {
    inner: OwnedReadHalf,
    freezes: Arc<[(Duration, Duration)]>,
    thaw: Option<Pin<Box<Sleep>>>,
}

impl AsyncRead for FreezableReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if let Some(thaw) = self.thaw.as_mut() {
                ready!(thaw.as_mut().poll(context));
                self.thaw = None;
            }
            let now = turmoil::sim_elapsed().unwrap_or_default();
            let frozen_until = self
                .freezes
                .iter()
                .find(|(start, end)| *start <= now && now < *end)
                .map(|(_, end)| *end);
            match frozen_until {
                Some(end) => self.thaw = Some(Box::pin(tokio::time::sleep(end - now))),
                None => return Pin::new(&mut self.inner).poll_read(context, buffer),
            }
        }
    }
}

/// A listener of [`FreezableNetwork`] (clients never listen; the trait asks
/// for one).
pub struct FreezableListener {
    inner: SimListener,
    freezes: Arc<[(Duration, Duration)]>,
}

fn wrap(
    connection: Connection<OwnedReadHalf, OwnedWriteHalf>,
    freezes: &Arc<[(Duration, Duration)]>,
) -> Connection<FreezableReader, OwnedWriteHalf> {
    Connection {
        reader: FreezableReader {
            inner: connection.reader,
            freezes: freezes.clone(),
            thaw: None,
        },
        writer: connection.writer,
        peer: connection.peer,
    }
}

impl Network for FreezableNetwork {
    type Reader = FreezableReader;
    type Writer = OwnedWriteHalf;
    type Listener = FreezableListener;

    async fn bind(&self, addr: &str) -> Result<FreezableListener, NetError> {
        let inner = SimNetwork.bind(addr).await?;
        Ok(FreezableListener {
            inner,
            freezes: self.freezes.clone(),
        })
    }

    async fn connect(
        &self,
        addr: &str,
    ) -> Result<Connection<FreezableReader, OwnedWriteHalf>, NetError> {
        Ok(wrap(SimNetwork.connect(addr).await?, &self.freezes))
    }
}

impl Listener for FreezableListener {
    type Reader = FreezableReader;
    type Writer = OwnedWriteHalf;

    async fn accept(&mut self) -> Result<Connection<FreezableReader, OwnedWriteHalf>, NetError> {
        Ok(wrap(self.inner.accept().await?, &self.freezes))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
