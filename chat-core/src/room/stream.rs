//! A numbered stream of events with a bounded history: one per room, and
//! one private stream per member.
//!
//! Events are numbered from 1 without gaps. The history keeps the most
//! recent ones, already encoded, for replay to a client that resumes and for
//! the recent messages a new member is shown; it is bounded per stream in
//! events and bytes, and all streams together in bytes ([`HistoryBudget`]).

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::output::{MemberId, RoomId};
use crate::protocol::Seq;

/// Which stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKey {
    /// A room's events.
    Room(RoomId),
    /// A member's private messages.
    Private(MemberId),
}

/// An encoded frame line (JSON, newline included), stored and logged as a
/// string: the frames are UTF-8 JSON by construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameLine(pub Bytes);

impl Serialize for FrameLine {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(&self.0).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }
}

impl<'de> Deserialize<'de> for FrameLine {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(FrameLine(Bytes::from(text)))
    }
}

/// One event kept in history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// Its sequence number.
    pub seq: Seq,
    /// True for a message (shown to new members as recent history).
    pub message: bool,
    /// The encoded event.
    pub frame: FrameLine,
}

/// How much history one stream keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Events.
    pub events: usize,
    /// Bytes of encoded events.
    pub bytes: usize,
}

/// A numbered stream and its recent history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    /// The last sequence number assigned (0: none yet).
    pub last_seq: Seq,
    history: VecDeque<Kept>,
    #[serde(skip)]
    bytes: usize,
}

impl Stream {
    /// The number the next event gets.
    pub fn next_seq(&self) -> Seq {
        self.last_seq + 1
    }

    /// Bytes of history kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Recomputes what is derived from the history (after loading one).
    pub fn rebuild(&mut self) {
        self.bytes = self.history.iter().map(|kept| kept.frame.0.len()).sum();
    }

    /// Appends the next event and trims the history to `limits`.
    pub fn append(&mut self, kept: Kept, limits: HistoryLimits) {
        assert_eq!(
            kept.seq,
            self.next_seq(),
            "events are numbered without gaps"
        );
        self.last_seq = kept.seq;
        self.bytes += kept.frame.0.len();
        self.history.push_back(kept);
        self.trim(limits);
    }

    /// Forgets the oldest events past `limits` (also after a restart with
    /// lower limits than the history was kept under).
    pub fn trim(&mut self, limits: HistoryLimits) {
        while self.history.len() > limits.events || self.bytes > limits.bytes {
            self.drop_oldest();
        }
    }

    /// Forgets the oldest event kept; false if none is.
    pub fn drop_oldest(&mut self) -> bool {
        match self.history.pop_front() {
            Some(kept) => {
                self.bytes -= kept.frame.0.len();
                true
            }
            None => false,
        }
    }

    /// The oldest sequence number history still holds (the next one when
    /// history is empty).
    pub fn oldest_kept(&self) -> Seq {
        self.history
            .front()
            .map_or(self.next_seq(), |kept| kept.seq)
    }

    /// What a client that saw events up to `last_seq` missed: `last_seq`
    /// made sane (nobody has seen events that do not exist yet), the range
    /// history no longer holds, if any, and the events it still holds.
    pub fn missed(&self, last_seq: Seq) -> (Seq, Option<(Seq, Seq)>, Vec<Bytes>) {
        let last_seq = last_seq.min(self.last_seq);
        let oldest = self.oldest_kept();
        let gap = (last_seq + 1 < oldest).then_some((last_seq + 1, oldest - 1));
        let skip = u64::from(planted!(ReplayOffByOne));
        let events = self
            .history
            .iter()
            .filter(|kept| kept.seq > last_seq + skip)
            .map(|kept| kept.frame.0.clone())
            .collect();
        (last_seq, gap, events)
    }

    /// The last `count` messages kept, oldest first.
    pub fn recent_messages(&self, count: usize) -> Vec<&Kept> {
        let mut recent: Vec<&Kept> = self
            .history
            .iter()
            .rev()
            .filter(|kept| kept.message)
            .take(count)
            .collect();
        recent.reverse();
        recent
    }

    /// Whether the history is numbered without gaps up to the last event,
    /// from 1 on, and its bytes are counted.
    pub fn validate(&self) -> Result<(), String> {
        let mut expected = self.oldest_kept();
        if expected == 0 {
            return Err("an event numbered 0".to_owned());
        }
        for kept in &self.history {
            if kept.seq != expected {
                return Err(format!("event {} where {expected} should be", kept.seq));
            }
            expected += 1;
        }
        if !self.history.is_empty() && expected != self.next_seq() {
            return Err(format!(
                "history ends at {} but the last event is {}",
                expected - 1,
                self.last_seq
            ));
        }
        let bytes: usize = self.history.iter().map(|kept| kept.frame.0.len()).sum();
        if bytes != self.bytes {
            return Err(format!(
                "{bytes} bytes of history counted as {}",
                self.bytes
            ));
        }
        Ok(())
    }
}

