//! Reading frames from a stream.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio_util::codec::Decoder;

use crate::buggify::{self, Site};
use crate::protocol::{FrameDecoder, FrameError};

/// Most bytes read at once while no partial frame is buffered. Such a read
/// goes to the stack and only what arrived is copied to the heap, so that an
/// idle connection holds no buffer at all.
const READ_IDLE_BYTES_MAX: usize = 16 * 1024;

/// Room for the next read after a partial frame, at first.
const READ_CHUNK_MIN: usize = 256;

/// Room for the next read while a connection keeps its reads full.
const READ_CHUNK_MAX: usize = 64 * 1024;

/// Reads frames from a stream, enforcing the frame size limit.
///
/// A small wrapper instead of tokio-util's `FramedRead` (which keeps an
/// 8 KiB buffer per connection) so that an idle connection holds no buffer,
/// and a busy one a growing one.
pub struct FrameReader<R, T> {
    reader: R,
    buffer: BytesMut,
    /// Room to make for the next read: doubles while reads fill it.
    chunk: usize,
    decoder: FrameDecoder<T>,
    /// No more frames will be returned (end of stream, or an error).
    finished: bool,
    /// The stream itself ended or failed.
    eof: bool,
}

impl<R: AsyncRead + Unpin, T: DeserializeOwned> FrameReader<R, T> {
    /// Reads frames of at most `frame_bytes_max` bytes from `reader`.
    pub fn new(reader: R, frame_bytes_max: usize) -> Self {
        Self {
            reader,
            buffer: BytesMut::new(),
            chunk: READ_CHUNK_MIN,
            decoder: FrameDecoder::new(frame_bytes_max),
            finished: false,
            eof: false,
        }
    }

    /// True once the stream ended or failed.
    pub fn at_eof(&self) -> bool {
        self.eof
    }

    /// Reads and drops everything until the peer closes its side.
    pub async fn discard_rest(&mut self) {
        self.finished = true;
        self.buffer.clear();
        while !self.eof {
            self.buffer.reserve(self.chunk);
            match self.reader.read_buf(&mut self.buffer).await {
                Ok(0) | Err(_) => self.eof = true,
                Ok(_) => self.buffer.clear(),
            }
        }
    }

    /// The next frame if one is already buffered, without reading.
    pub fn try_next(&mut self) -> Option<Result<T, FrameError>> {
        if self.finished {
            return None;
        }
        match self.decoder.decode(&mut self.buffer) {
            Ok(frame) => frame.map(Ok),
            Err(error) => {
                self.finished = true;
                Some(Err(error))
            }
        }
    }

    /// The next frame; `None` at a clean end of stream. Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<T, FrameError>> {
        loop {
            match self.next_or_progress().await {
                Read::Frame(frame) => return Some(frame),
                Read::Progress => {}
                Read::End => return None,
            }
        }
    }

    /// The next frame, or [`Read::Progress`] after a read that brought
    /// bytes of a frame not complete yet (so that a slow peer sending a
    /// large frame counts as alive). Cancel-safe.
    pub async fn next_or_progress(&mut self) -> Read<T> {
        if self.finished {
            return Read::End;
        }
        match self.decoder.decode(&mut self.buffer) {
            Ok(Some(frame)) => return Read::Frame(Ok(frame)),
            Ok(None) => {}
            Err(error) => {
                self.finished = true;
                return Read::Frame(Err(error));
            }
        }
        match self.read_more().await {
            Ok(0) => {
                self.finished = true;
                self.eof = true;
                match self.decoder.decode_eof(&mut self.buffer) {
                    Ok(Some(frame)) => Read::Frame(Ok(frame)),
                    Ok(None) => Read::End,
                    Err(error) => Read::Frame(Err(error)),
                }
            }
            Ok(_) => match self.decoder.decode(&mut self.buffer) {
                Ok(Some(frame)) => Read::Frame(Ok(frame)),
                Ok(None) => Read::Progress,
                Err(error) => {
                    self.finished = true;
                    Read::Frame(Err(error))
                }
            },
            Err(error) => {
                self.finished = true;
                self.eof = true;
                Read::Frame(Err(FrameError::Io(error)))
            }
        }
    }

    /// One read: into the stack between frames (so an idle connection
    /// holds no buffer), into a growing buffer inside a frame.
    async fn read_more(&mut self) -> std::io::Result<usize> {
        if self.buffer.is_empty() {
            self.buffer = BytesMut::new();
            self.chunk = READ_CHUNK_MIN;
            return std::future::poll_fn(|context| {
                poll_read_copied(&mut self.reader, &mut self.buffer, context)
            })
            .await;
        }
        self.buffer.reserve(self.chunk);
        let room = self.buffer.capacity() - self.buffer.len();
        let read = self.reader.read_buf(&mut self.buffer).await;
        if matches!(read, Ok(read) if read == room) {
            self.chunk = (self.chunk * 2).min(READ_CHUNK_MAX);
        }
        read
    }
}

