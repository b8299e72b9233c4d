//! The stream of one TLS connection, which on the server handshakes only
//! when the connection's task first reads or writes.
//!
//! `Listener::accept` must return at once, or one silent client would stall
//! every other: so an accepted [`TlsStream`] starts by peeking at the
//! client's first byte, then runs tokio-rustls's `Accept` future, both
//! driven from `poll_read`/`poll_write`. The halves handed to the chat come
//! from `tokio::io::split`, so either half may drive the handshake; a half
//! that polled meanwhile is woken when it ends (the socket remembers only
//! the latest waker per direction, so the other half could otherwise wait
//! forever).

use std::future::Future;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::TlsServerConfig;

/// The first byte of a TLS record that carries a handshake message (a
/// ClientHello always does). JSON starts with `{`, never with it.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Most reads of a refused client's input per poll, so that a flood cannot
/// hold a runtime thread.
const DRAIN_READS_PER_POLL_MAX: usize = 16;

/// Bytes read at once from a refused client (and dropped).
const DRAIN_READ_BYTES: usize = 1024;

/// A TLS stream over TCP, client or server; see the module docs.
pub(crate) struct TlsStream {
    state: State,
    /// The client's address, for the server's log lines.
    peer: Option<SocketAddr>,
    /// The tasks of the read and the write side that waited for the
    /// handshake, to wake when it ends.
    parked: [Option<Waker>; 2],
}

enum State {
    /// Accepted: waiting for the first byte, to tell TLS from plain TCP.
    Peeking {
        tcp: TcpStream,
        config: TlsServerConfig,
    },
    /// The server's side of the handshake.
    Handshaking(Box<tokio_rustls::Accept<TcpStream>>),
    /// Ready for the chat's bytes.
    Established(Box<tokio_rustls::TlsStream<TcpStream>>),
    /// A plain-TCP client: writing it the refusal, then our end of stream.
    Refusing {
        tcp: TcpStream,
        refusal: Arc<[u8]>,
        written: usize,
    },
    /// The refusal is written: reading (and dropping) the client's input to
    /// its end, so that closing with unread input does not reset the
    /// connection before the client reads the refusal.
    Draining(TcpStream),
    /// The handshake failed; the error was returned once already.
    Failed,
}

/// Where a stream that was peeking at the first byte, or refusing, goes next.
enum Transition {
    Handshake(Arc<rustls::ServerConfig>),
    Refuse(Arc<[u8]>),
    Drain,
}

#[derive(Clone, Copy)]
enum Side {
    Read = 0,
    Write = 1,
}

impl TlsStream {
    /// A connection accepted by a TLS listener; nothing is read yet.
    pub(super) fn accepted(tcp: TcpStream, peer: SocketAddr, config: TlsServerConfig) -> Self {
        Self {
            state: State::Peeking { tcp, config },
            peer: Some(peer),
            parked: [None, None],
        }
    }

    /// A stream whose handshake is done (a client's, which handshakes
    /// while connecting).
    pub(super) fn established(stream: tokio_rustls::TlsStream<TcpStream>) -> Self {
        Self {
            state: State::Established(Box::new(stream)),
            peer: None,
            parked: [None, None],
        }
    }

    /// Drives the stream until it is established, refused (draining) or
    /// failed; parks the caller's waker while it is not.
    fn poll_ready(&mut self, side: Side, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        if matches!(self.state, State::Established(_)) {
            return Poll::Ready(Ok(()));
        }
        match self.poll_progress(context) {
            Poll::Pending => {
                let slot = &mut self.parked[side as usize];
                if !slot
                    .as_ref()
                    .is_some_and(|parked| parked.will_wake(context.waker()))
                {
                    *slot = Some(context.waker().clone());
                }
                Poll::Pending
            }
            Poll::Ready(result) => {
                for waker in self.parked.iter_mut().filter_map(Option::take) {
                    waker.wake();
                }
                Poll::Ready(result)
            }
        }
    }

