//! The oracle: named safety and liveness properties, checked over what a run
//! observed (each client's transcript, what each user typed and how each
//! run ended, the events the server released across its lifetimes, what
//! each recovery rebuilt, and the console notices).
//!
//! It is an independent model: it uses chat-core only for the data types it
//! observes (lines, frames, notices), never its room or session logic. Each
//! violation names the property, the seed, the client and the sequence
//! numbers involved. Its bounds come from the configuration the run used.
//!
//! Submodules: `model` (the server's streams as released and recovered),
//! `views` (what each client showed, room by room and privately),
//! `membership` (joins, leaves, renames, nicknames), `outcomes` (what became
//! of what users typed, liveness, crashed and stopped clients),
//! `adversaries` (the replies raw-protocol clients must get).

mod adversaries;
mod leaving;
mod membership;
mod model;
mod outcomes;
mod views;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chat_core::protocol::Seq;

use crate::world::Observations;
use model::Model;
pub(crate) use outcomes::typed_message;

/// A property the oracle checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Property {
    /// Each room's events are numbered 1, 2, 3... as released.
    LogContiguous,
    /// No sequence number ever names two different events, across restarts.
    SeqUnique,
    /// Every released event survives a server crash (is in what recovery
    /// rebuilt), and the server always starts again.
    AckedDurable,
    /// Every event a client showed is the event of that number in its
    /// room's log (or in a private stream).
    NoFabrication,
    /// No event shown twice, no message in a log twice.
    NoDuplicate,
    /// Each client shows a room's events in increasing order.
    SequenceOrder,
    /// Each sender's messages appear in every stream in the order sent.
    PerSenderFifo,
    /// A skipped event is always announced with a gap notice.
    NoSilentGap,
    /// A gap notice skips only what history no longer held.
    GapJustified,
    /// A private message is shown only to its two parties.
    PrivateParties,
    /// History shown on joining a room is the room's last messages before
    /// the join, each as it was.
    HistoryOnJoin,
    /// No two sessions hold the same nickname at once.
    UniqueNicknames,
    /// A member joins, then leaves, once each, and speaks only in between.
    JoinLeaveOnce,
    /// A nickname change is announced once in every room of the member.
    RenameAnnounced,
    /// A client is told its session is gone only if it is.
    NoSpuriousRejoin,
    /// Every message typed reached its stream, or its user was told.
    SendsResolved,
    /// After healing, every live client caught up with its rooms.
    LivenessDelivery,
    /// A crashed client is announced as left within its bound.
    CrashAnnounced,
    /// A user who leaves by a signal over a sound link is gone from the
    /// server within the client's leave grace.
    SignalLeaveAnnounced,
    /// No connection's queue passed its limit.
    BoundedQueues,
    /// A client that stops reading loses its connection within its bound.
    StoppedReaderDropped,
    /// A raw-protocol client gets, for every frame, the reply PROTOCOL.md
    /// says it must get in its state.
    AdversaryContract,
}

impl Property {
    /// Every property, in the order the summary lists them.
    pub const ALL: [Property; 22] = [
        Property::LogContiguous,
        Property::SeqUnique,
        Property::AckedDurable,
        Property::NoFabrication,
        Property::NoDuplicate,
        Property::SequenceOrder,
        Property::PerSenderFifo,
        Property::NoSilentGap,
        Property::GapJustified,
        Property::PrivateParties,
        Property::HistoryOnJoin,
        Property::UniqueNicknames,
        Property::JoinLeaveOnce,
        Property::RenameAnnounced,
        Property::NoSpuriousRejoin,
        Property::SendsResolved,
        Property::LivenessDelivery,
        Property::CrashAnnounced,
        Property::SignalLeaveAnnounced,
        Property::BoundedQueues,
        Property::StoppedReaderDropped,
        Property::AdversaryContract,
    ];

    /// Its name, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Property::LogContiguous => "log_contiguous",
            Property::SeqUnique => "seq_unique",
            Property::AckedDurable => "acked_durable",
            Property::NoFabrication => "no_fabrication",
            Property::NoDuplicate => "no_duplicate",
            Property::SequenceOrder => "sequence_order",
            Property::PerSenderFifo => "per_sender_fifo",
            Property::NoSilentGap => "no_silent_gap",
            Property::GapJustified => "gap_justified",
            Property::PrivateParties => "private_parties",
            Property::HistoryOnJoin => "history_on_join",
            Property::UniqueNicknames => "unique_nicknames",
            Property::JoinLeaveOnce => "join_leave_once",
            Property::RenameAnnounced => "rename_announced",
            Property::NoSpuriousRejoin => "no_spurious_rejoin",
            Property::SendsResolved => "sends_resolved",
            Property::LivenessDelivery => "liveness_delivery",
            Property::CrashAnnounced => "crash_announced",
            Property::SignalLeaveAnnounced => "signal_leave_announced",
            Property::BoundedQueues => "bounded_queues",
            Property::StoppedReaderDropped => "stopped_reader_dropped",
            Property::AdversaryContract => "adversary_contract",
        }
    }

    /// What it means, for people reading a report.
    pub fn meaning(self) -> &'static str {
        match self {
            Property::LogContiguous => "each room's events are numbered without gaps as released",
            Property::SeqUnique => "no sequence number names two different events, across restarts",
            Property::AckedDurable => {
                "every event released before a crash is in what recovery rebuilt; the server starts again"
            }
            Property::NoFabrication => "every event shown is the log's event of that number",
            Property::NoDuplicate => "no event shown twice, no message logged twice",
            Property::SequenceOrder => "each room's events are shown in increasing order",
            Property::PerSenderFifo => "each sender's messages keep their order in every stream",
            Property::NoSilentGap => "a skipped event always comes with a gap notice",
            Property::GapJustified => "a gap notice skips only what history no longer held",
            Property::PrivateParties => "a private message is shown only to its two parties",
            Property::HistoryOnJoin => {
                "history on join is the room's last messages before the join"
            }
            Property::UniqueNicknames => "no two sessions hold one nickname at once",
            Property::JoinLeaveOnce => {
                "a member joins and leaves once each, and speaks only in between"
            }
            Property::RenameAnnounced => {
                "a nickname change is announced once in each of the member's rooms"
            }
            Property::NoSpuriousRejoin => "a client is told its session is gone only if it is",
            Property::SendsResolved => "every message typed reached its stream or was reported",
            Property::LivenessDelivery => {
                "after healing, every live client caught up with its rooms"
            }
            Property::CrashAnnounced => "a crashed client is announced as left within its bound",
            Property::SignalLeaveAnnounced => {
                "a user who leaves by a signal is gone from the server within the leave grace"
            }
            Property::BoundedQueues => "no connection's queue passed its limit",
            Property::StoppedReaderDropped => {
                "a client that stops reading loses its connection within its bound"
            }
            Property::AdversaryContract => {
                "a raw-protocol client gets the reply the protocol promises for every frame"
            }
        }
    }
}

