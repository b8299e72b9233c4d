//! Framing: newline-delimited JSON, one frame per line.
//!
//! The decoder refuses a line longer than its limit before buffering more
//! than that, and a line that does not start like a JSON object at once,
//! without waiting for its newline: a peer speaking another protocol (an
//! HTTP request, a TLS handshake) is told so immediately instead of after
//! the frame limit or a timeout.

use std::io;
use std::marker::PhantomData;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::Decoder;

use super::frames::{ErrorCode, ServerFrame};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The line is longer than the limit.
    #[error("frame longer than {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The line is not valid UTF-8.
    #[error("frame is not valid UTF-8")]
    InvalidUtf8,
    /// The line is not a frame of this protocol.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// Reading from the connection failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

impl FrameError {
    /// The error frame a server sends back for this error, if the peer can
    /// still be told anything.
    pub fn to_error_frame(&self) -> Option<ServerFrame> {
        let code = match self {
            FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            FrameError::InvalidUtf8 => ErrorCode::InvalidUtf8,
            FrameError::Malformed(_) => ErrorCode::BadFrame,
            FrameError::Truncated | FrameError::Io(_) => return None,
        };
        Some(ServerFrame::error(code, self.to_string()))
    }
}

/// Decodes newline-delimited JSON frames of type `T`, at most `frame_bytes_max`
/// bytes each (newline included), for use with `tokio_util::codec::FramedRead`.
#[derive(Debug)]
pub struct FrameDecoder<T> {
    frame_bytes_max: usize,
    /// How far the current buffer has been searched for a newline already.
    scanned: usize,
    frame: PhantomData<fn() -> T>,
}

impl<T> FrameDecoder<T> {
    /// A decoder that refuses frames longer than `frame_bytes_max`.
    pub fn new(frame_bytes_max: usize) -> Self {
        Self {
            frame_bytes_max,
            scanned: 0,
            frame: PhantomData,
        }
    }
}

/// True when `line` (a partial frame) cannot become a JSON object: its
/// first byte that is not white space is not `{`.
fn cannot_be_json(line: &[u8]) -> bool {
    line.iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|byte| *byte != b'{')
}

impl<T: DeserializeOwned> Decoder for FrameDecoder<T> {
    type Item = T;
    type Error = FrameError;

    fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<T>, FrameError> {
        let search_end = buffer.len().min(self.frame_bytes_max);
        let newline = buffer[self.scanned..search_end]
            .iter()
            .position(|&byte| byte == b'\n');
        let Some(offset) = newline else {
            if buffer.len() >= self.frame_bytes_max {
                return Err(FrameError::TooLarge {
                    limit: self.frame_bytes_max,
                });
            }
            if cannot_be_json(&buffer[..search_end]) {
                return Err(FrameError::Malformed(
                    "a frame is a JSON object on one line".to_owned(),
                ));
            }
            self.scanned = search_end;
            return Ok(None);
        };
        let line_end = self.scanned + offset;
        self.scanned = 0;
        let line = buffer.split_to(line_end + 1);
        decode_line(&line[..line_end]).map(Some)
    }

    fn decode_eof(&mut self, buffer: &mut BytesMut) -> Result<Option<T>, FrameError> {
        match self.decode(buffer)? {
            Some(frame) => Ok(Some(frame)),
            None if buffer.is_empty() => Ok(None),
            None => Err(FrameError::Truncated),
        }
    }
}

/// Decodes one line (without its newline) into a frame.
pub fn decode_line<T: DeserializeOwned>(line: &[u8]) -> Result<T, FrameError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| FrameError::InvalidUtf8)?;
    serde_json::from_str(text).map_err(|error| FrameError::Malformed(error.to_string()))
}

/// Encodes a frame as one line, newline included.
pub fn encode<T: Serialize>(frame: &T) -> Bytes {
    let mut buffer = BytesMut::with_capacity(128).writer();
    // Invariant: our frames are plain structs with string keys, which
    // serde_json always serializes, and writing to memory cannot fail.
    serde_json::to_writer(&mut buffer, frame).expect("frames always serialize");
    let mut buffer = buffer.into_inner();
    buffer.put_u8(b'\n');
    buffer.freeze()
}

#[cfg(test)]
mod tests;