/// The server-wide bound on history bytes: the streams ordered by how much
/// they keep, so that the longest loses its oldest events first.
#[derive(Clone, Debug, Default)]
pub struct HistoryBudget {
    by_size: BTreeSet<(usize, StreamKey)>,
    total: usize,
}

impl HistoryBudget {
    /// Bytes kept by every stream together.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Records that `key`'s history went from `before` to `after` bytes.
    pub fn update(&mut self, key: StreamKey, before: usize, after: usize) {
        if before > 0 {
            let removed = self.by_size.remove(&(before, key));
            assert!(removed, "the budget knows every stream with history");
        }
        if after > 0 {
            self.by_size.insert((after, key));
        }
        self.total = self.total + after - before;
    }

    /// The stream keeping the most bytes, if any keeps some.
    pub fn largest(&self) -> Option<StreamKey> {
        self.by_size.last().map(|(_, key)| *key)
    }

    /// Checks that the budget matches the streams' own counts.
    pub fn check(&self, sizes: impl Iterator<Item = (StreamKey, usize)>) {
        let expected: BTreeSet<(usize, StreamKey)> = sizes
            .filter(|(_, bytes)| *bytes > 0)
            .map(|(key, bytes)| (bytes, key))
            .collect();
        assert_eq!(expected, self.by_size, "the budget matches the streams");
        let total: usize = expected.iter().map(|(bytes, _)| bytes).sum();
        assert_eq!(total, self.total, "the budget's total is the sum");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(seq: Seq, text: &str, message: bool) -> Kept {
        Kept {
            seq,
            message,
            frame: FrameLine(Bytes::copy_from_slice(text.as_bytes())),
        }
    }

    const ROOMY: HistoryLimits = HistoryLimits {
        events: 100,
        bytes: 1000,
    };

    #[test]
    fn history_is_bounded_in_events_and_bytes() {
        let mut stream = Stream::default();
        for seq in 1..=5 {
            stream.append(
                kept(seq, "0123456789", true),
                HistoryLimits {
                    events: 3,
                    bytes: 1000,
                },
            );
        }
        assert_eq!(stream.oldest_kept(), 3);
        stream.append(
            kept(6, &"x".repeat(25), true),
            HistoryLimits {
                events: 3,
                bytes: 40,
            },
        );
        assert_eq!((stream.oldest_kept(), stream.bytes()), (5, 35));
        stream.validate().expect("the stream holds together");
    }

    #[test]
    fn missed_events_come_with_a_gap_for_what_is_gone() {
        let mut stream = Stream::default();
        for seq in 1..=6 {
            stream.append(kept(seq, "e", true), ROOMY);
        }
        while stream.oldest_kept() < 4 {
            stream.drop_oldest();
        }
        let (last, gap, events) = stream.missed(1);
        assert_eq!((last, gap, events.len()), (1, Some((2, 3)), 3));
        let (last, gap, events) = stream.missed(99);
        assert_eq!(
            (last, gap, events.len()),
            (6, None, 0),
            "a future number is capped"
        );
    }

    #[test]
    fn recent_messages_skip_other_events() {
        let mut stream = Stream::default();
        stream.append(kept(1, "join", false), ROOMY);
        stream.append(kept(2, "m1", true), ROOMY);
        stream.append(kept(3, "leave", false), ROOMY);
        stream.append(kept(4, "m2", true), ROOMY);
        let seqs: Vec<Seq> = stream
            .recent_messages(5)
            .iter()
            .map(|kept| kept.seq)
            .collect();
        assert_eq!(seqs, [2, 4]);
        let seqs: Vec<Seq> = stream
            .recent_messages(1)
            .iter()
            .map(|kept| kept.seq)
            .collect();
        assert_eq!(seqs, [4]);
    }

    #[test]
    fn the_budget_names_the_largest_stream() {
        let mut budget = HistoryBudget::default();
        let (one, two) = (StreamKey::Room(RoomId(1)), StreamKey::Private(MemberId(1)));
        budget.update(one, 0, 10);
        budget.update(two, 0, 30);
        assert_eq!((budget.largest(), budget.total()), (Some(two), 40));
        budget.update(two, 30, 5);
        assert_eq!((budget.largest(), budget.total()), (Some(one), 15));
        budget.check([(one, 10), (two, 5)].into_iter());
    }
}