impl fmt::Display for Property {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.pad(self.name())
    }
}

/// A broken property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which property.
    pub property: Property,
    /// The run's seed.
    pub seed: u64,
    /// The client host and nickname involved, if one is.
    pub client: Option<String>,
    /// The sequence numbers involved.
    pub seqs: Vec<Seq>,
    /// When, in simulated time, if known.
    pub at: Option<Duration>,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "property {} violated (seed {})",
            self.property, self.seed
        )?;
        if let Some(client) = &self.client {
            write!(formatter, ", client {client}")?;
        }
        if let Some(at) = self.at {
            write!(formatter, ", at {:.3} s", at.as_secs_f64())?;
        }
        if !self.seqs.is_empty() {
            write!(formatter, ", seqs {:?}", self.seqs)?;
        }
        write!(formatter, ": {}", self.detail)
    }
}

/// The oracle's verdict on one run.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Broken properties; empty when the run is correct.
    pub violations: Vec<Violation>,
    /// How many individual checks ran, per property.
    pub checks: BTreeMap<Property, usize>,
}

impl Verdict {
    /// Every check, all properties together.
    pub fn check_count(&self) -> usize {
        self.checks.values().sum()
    }

    /// The violation that happened first in simulated time (one without a
    /// time after every timed one; the report's order among equals): where
    /// to start reading a failure, since later ones are often its echoes.
    pub fn earliest(&self) -> Option<&Violation> {
        self.violations
            .iter()
            .min_by_key(|violation| (violation.at.is_none(), violation.at))
    }

    /// The earliest violation of each broken property, in time order.
    pub fn earliest_per_property(&self) -> Vec<&Violation> {
        let mut earliest: BTreeMap<Property, &Violation> = BTreeMap::new();
        for violation in &self.violations {
            let key = |violation: &Violation| (violation.at.is_none(), violation.at);
            earliest
                .entry(violation.property)
                .and_modify(|held| {
                    if key(violation) < key(held) {
                        *held = violation;
                    }
                })
                .or_insert(violation);
        }
        let mut firsts: Vec<&Violation> = earliest.into_values().collect();
        firsts.sort_by_key(|violation| (violation.at.is_none(), violation.at));
        firsts
    }
}

/// What a check is about, for a violation's report.
#[derive(Default)]
pub(crate) struct About {
    pub client: Option<String>,
    pub seqs: Vec<Seq>,
    pub at: Option<Duration>,
}

impl About {
    pub fn client(client: &str) -> Self {
        About {
            client: Some(client.to_owned()),
            ..About::default()
        }
    }

    pub fn seqs(mut self, seqs: Vec<Seq>) -> Self {
        self.seqs = seqs;
        self
    }

    pub fn at(mut self, at: Duration) -> Self {
        self.at = Some(at);
        self
    }
}

/// The checker: the observations, the model built from them, the verdict.
pub(crate) struct Checker<'a> {
    pub observations: &'a Observations,
    pub seed: u64,
    pub model: Model,
    pub verdict: Verdict,
}

impl Checker<'_> {
    /// Records one check; a failure adds a violation.
    pub fn expect(
        &mut self,
        property: Property,
        holds: bool,
        about: About,
        detail: impl FnOnce() -> String,
    ) {
        *self.verdict.checks.entry(property).or_insert(0) += 1;
        if !holds {
            self.verdict.violations.push(Violation {
                property,
                seed: self.seed,
                client: about.client,
                seqs: about.seqs,
                at: about.at,
                detail: detail(),
            });
        }
    }
}

/// Checks every property over a run's observations.
pub fn check(observations: &Observations) -> Verdict {
    let (model, problems) = Model::build(observations);
    let mut checker = Checker {
        observations,
        seed: observations.scenario.seed,
        model,
        verdict: Verdict::default(),
    };
    for (property, holds, about, detail) in problems {
        checker.expect(property, holds, about, || detail);
    }
    for host in 0..observations.clients.len() {
        checker.client_views(host);
    }
    checker.per_sender_fifo();
    checker.membership();
    for host in 0..observations.clients.len() {
        checker.client_outcomes(host);
    }
    checker.bounded_queues();
    checker.stopped_readers();
    checker.adversaries();
    checker.verdict
}

/// The host that sent a message, and its number, from its text (`c3 m17 ...`).
pub(crate) fn sender_of(text: &str) -> Option<(&str, u64)> {
    let mut words = text.split(' ');
    let host = words.next()?;
    let number = words.next()?.strip_prefix('m')?.parse().ok()?;
    Some((host, number))
}
