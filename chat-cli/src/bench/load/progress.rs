//! Flow control shared by the talkers and the readers of one run, so that no
//! queue grows without bound while the talkers send as fast as they can.
//!
//! Each talker keeps at most a window of messages ([`WINDOW`] unless told
//! otherwise) unseen by its observer (one other member), and all together
//! stay at most [`LAG_MAX`] messages ahead of the slowest reading member.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Most messages a talker has in flight, unless told otherwise.
pub const WINDOW: u64 = 32;

/// Most messages any reading member may be behind the talkers, as fast as
/// possible: without this bound a member that the generator's one thread
/// reads late falls further and further behind, until the server drops it as
/// a reader that does not keep up (ours at 1 MiB queued, ngIRCd at 32 KB).
pub const LAG_MAX: u64 = 2048;

/// How often [`Progress::wait_for_observers`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Shared progress: for each talker, the highest sequence number one other
/// member (its observer) has received, plus one; and how far every reading
/// member is behind.
pub struct Progress {
    /// Per talker: its observer's highest sequence number seen, plus one.
    pub seen: Vec<AtomicU64>,
    /// Woken when a talker's counter moves.
    pub moved: Vec<Notify>,
    /// Messages sent by all talkers together.
    pub sent: AtomicU64,
    /// For each reading member, messages received (its own counted as
    /// received where the server does not echo them); `u64::MAX` once it
    /// stopped reading.
    pub received: Vec<AtomicU64>,
    /// Woken when members received more.
    pub caught_up: Notify,
    /// Most messages a talker has unseen by its observer.
    window: u64,
}

impl Progress {
    /// Nothing seen yet, for `talkers` talkers and `readers` reading members,
    /// each talker with `window` messages in flight at most.
    pub fn new(talkers: usize, readers: usize, window: u64) -> Self {
        Self {
            seen: (0..talkers).map(|_| AtomicU64::new(0)).collect(),
            moved: (0..talkers).map(|_| Notify::new()).collect(),
            sent: AtomicU64::new(0),
            received: (0..readers).map(|_| AtomicU64::new(0)).collect(),
            caught_up: Notify::new(),
            window,
        }
    }

    /// True when no reading member is more than [`LAG_MAX`] messages behind.
    fn lag_ok(&self) -> bool {
        self.sent.load(Ordering::Relaxed) <= self.slowest().saturating_add(LAG_MAX)
    }

    /// Messages received by the reading member that received fewest.
    pub fn slowest(&self) -> u64 {
        self.received
            .iter()
            .map(|received| received.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Waits until no reading member lags too far.
    pub async fn wait_for_lag(&self) {
        loop {
            let caught_up = self.caught_up.notified();
            if self.lag_ok() {
                return;
            }
            caught_up.await;
        }
    }

    /// True when message `next` of `talker` fits in its window.
    pub fn window_open(&self, talker: usize, next: u64) -> bool {
        next < self.seen[talker].load(Ordering::Relaxed) + self.window
    }

    /// Waits until message `next` of `talker` fits in the window.
    pub async fn wait_for_window(&self, talker: usize, next: u64) {
        loop {
            let moved = self.moved[talker].notified();
            if self.window_open(talker, next) {
                return;
            }
            moved.await;
        }
    }

    /// Waits until every talker's observer has seen all `messages` of it, or
    /// the deadline.
    pub async fn wait_for_observers(&self, messages: u32, deadline: Instant) {
        let done = || {
            self.seen
                .iter()
                .all(|seen| seen.load(Ordering::Relaxed) >= u64::from(messages))
        };
        while !done() && Instant::now() < deadline {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until every reading member has received `messages` (or stopped
    /// reading), or the deadline: the last deliveries landing, waited for
    /// rather than slept for.
    pub async fn wait_for_readers(&self, messages: u64, deadline: Instant) {
        loop {
            let caught_up = self.caught_up.notified();
            if self.slowest() >= messages {
                return;
            }
            if tokio::time::timeout_at(deadline, caught_up).await.is_err() {
                return;
            }
        }
    }
}