    fn poll_progress(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let next = match &mut self.state {
                State::Peeking { tcp, config } => match ready!(poll_first_byte(tcp, context)) {
                    Ok(None) => Transition::Drain,
                    Ok(Some(TLS_HANDSHAKE_RECORD)) => Transition::Handshake(config.current()),
                    Ok(Some(_)) => Transition::Refuse(config.plaintext_refusal.clone()),
                    Err(error) => return self.fail(error),
                },
                State::Handshaking(accept) => match ready!(Pin::new(accept.as_mut()).poll(context))
                {
                    Ok(stream) => {
                        self.state = State::Established(Box::new(stream.into()));
                        return Poll::Ready(Ok(()));
                    }
                    Err(error) => {
                        if let Some(peer) = self.peer {
                            tracing::info!("TLS handshake with {peer} failed: {error}.");
                        }
                        return self.fail(error);
                    }
                },
                State::Refusing {
                    tcp,
                    refusal,
                    written,
                } => match ready!(poll_refuse(tcp, refusal, written, context)) {
                    Ok(()) => Transition::Drain,
                    Err(error) => return self.fail(error),
                },
                State::Established(_) | State::Draining(_) => return Poll::Ready(Ok(())),
                State::Failed => return Poll::Ready(Err(failed_error())),
            };
            self.advance(next);
        }
    }

    fn advance(&mut self, next: Transition) {
        let tcp = match mem::replace(&mut self.state, State::Failed) {
            State::Peeking { tcp, .. } | State::Refusing { tcp, .. } => tcp,
            _ => unreachable!("only a peeking or refusing stream advances"),
        };
        self.state = match next {
            Transition::Handshake(config) => State::Handshaking(Box::new(
                tokio_rustls::TlsAcceptor::from(config).accept(tcp),
            )),
            Transition::Refuse(refusal) => {
                if let Some(peer) = self.peer {
                    tracing::info!("Refused a plain-TCP client from {peer}: this port speaks TLS.");
                }
                State::Refusing {
                    tcp,
                    refusal,
                    written: 0,
                }
            }
            Transition::Drain => State::Draining(tcp),
        };
    }

    fn fail(&mut self, error: io::Error) -> Poll<io::Result<()>> {
        self.state = State::Failed;
        Poll::Ready(Err(error))
    }

    /// The established stream, once ready; an error for a refused client.
    fn poll_established(
        &mut self,
        context: &mut Context<'_>,
    ) -> Poll<io::Result<Pin<&mut tokio_rustls::TlsStream<TcpStream>>>> {
        ready!(self.poll_ready(Side::Write, context))?;
        match &mut self.state {
            State::Established(stream) => Poll::Ready(Ok(Pin::new(stream.as_mut()))),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "a plain-TCP client was refused on this TLS port",
            ))),
        }
    }
}

fn failed_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the TLS handshake failed")
}

/// The first byte the client sent, left unread; `None` if it closed first.
fn poll_first_byte(tcp: &TcpStream, context: &mut Context<'_>) -> Poll<io::Result<Option<u8>>> {
    let mut first = [0u8; 1];
    let mut buffer = ReadBuf::new(&mut first);
    ready!(tcp.poll_peek(context, &mut buffer))?;
    Poll::Ready(Ok(buffer.filled().first().copied()))
}

/// Writes the rest of the refusal, then our end of stream.
fn poll_refuse(
    tcp: &mut TcpStream,
    refusal: &[u8],
    written: &mut usize,
    context: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while *written < refusal.len() {
        match ready!(Pin::new(&mut *tcp).poll_write(context, &refusal[*written..]))? {
            0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            count => *written += count,
        }
    }
    Pin::new(tcp).poll_shutdown(context)
}

/// Reads and drops a refused client's input; ready (end of stream) when the
/// client has closed, or its connection failed.
fn poll_drain(tcp: &mut TcpStream, context: &mut Context<'_>) -> Poll<io::Result<()>> {
    let mut scratch = [0u8; DRAIN_READ_BYTES];
    for _ in 0..DRAIN_READS_PER_POLL_MAX {
        let mut buffer = ReadBuf::new(&mut scratch);
        match ready!(Pin::new(&mut *tcp).poll_read(context, &mut buffer)) {
            Ok(()) if buffer.filled().is_empty() => return Poll::Ready(Ok(())),
            Ok(()) => {}
            Err(_) => return Poll::Ready(Ok(())),
        }
    }
    // More may be waiting: let other tasks run first.
    context.waker().wake_by_ref();
    Poll::Pending
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_ready(Side::Read, context))?;
        match &mut this.state {
            State::Established(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
            State::Draining(tcp) => poll_drain(tcp, context),
            _ => unreachable!("a ready stream is established or draining"),
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_established(context))?;
        stream.poll_write(context, buffer)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_established(context))?;
        stream.poll_write_vectored(context, buffers)
    }

    /// True as for tokio-rustls's streams: `tokio::io::split` asks once,
    /// before the handshake.
    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Established(stream) => Pin::new(stream.as_mut()).poll_flush(context),
            // Nothing of the chat's is buffered before the handshake ends.
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Established(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
            // Closing before the handshake ends: dropping the socket is all.
            _ => Poll::Ready(Ok(())),
        }
    }
}
