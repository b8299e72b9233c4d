//! Connections and their phases, and the message rate of each.
//!
//! The state machine, not the driver, decides when a connection stops being
//! served: once it is [`ConnectionPhase::Closing`] (after `quit`, a fatal
//! error, an eviction or shutdown) nothing it sends has any effect, even
//! frames that arrived in the same read as the one that ended it.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use super::output::MemberId;
use crate::protocol::ClientFrame;

/// Frames a throttled connection may have in flight before the driver stops
/// reading it: what one read delivered after the pause was decided.
pub const THROTTLE_BACKLOG_MAX: usize = 256;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionPhase {
    /// Waiting for an accepted hello; `attempts` hellos were refused.
    Greeting {
        /// Refused hellos so far.
        attempts: u32,
    },
    /// Attached to a member.
    Member(MemberId),
    /// No longer served: the driver is closing it.
    Closing {
        /// Since when.
        since: Duration,
    },
}

/// A token bucket, in thousandths of a message so that time is counted
/// exactly in milliseconds (no floating point decides anything).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimiter {
    millitokens: u64,
    capacity: u64,
    per_millisecond: u64,
    refilled_at: Duration,
}

impl RateLimiter {
    /// `rate` messages per second on average, `burst` at once (a rate of 0
    /// means no limit).
    pub fn new(rate: u32, burst: u32, now: Duration) -> Self {
        let capacity = u64::from(burst.max(1)) * 1000;
        Self {
            millitokens: capacity,
            capacity,
            per_millisecond: u64::from(rate),
            refilled_at: now,
        }
    }

    fn refill(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.refilled_at);
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        if elapsed_ms > 0 {
            let added = elapsed_ms.saturating_mul(self.per_millisecond);
            self.millitokens = self.millitokens.saturating_add(added).min(self.capacity);
            self.refilled_at = now;
        }
    }

    /// Takes one message's token if there is one.
    pub fn take(&mut self, now: Duration) -> bool {
        if self.per_millisecond == 0 {
            return true;
        }
        self.refill(now);
        if self.millitokens >= 1000 {
            self.millitokens -= 1000;
            true
        } else {
            false
        }
    }
}

/// What the state machine knows of one connection.
#[derive(Clone, Debug)]
pub struct ConnectionState {
    /// Where it is in its life.
    pub phase: ConnectionPhase,
    /// The peer's address.
    pub peer: IpAddr,
    /// When it was accepted.
    pub opened_at: Duration,
    /// When a byte last arrived (or reading resumed after a throttle).
    pub last_heard: Duration,
    /// Its message rate.
    pub rate: RateLimiter,
    /// Since when it has been throttled, if it is.
    pub throttled_since: Option<Duration>,
    /// Frames read while throttled, handled when the rate allows.
    pub backlog: VecDeque<ClientFrame>,
}

impl ConnectionState {
    /// A connection accepted at `now`.
    pub fn new(peer: IpAddr, rate: RateLimiter, now: Duration) -> Self {
        Self {
            phase: ConnectionPhase::Greeting { attempts: 0 },
            peer,
            opened_at: now,
            last_heard: now,
            rate,
            throttled_since: None,
            backlog: VecDeque::new(),
        }
    }

    /// Whether it is still served.
    pub fn is_served(&self) -> bool {
        !matches!(self.phase, ConnectionPhase::Closing { .. })
    }

    /// The member it is attached to, if any.
    pub fn member(&self) -> Option<MemberId> {
        match self.phase {
            ConnectionPhase::Member(member) => Some(member),
            _ => None,
        }
    }
}

/// Whether a frame counts against the message rate: everything that makes
/// the server do work for others, not heartbeats or quitting.
pub fn is_rated(frame: &ClientFrame) -> bool {
    !matches!(frame, ClientFrame::Heartbeat | ClientFrame::Quit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_average_rate() {
        let start = Duration::from_secs(1);
        let mut rate = RateLimiter::new(10, 3, start);
        assert!((0..3).all(|_| rate.take(start)), "the burst");
        assert!(!rate.take(start), "then nothing");
        assert!(!rate.take(start + Duration::from_millis(99)));
        assert!(
            rate.take(start + Duration::from_millis(100)),
            "one per 100 ms"
        );
        assert!(!rate.take(start + Duration::from_millis(150)));
        let later = start + Duration::from_secs(60);
        assert!(
            (0..3).all(|_| rate.take(later)),
            "refills up to the burst only"
        );
        assert!(!rate.take(later));
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let mut rate = RateLimiter::new(0, 1, Duration::ZERO);
        assert!((0..10_000).all(|_| rate.take(Duration::ZERO)));
    }
}
