//! Reading frames from a stream.

use bytes::BytesMut;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::codec::Decoder;

use crate::protocol::{FrameDecoder, FrameError};

/// Bytes a connection's read buffer grows by.
const READ_CHUNK_BYTES: usize = 4096;

/// Reads frames from a stream, enforcing the frame size limit.
///
/// A small wrapper instead of tokio-util's `FramedRead` so that the read
/// buffer can be released while the connection is idle.
pub struct FrameReader<R, T> {
    reader: R,
    buffer: BytesMut,
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
            self.buffer.reserve(READ_CHUNK_BYTES);
            match self.reader.read_buf(&mut self.buffer).await {
                Ok(0) | Err(_) => self.eof = true,
                Ok(_) => self.buffer.clear(),
            }
        }
    }

    /// The next frame; `None` at a clean end of stream. Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<T, FrameError>> {
        if self.finished {
            return None;
        }
        loop {
            match self.decoder.decode(&mut self.buffer) {
                Ok(Some(frame)) => return Some(Ok(frame)),
                Ok(None) => {}
                Err(error) => {
                    self.finished = true;
                    return Some(Err(error));
                }
            }
            if self.buffer.is_empty() && self.buffer.capacity() > 0 {
                // Idle between frames: hold no buffer while waiting.
                self.buffer = BytesMut::new();
            }
            self.buffer.reserve(READ_CHUNK_BYTES);
            match self.reader.read_buf(&mut self.buffer).await {
                Ok(0) => {
                    self.finished = true;
                    self.eof = true;
                    return self.decoder.decode_eof(&mut self.buffer).transpose();
                }
                Ok(_) => {}
                Err(error) => {
                    self.finished = true;
                    self.eof = true;
                    return Some(Err(FrameError::Io(error)));
                }
            }
        }
    }
}
