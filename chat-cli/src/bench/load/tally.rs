//! What one reading member counts: deliveries, duplicates, messages out of
//! order, and a latency histogram. The loss checker of the benchmark and of
//! the soak: a member's tally says whether it missed, doubled or reordered
//! anything.

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::bench::wire::Delivered;

/// What one receiving member tallies.
pub struct Tally {
    /// End-to-end latency, in microseconds.
    pub histogram: Histogram<u64>,
    /// Messages received for the first time.
    pub deliveries: u64,
    /// Messages received again.
    pub duplicated: u64,
    /// Messages that came after a later one of the same talker.
    pub out_of_order: u64,
    /// Next sequence number expected from each talker.
    next: Vec<u32>,
    /// When the last delivery came.
    pub last_at: Option<Instant>,
}

impl Tally {
    /// An empty tally for messages from `talkers` talkers (indices 0 to
    /// `talkers - 1`; messages from others are ignored).
    pub fn new(talkers: usize) -> Self {
        Self {
            // Invariant: 1 µs to 60 s with 3 significant digits is a valid range.
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
            deliveries: 0,
            duplicated: 0,
            out_of_order: 0,
            next: vec![0; talkers],
            last_at: None,
        }
    }

    /// Counts one delivered message, received at `now` (`start`: when the
    /// run began, which the message's send time counts from).
    pub fn record(&mut self, delivered: Delivered, start: Instant, now: Instant) {
        let Some(next) = self.next.get_mut(delivered.talker as usize) else {
            return;
        };
        match delivered.seq.cmp(next) {
            std::cmp::Ordering::Equal => *next += 1,
            std::cmp::Ordering::Greater => {
                self.out_of_order += 1;
                *next = delivered.seq + 1;
            }
            std::cmp::Ordering::Less => {
                self.duplicated += 1;
                return;
            }
        }
        self.deliveries += 1;
        let elapsed = now.duration_since(start).as_nanos() as u64;
        let latency_us = elapsed.saturating_sub(delivered.sent_ns) / 1000;
        let _ = self.histogram.record(latency_us.max(1));
        self.last_at = Some(now);
    }

    /// Adds `other`'s counts to this one's.
    pub fn merge(&mut self, other: &Tally) -> Result<()> {
        self.histogram
            .add(&other.histogram)
            .context("merge histograms")?;
        self.deliveries += other.deliveries;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.last_at = self.last_at.max(other.last_at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(talker: u32, seq: u32) -> Delivered {
        Delivered {
            talker,
            seq,
            sent_ns: 0,
        }
    }

    #[test]
    fn duplicates_and_gaps_are_counted() {
        let start = Instant::now();
        let mut tally = Tally::new(2);
        for (talker, seq) in [(0, 0), (0, 1), (1, 0), (0, 1), (1, 2), (5, 0)] {
            tally.record(message(talker, seq), start, start);
        }
        assert_eq!(tally.deliveries, 4);
        assert_eq!(tally.duplicated, 1);
        assert_eq!(tally.out_of_order, 1);
    }
}
