//! The readers: each member's task reads what the server sends, tallies the
//! benchmark messages and reports its progress for the talkers' flow
//! control.
//!
//! Works on whole buffers: every complete line in what one read brought is
//! parsed in place (a partial last line is carried over), and one clock
//! reading stamps them all. The generator must read millions of lines a
//! second on one thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chat_net::TokioReader;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tokio::time::Instant;

use super::progress::Progress;
use super::tally::Tally;
use crate::bench::servers::Dialect;
use crate::bench::wire::{self, Incoming};

/// What one member's reader needs to know.
#[derive(Clone)]
pub struct Reading {
    /// What the server speaks.
    pub dialect: Dialect,
    /// Its index among the reading members.
    pub member: usize,
    /// How many talkers there are (indices from 0).
    pub talkers: usize,
    /// The talker whose window it keeps, if any.
    pub observed: Option<usize>,
    /// Shared with the talkers.
    pub progress: Arc<Progress>,
    /// When the run began.
    pub start: Instant,
    /// Turns true when the run is over.
    pub stop: watch::Receiver<bool>,
}

/// Reads one member's lines until told to stop or the connection ends;
/// returns its tally.
pub async fn read_member(reader: BufReader<TokioReader>, mut reading: Reading) -> Tally {
    let tally = read_lines(reader, &mut reading).await;
    // A member that stopped reading holds no one back.
    reading.progress.received[reading.member].store(u64::MAX, Ordering::Relaxed);
    reading.progress.caught_up.notify_waiters();
    tally
}

async fn read_lines(mut reader: BufReader<TokioReader>, reading: &mut Reading) -> Tally {
    let mut tally = Tally::new(reading.talkers);
    let mut counted = 0;
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let chunk = tokio::select! {
            biased;
            _ = reading.stop.changed() => return tally,
            read = reader.fill_buf() => match read {
                Ok(chunk) if !chunk.is_empty() => chunk,
                _ => return tally,
            },
        };
        let now = Instant::now();
        let mut line_start = 0;
        for newline in memchr::memchr_iter(b'\n', chunk) {
            if carry.is_empty() {
                on_line(reading, &chunk[line_start..newline], &mut tally, now);
            } else {
                carry.extend_from_slice(&chunk[line_start..newline]);
                on_line(reading, &carry, &mut tally, now);
                carry.clear();
            }
            line_start = newline + 1;
        }
        carry.extend_from_slice(&chunk[line_start..]);
        let length = chunk.len();
        reader.consume(length);
        let received = tally.deliveries + tally.duplicated;
        reading.progress.received[reading.member].fetch_add(received - counted, Ordering::Relaxed);
        counted = received;
        reading.progress.caught_up.notify_waiters();
    }
}

/// Tallies one line. (PINGs go unanswered: the runs are far shorter than
/// the peers' ping timeouts, 600 s in the shared configs.)
fn on_line(reading: &Reading, line: &[u8], tally: &mut Tally, now: Instant) {
    if let Incoming::Message(delivered) = wire::parse(reading.dialect, line) {
        let talker = delivered.talker as usize;
        if reading.observed == Some(talker) {
            let progress = &reading.progress;
            progress.seen[talker].fetch_max(u64::from(delivered.seq) + 1, Ordering::Relaxed);
            progress.moved[talker].notify_one();
        }
        tally.record(delivered, reading.start, now);
    }
}
