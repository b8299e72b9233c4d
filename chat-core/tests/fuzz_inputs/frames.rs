//! `decode_frames`: arbitrary bytes, split into arbitrary reads, through
//! the frame decoder and the frame reader, as client and as server frames.
//!
//! Input layout: one byte picks the frame limit, one the number of read
//! lengths, then that many bytes of read lengths (used in turn, over and
//! over); the rest is the stream. Properties:
//! - nothing panics, and the reader ends (bounded by the bytes it got);
//! - how the stream is split into reads changes neither the frames decoded
//!   nor whether decoding ends in an error (TCP merges and splits reads);
//! - the reader over an in-memory stream yields what the decoder yields;
//! - every frame decoded re-encodes as one line that decodes to itself, and
//!   every error frame the server would send back does too.

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use chat_core::protocol::{
    ClientFrame, FRAME_BYTES_MAX, FrameDecoder, FrameError, ServerFrame, decode_line, encode,
};
use chat_core::reader::FrameReader;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::Decoder;

use super::cursor::Cursor;

/// The frame limits tried: small ones, so that the fuzzer's short inputs
/// reach the limit, and the real one.
const FRAME_LIMITS: [usize; 3] = [48, 256, FRAME_BYTES_MAX];

/// Most read lengths an input gives.
const READ_LENGTHS_MAX: usize = 8;

/// The target: see the module docs.
pub fn decode_frames(data: &[u8]) {
    let mut cursor = Cursor::new(data);
    let limit = FRAME_LIMITS[cursor.below(FRAME_LIMITS.len())];
    let count = 1 + cursor.below(READ_LENGTHS_MAX);
    let lengths: Vec<usize> = (0..count).map(|_| read_length(cursor.byte())).collect();
    let stream = cursor.rest();
    let reads = split(stream, &lengths);
    check_decoding::<ClientFrame>(stream, &reads, limit);
    check_decoding::<ServerFrame>(stream, &reads, limit);
}

/// A read length from one byte: 1 to 128 bytes, or multiples of 64 up to
/// 8 KiB (so that one read can cross a frame limit at once).
fn read_length(byte: u8) -> usize {
    match byte {
        0..128 => usize::from(byte) + 1,
        _ => usize::from(byte - 127) * 64,
    }
}

/// The stream cut into reads of the given lengths, used in turn.
fn split<'a>(stream: &'a [u8], lengths: &[usize]) -> Vec<&'a [u8]> {
    let mut reads = Vec::new();
    let mut rest = stream;
    for length in lengths.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (read, after) = rest.split_at((*length).min(rest.len()));
        reads.push(read);
        rest = after;
    }
    reads
}

/// What decoding a stream gave: its frames, then the error that ended it.
struct Decoded<T> {
    frames: Vec<T>,
    error: Option<FrameError>,
}

fn check_decoding<T>(stream: &[u8], reads: &[&[u8]], limit: usize)
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let split = decode_reads::<T>(reads, limit);
    let whole = decode_reads::<T>(&[stream], limit);
    assert_eq!(
        split.frames, whole.frames,
        "how the stream is split does not change its frames"
    );
    assert_eq!(
        split.error.is_some(),
        whole.error.is_some(),
        "how the stream is split does not change whether it is refused: {:?} / {:?}",
        split.error,
        whole.error
    );
    let read = read_all::<T>(reads, limit, stream.len());
    assert_eq!(
        read.frames, split.frames,
        "the reader reads what the decoder decodes"
    );
    assert_eq!(
        read.error.is_some(),
        split.error.is_some(),
        "the reader fails where the decoder does: {:?} / {:?}",
        read.error,
        split.error
    );
    for frame in &split.frames {
        check_round_trip(frame);
    }
    if let Some(reply) = split.error.as_ref().and_then(FrameError::to_error_frame) {
        check_round_trip(&reply);
    }
}

/// Feeds the reads to a decoder as a connection would: decode what each
/// read completes, then decode what is left at the end of the stream.
fn decode_reads<T: DeserializeOwned>(reads: &[&[u8]], limit: usize) -> Decoded<T> {
    let mut decoder = FrameDecoder::<T>::new(limit);
    let mut buffer = BytesMut::new();
    let mut frames = Vec::new();
    for read in reads {
        buffer.extend_from_slice(read);
        // Bounded: each frame takes at least one byte out of the buffer.
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => {
                    return Decoded {
                        frames,
                        error: Some(error),
                    };
                }
            }
        }
    }
    loop {
        match decoder.decode_eof(&mut buffer) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => {
                return Decoded {
                    frames,
                    error: None,
                };
            }
            Err(error) => {
                return Decoded {
                    frames,
                    error: Some(error),
                };
            }
        }
    }
}

/// Reads the stream through [`FrameReader`] over an in-memory reader.
fn read_all<T: DeserializeOwned>(reads: &[&[u8]], limit: usize, bytes: usize) -> Decoded<T> {
    let mut reader = FrameReader::<_, T>::new(Reads::new(reads), limit);
    let mut frames = Vec::new();
    // Every frame takes at least a byte and a newline, so the reader must
    // be done within this many calls.
    for _ in 0..bytes + 2 {
        match now(reader.next()) {
            Some(Ok(frame)) => frames.push(frame),
            Some(Err(error)) => {
                assert!(
                    now(reader.next()).is_none(),
                    "the reader ends after an error"
                );
                return Decoded {
                    frames,
                    error: Some(error),
                };
            }
            None => {
                assert!(reader.at_eof(), "a reader ends cleanly only at the end");
                return Decoded {
                    frames,
                    error: None,
                };
            }
        }
    }
    panic!("the reader did not end within {} calls", bytes + 2);
}

/// Checks that a frame encodes as one line that decodes to itself.
fn check_round_trip<T>(frame: &T)
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let line = encode(frame);
    let body = line
        .strip_suffix(b"\n")
        .expect("an encoded frame ends with a newline");
    assert!(!body.contains(&b'\n'), "an encoded frame is one line");
    let decoded: T = decode_line(body).expect("an encoded frame decodes");
    assert_eq!(&decoded, frame, "a frame decodes to what was encoded");
}

/// Polls a future that must not wait: every read here is from memory.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("reading from memory never waits"),
    }
}

/// An in-memory stream that delivers one read at a time, at most what the
/// caller has room for, then the end of the stream.
struct Reads<'a> {
    reads: std::collections::VecDeque<&'a [u8]>,
}

impl<'a> Reads<'a> {
    fn new(reads: &[&'a [u8]]) -> Self {
        Self {
            reads: reads.iter().copied().collect(),
        }
    }
}

impl AsyncRead for Reads<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(read) = self.reads.pop_front() {
            let (now, later) = read.split_at(read.len().min(buffer.remaining()));
            buffer.put_slice(now);
            if !later.is_empty() {
                self.reads.push_front(later);
            }
        }
        Poll::Ready(Ok(()))
    }
}
