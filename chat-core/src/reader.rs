//! Reading frames from a stream.

use bytes::BytesMut;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::codec::Decoder;

use crate::protocol::{FrameDecoder, FrameError};

/// Room for the next read while a connection is idle: a whole buffer per idle
/// connection would cost more memory than everything else it holds.
const READ_CHUNK_MIN: usize = 256;

/// Room for the next read while a connection keeps its reads full.
const READ_CHUNK_MAX: usize = 64 * 1024;

/// Reads frames from a stream, enforcing the frame size limit.
///
/// A small wrapper instead of tokio-util's `FramedRead` (which keeps an
/// 8 KiB buffer per connection) so that an idle connection holds a small
/// buffer, and a busy one a growing one.
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
            if self.buffer.is_empty() {
                // Between frames: wait with a small buffer.
                if self.buffer.capacity() > READ_CHUNK_MIN {
                    self.buffer = BytesMut::new();
                }
                self.chunk = READ_CHUNK_MIN;
            }
            self.buffer.reserve(self.chunk);
            let room = self.buffer.capacity() - self.buffer.len();
            match self.reader.read_buf(&mut self.buffer).await {
                Ok(read) if read == room => self.chunk = (self.chunk * 2).min(READ_CHUNK_MAX),
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