/// What [`FrameReader::next_or_progress`] got.
#[derive(Debug)]
pub enum Read<T> {
    /// A frame, or why none could be read (the reader then ends).
    Frame(Result<T, FrameError>),
    /// Bytes of a frame arrived; the frame is not complete yet.
    Progress,
    /// The stream ended cleanly.
    End,
}

/// One read into a stack buffer; what arrived is appended to `buffer`.
fn poll_read_copied<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut BytesMut,
    context: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    let mut chunk = [MaybeUninit::<u8>::uninit(); READ_IDLE_BYTES_MAX];
    let mut limit = READ_IDLE_BYTES_MAX;
    if buggify::fire(Site::ShortRead) {
        limit = 1 + buggify::below(16) as usize; // a few bytes, as a slow link gives
    }
    let mut chunk = ReadBuf::uninit(&mut chunk[..limit]);
    ready!(Pin::new(reader).poll_read(context, &mut chunk))?;
    buffer.extend_from_slice(chunk.filled());
    Poll::Ready(Ok(chunk.filled().len()))
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::protocol::ClientFrame;

    const HEARTBEAT: &[u8] = b"{\"type\":\"heartbeat\"}\n";

    #[tokio::test]
    async fn frames_split_and_joined_across_reads_all_arrive_and_idle_holds_no_buffer() {
        let (mut peer, ours) = tokio::io::duplex(64 * 1024);
        let mut frames = FrameReader::<_, ClientFrame>::new(ours, 1024);
        // Two frames in one read, then one frame cut in the middle.
        let mut input = [HEARTBEAT, HEARTBEAT].concat();
        input.extend_from_slice(&HEARTBEAT[..7]);
        peer.write_all(&input).await.expect("duplex write");
        for _ in 0..2 {
            let frame = frames.next().await.expect("a frame").expect("valid");
            assert_eq!(frame, ClientFrame::Heartbeat);
        }
        let rest = async {
            tokio::task::yield_now().await;
            peer.write_all(&HEARTBEAT[7..]).await.expect("duplex write");
            peer
        };
        let (frame, mut peer) = tokio::join!(frames.next(), rest);
        assert_eq!(
            frame.expect("a frame").expect("valid"),
            ClientFrame::Heartbeat
        );
        {
            // Waiting for the next frame holds no buffer.
            let mut waiting = std::pin::pin!(frames.next());
            let mut context = Context::from_waker(std::task::Waker::noop());
            assert!(waiting.as_mut().poll(&mut context).is_pending());
        }
        assert_eq!(
            frames.buffer.capacity(),
            0,
            "nothing buffered between frames"
        );
        // A frame larger than one stack read still arrives whole.
        let text = "x".repeat(READ_IDLE_BYTES_MAX + 100);
        let big = format!("{{\"type\":\"send\",\"room\":\"r\",\"id\":1,\"text\":\"{text}\"}}\n");
        let mut frames = FrameReader::<_, ClientFrame>::new(frames.reader, 64 * 1024);
        let (_, frame) = tokio::join!(
            async { peer.write_all(big.as_bytes()).await.expect("duplex write") },
            frames.next()
        );
        match frame.expect("a frame").expect("valid") {
            ClientFrame::Send { text: received, .. } => assert_eq!(received, text),
            other => panic!("unexpected {other:?}"),
        }
        drop(peer);
        assert!(frames.next().await.is_none(), "a clean end");
        assert!(frames.at_eof());
    }

    #[tokio::test]
    async fn frames_already_read_come_without_reading_and_the_end_is_told_once_reached() {
        let (mut peer, ours) = tokio::io::duplex(64 * 1024);
        let mut frames = FrameReader::<_, ClientFrame>::new(ours, 1024);
        assert!(frames.try_next().is_none(), "nothing read yet");
        peer.write_all(&HEARTBEAT.repeat(3))
            .await
            .expect("duplex write");
        let first = frames.next().await.expect("a frame").expect("valid");
        assert_eq!(first, ClientFrame::Heartbeat);
        // The other two came in the same read.
        for _ in 0..2 {
            let frame = frames.try_next().expect("a frame buffered");
            assert_eq!(frame.expect("valid"), ClientFrame::Heartbeat);
        }
        assert!(frames.try_next().is_none(), "nothing more buffered");
        assert!(!frames.at_eof(), "the peer has not closed");
        drop(peer);
        assert!(frames.next().await.is_none(), "a clean end");
        assert!(frames.at_eof());
    }

    #[tokio::test(start_paused = true)]
    async fn discarding_reads_everything_until_the_peer_closes() {
        let (mut peer, ours) = tokio::io::duplex(1024);
        let mut frames = FrameReader::<_, ClientFrame>::new(ours, 1024);
        let peer_writes = async {
            // More than the pipe holds: it gets through only if read.
            for _ in 0..100 {
                peer.write_all(HEARTBEAT).await.expect("duplex write");
            }
            drop(peer);
        };
        let both = async { tokio::join!(peer_writes, frames.discard_rest()) };
        tokio::time::timeout(std::time::Duration::from_secs(10), both)
            .await
            .expect("everything the peer wrote was read");
        assert!(frames.at_eof());
        assert!(frames.next().await.is_none(), "nothing is left to read");
    }
}
