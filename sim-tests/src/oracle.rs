//! The oracle: named safety and liveness properties, checked over what a run
//! observed (each client's displayed transcript, what each user typed and how
//! it ended, the server's room log and console notices).
//!
//! It is an independent model: it uses chat-core only for the data types it
//! observes (lines, frames, notices), never its room or session logic. Each
//! violation names the property, the seed, the client and the sequence
//! numbers involved.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use chat_core::protocol::{Seq, ServerFrame};
use chat_core::room::{Notice, RoomConfig};
use chat_core::session::{Line, SessionConfig};

use crate::scenario::{SIM_HISTORY_MAX, SIM_QUEUE_BYTES_MAX};
use crate::world::{Observations, RunRecord};

/// Every property the oracle checks, in the order it checks them.
pub const PROPERTIES: [&str; 15] = [
    "log_contiguous",
    "no_fabrication",
    "no_duplicate",
    "sequence_order",
    "per_sender_fifo",
    "no_silent_gap",
    "gap_justified",
    "unique_nicknames",
    "join_leave_once",
    "no_spurious_rejoin",
    "sends_resolved",
    "liveness_delivery",
    "crash_announced",
    "bounded_queues",
    "stopped_reader_dropped",
];

/// A broken property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which property (one of [`PROPERTIES`]).
    pub property: &'static str,
    /// The run's seed.
    pub seed: u64,
    /// The client host and nickname involved, if one is.
    pub client: Option<String>,
    /// The sequence numbers involved.
    pub seqs: Vec<Seq>,
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
        if !self.seqs.is_empty() {
            write!(formatter, ", seqs {:?}", self.seqs)?;
        }
        write!(formatter, ": {}", self.detail)
    }
}

/// A room event as the oracle models it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Joined(String),
    Left(String),
    Message { nick: String, text: String },
}

impl Event {
    fn nick(&self) -> &str {
        match self {
            Event::Joined(nick) | Event::Left(nick) | Event::Message { nick, .. } => nick,
        }
    }
}

/// The room log: entry `seq - 1` is event `seq`, with its time.
struct Log {
    events: Vec<(Duration, Event)>,
}

impl Log {
    fn get(&self, seq: Seq) -> Option<&Event> {
        let index = usize::try_from(seq).ok()?.checked_sub(1)?;
        self.events.get(index).map(|(_, event)| event)
    }

    fn last_seq(&self) -> Seq {
        self.events.len() as Seq
    }

    /// Events broadcast at or before `at`.
    fn count_by(&self, at: Duration) -> Seq {
        self.events
            .iter()
            .take_while(|(time, _)| *time <= at)
            .count() as Seq
    }
}

/// Timeouts the bounds are computed from (the simulation uses the defaults).
struct Bounds {
    /// A crashed client is announced as left within this.
    departure: Duration,
    /// A client that stops reading loses its connection within this.
    stopped_reader: Duration,
}

fn bounds() -> Bounds {
    let room = RoomConfig::default();
    let session = SessionConfig::new("", "");
    let slack = Duration::from_secs(2);
    Bounds {
        departure: room.heartbeat_timeout + room.session_grace + slack,
        // The client gives up on a server it cannot hear and closes; if that
        // close is lost too, the server's own heartbeat timeout ends it.
        stopped_reader: session.heartbeat_timeout + room.heartbeat_timeout + slack,
    }
}

/// The oracle's verdict on one run.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Broken properties; empty when the run is correct.
    pub violations: Vec<Violation>,
    /// How many individual checks ran (and passed or failed).
    pub checks: usize,
}

struct Checker<'a> {
    observations: &'a Observations,
    seed: u64,
    log: Log,
    verdict: Verdict,
}

impl Verdict {
    /// Records one check; a failure adds a violation.
    fn expect(
        &mut self,
        seed: u64,
        holds: bool,
        property: &'static str,
        client: Option<String>,
        seqs: Vec<Seq>,
        detail: impl FnOnce() -> String,
    ) {
        self.checks += 1;
        if !holds {
            self.violations.push(Violation {
                property,
                seed,
                client,
                seqs,
                detail: detail(),
            });
        }
    }
}

/// Checks every property over a run's observations.
pub fn check(observations: &Observations) -> Verdict {
    let log = Log {
        events: observations
            .server
            .events
            .iter()
            .filter_map(|(at, frame)| to_event(frame).map(|(_, event)| (*at, event)))
            .collect(),
    };
    let seed = observations.scenario.seed;
    let mut checker = Checker {
        observations,
        seed,
        log,
        verdict: Verdict::default(),
    };
    checker.log_contiguous();
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
    checker.verdict
}

fn to_event(frame: &ServerFrame) -> Option<(Seq, Event)> {
    match frame {
        ServerFrame::Joined { seq, nick, .. } => Some((*seq, Event::Joined(nick.clone()))),
        ServerFrame::Left { seq, nick, .. } => Some((*seq, Event::Left(nick.clone()))),
        ServerFrame::Message {
            seq, nick, text, ..
        } => Some((
            *seq,
            Event::Message {
                nick: nick.clone(),
                text: text.clone(),
            },
        )),
        _ => None,
    }
}

fn line_event(line: &Line) -> Option<(Seq, Event)> {
    match line {
        Line::Joined { nick, seq } => Some((*seq, Event::Joined(nick.clone()))),
        Line::Left { nick, seq } => Some((*seq, Event::Left(nick.clone()))),
        Line::Message { nick, text, seq } => Some((
            *seq,
            Event::Message {
                nick: nick.clone(),
                text: text.clone(),
            },
        )),
        _ => None,
    }
}

/// The host that sent a message, from its text (`c3 m17 ...`).
fn sender_of(text: &str) -> Option<(&str, u64)> {
    let mut words = text.split(' ');
    let host = words.next()?;
    let number = words.next()?.strip_prefix('m')?.parse().ok()?;
    Some((host, number))
}

impl Checker<'_> {
    fn log_contiguous(&mut self) {
        let seqs: Vec<Seq> = self
            .observations
            .server
            .events
            .iter()
            .filter_map(|(_, frame)| frame.event_seq())
            .collect();
        for (index, seq) in seqs.iter().enumerate() {
            let expected = index as Seq + 1;
            self.verdict.expect(
                self.seed,
                *seq == expected,
                "log_contiguous",
                None,
                vec![*seq],
                || format!("the room log's event {expected} has sequence number {seq}"),
            );
        }
    }

    /// Safety of what one client host showed: every event real, once, in
    /// order, with every skip announced and justified.
    fn client_views(&mut self, host: usize) {
        let observations = self.observations;
        let record = &observations.clients[host];
        let mut seen = BTreeSet::new();
        for run in &record.runs {
            let who = Some(format!("{} ({})", record.host, run.nick));
            let mut previous: Option<Seq> = None;
            let mut expected_next: Option<Seq> = None;
            for (at, line) in &run.shown {
                if let Line::Gap(count) = line {
                    self.gap_justified(&who, *at, expected_next, *count);
                    expected_next = expected_next.map(|next| next + count);
                    continue;
                }
                if matches!(line, Line::Rejoining) {
                    expected_next = None; // A fresh join: events before it are not owed.
                    continue;
                }
                let Some((seq, event)) = line_event(line) else {
                    continue;
                };
                let real = self.log.get(seq) == Some(&event);
                self.verdict.expect(
                    self.seed,
                    real,
                    "no_fabrication",
                    who.clone(),
                    vec![seq],
                    || {
                        format!(
                            "showed {event:?} as event {seq}, but the room log has {:?}",
                            self.log.get(seq)
                        )
                    },
                );
                self.verdict.expect(
                    self.seed,
                    seen.insert(seq),
                    "no_duplicate",
                    who.clone(),
                    vec![seq],
                    || format!("showed event {seq} twice"),
                );
                let in_order = previous.is_none_or(|previous| seq > previous);
                self.verdict.expect(
                    self.seed,
                    in_order,
                    "sequence_order",
                    who.clone(),
                    vec![previous.unwrap_or(0), seq],
                    || format!("showed event {seq} after event {}", previous.unwrap_or(0)),
                );
                if let Some(next) = expected_next {
                    self.verdict.expect(
                        self.seed,
                        seq == next,
                        "no_silent_gap",
                        who.clone(),
                        vec![next, seq],
                        || {
                            format!(
                                "after event {} it showed event {seq} with no gap notice",
                                next - 1
                            )
                        },
                    );
                }
                previous = Some(seq);
                expected_next = Some(seq + 1);
            }
        }
    }

    /// A gap notice is justified only if the room's history no longer held
    /// the skipped events.
    fn gap_justified(
        &mut self,
        who: &Option<String>,
        at: Duration,
        first: Option<Seq>,
        count: u64,
    ) {
        let Some(first) = first else { return };
        let last = first + count - 1;
        let evicted_up_to = self.log.count_by(at).saturating_sub(SIM_HISTORY_MAX as Seq);
        self.verdict.expect(self.seed, last <= evicted_up_to, "gap_justified", who.clone(), vec![first, last], || {
            format!("a gap notice skipped events {first}..={last}, but history still held events after {evicted_up_to}")
        });
    }

    fn per_sender_fifo(&mut self) {
        let mut last_number: BTreeMap<String, u64> = BTreeMap::new();
        let mut texts = BTreeSet::new();
        for (index, (_, event)) in self.log.events.iter().enumerate() {
            let Event::Message { text, .. } = event else {
                continue;
            };
            let seq = index as Seq + 1;
            let fresh = texts.insert(text.clone());
            self.verdict
                .expect(self.seed, fresh, "no_duplicate", None, vec![seq], || {
                    format!("the room log holds the message {text:?} twice")
                });
            let Some((host, number)) = sender_of(text) else {
                continue;
            };
            let previous = last_number.insert(host.to_owned(), number);
            let in_order = previous.is_none_or(|previous| number > previous);
            self.verdict.expect(
                self.seed,
                in_order,
                "per_sender_fifo",
                Some(host.to_owned()),
                vec![seq],
                || format!("message m{number} came after m{}", previous.unwrap_or(0)),
            );
        }
    }

    /// Nicknames are unique among members; each member joins, then leaves,
    /// once per session; nobody speaks outside their membership.
    fn membership(&mut self) {
        let mut members: BTreeSet<String> = BTreeSet::new();
        for (index, (_, event)) in self.log.events.iter().enumerate() {
            let seq = index as Seq + 1;
            let nick = event.nick().to_owned();
            let member = members.contains(&nick);
            match event {
                Event::Joined(_) => {
                    self.verdict.expect(
                        self.seed,
                        !member,
                        "unique_nicknames",
                        Some(nick.clone()),
                        vec![seq],
                        || {
                            format!(
                                "{nick} joined while a member named {nick} was already in the room"
                            )
                        },
                    );
                    members.insert(nick);
                }
                Event::Left(_) => {
                    self.verdict.expect(
                        self.seed,
                        member,
                        "join_leave_once",
                        Some(nick.clone()),
                        vec![seq],
                        || format!("{nick} left without being in the room (a second departure?)"),
                    );
                    members.remove(&nick);
                }
                Event::Message { .. } => {
                    self.verdict.expect(
                        self.seed,
                        member,
                        "join_leave_once",
                        Some(nick.clone()),
                        vec![seq],
                        || format!("{nick} spoke while not in the room"),
                    );
                }
            }
        }
    }

    /// Liveness and the fate of what each user typed.
    fn client_outcomes(&mut self, host: usize) {
        let observations = self.observations;
        let record = &observations.clients[host];
        let run_count = record.runs.len();
        for (number, run) in record.runs.iter().enumerate() {
            let who = Some(format!("{} ({})", record.host, run.nick));
            let crashed = record.crashed_at.is_some() && number + 1 == run_count;
            self.no_spurious_rejoin(&who, run);
            if crashed {
                continue;
            }
            self.sends_resolved(&who, run);
            if run.outcome.is_none() {
                self.liveness_delivery(&who, run);
            }
        }
        if let (Some(crashed_at), Some(run)) = (record.crashed_at, record.runs.last()) {
            self.crash_announced(&record.host, &run.nick, crashed_at);
        }
    }

    /// A client is told its session is gone only if the room saw that
    /// session leave: a departure of its nickname after its latest join.
    fn no_spurious_rejoin(&mut self, who: &Option<String>, run: &RunRecord) {
        let mut own_join: Option<Seq> = None;
        for (at, line) in &run.shown {
            if let Line::Joined { nick, seq } = line
                && *nick == run.nick
            {
                own_join = Some(*seq);
            }
            if !matches!(line, Line::Rejoining) {
                continue;
            }
            let left_before = self
                .log
                .events
                .iter()
                .enumerate()
                .any(|(index, (time, event))| {
                    let after_join = own_join.is_none_or(|join| index as Seq + 1 > join);
                    let after_start = *time >= run.started;
                    after_join
                        && after_start
                        && *time <= *at
                        && *event == Event::Left(run.nick.clone())
                });
            self.verdict.expect(
                self.seed,
                left_before,
                "no_spurious_rejoin",
                who.clone(),
                vec![],
                || {
                    format!(
                        "at {at:?} the server forgot the session of {}, who had not left the room",
                        run.nick
                    )
                },
            );
        }
    }

    /// Every message typed reached the room, or the user was told it may not
    /// have.
    fn sends_resolved(&mut self, who: &Option<String>, run: &RunRecord) {
        let logged: BTreeSet<&str> = self
            .log
            .events
            .iter()
            .filter_map(|(_, event)| match event {
                Event::Message { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let missing = run
            .typed
            .iter()
            .filter(|(_, text)| text != ".exit" && !logged.contains(text.as_str()))
            .count();
        let reported: usize = run
            .shown
            .iter()
            .map(|(_, line)| match line {
                Line::Undelivered(count) | Line::Unsent(count) => *count,
                Line::NotSent(_) => 1,
                _ => 0,
            })
            .sum();
        self.verdict.expect(self.seed, missing <= reported, "sends_resolved", who.clone(), vec![], || {
            format!("{missing} typed messages never reached the room, but only {reported} were reported")
        });
    }

    /// A client still running at the end has seen (or been told it missed)
    /// every event up to the end of the log.
    fn liveness_delivery(&mut self, who: &Option<String>, run: &RunRecord) {
        let mut covered = 0;
        for (_, line) in &run.shown {
            match line {
                Line::Gap(count) => covered += count,
                Line::Rejoining => covered = 0,
                _ => {
                    if let Some((seq, _)) = line_event(line) {
                        covered = seq;
                    }
                }
            }
        }
        let last = self.log.last_seq();
        self.verdict.expect(
            self.seed,
            covered == last,
            "liveness_delivery",
            who.clone(),
            vec![covered, last],
            || format!("at the end it had shown events up to {covered} of {last}"),
        );
    }

    /// A crashed member is announced as left, within the bound.
    fn crash_announced(&mut self, host: &str, nick: &str, crashed_at: Duration) {
        let mut member = false;
        for (at, event) in &self.log.events {
            if *at > crashed_at {
                break;
            }
            match event {
                Event::Joined(joined) if joined == nick => member = true,
                Event::Left(left) if left == nick => member = false,
                _ => {}
            }
        }
        if !member {
            return;
        }
        let bound = bounds().departure;
        let announced = self.log.events.iter().position(|(at, event)| {
            *at > crashed_at && *at <= crashed_at + bound && *event == Event::Left(nick.to_owned())
        });
        self.verdict.expect(
            self.seed,
            announced.is_some(),
            "crash_announced",
            Some(format!("{host} ({nick})")),
            vec![],
            || format!("crashed at {crashed_at:?} and was not announced as left within {bound:?}"),
        );
    }

    fn bounded_queues(&mut self) {
        let peak = self.observations.server.queued_bytes_peak;
        self.verdict.expect(self.seed, peak <= SIM_QUEUE_BYTES_MAX, "bounded_queues", None, vec![], || {
            format!("{peak} bytes were queued for one connection; the limit is {SIM_QUEUE_BYTES_MAX}")
        });
    }

    /// A client that stops reading while connected loses that connection
    /// within the bound (dropped for its full queue, or given up for
    /// silence), so that it cannot hold the server's memory.
    fn stopped_readers(&mut self) {
        let bound = bounds().stopped_reader;
        let notices = &self.observations.server.notices;
        let mut results = Vec::new();
        for record in &self.observations.clients {
            for &(start, end) in &record.freezes {
                if end.saturating_sub(start) < bound
                    || record.crashed_at.is_some_and(|crash| crash < start + bound)
                {
                    continue;
                }
                let Some(run) = record
                    .runs
                    .iter()
                    .rev()
                    .find(|run| run.started <= start && online_at(run, start))
                else {
                    continue;
                };
                let dropped = notices.iter().any(|(at, notice)| {
                    *at >= start
                        && *at <= start + bound
                        && matches!(notice, Notice::Dropped { nick: Some(nick), .. } if *nick == run.nick)
                });
                results.push((dropped, format!("{} ({})", record.host, run.nick), start));
            }
        }
        for (dropped, who, start) in results {
            self.verdict.expect(
                self.seed,
                dropped,
                "stopped_reader_dropped",
                Some(who),
                vec![],
                || format!("stopped reading at {start:?} and kept its connection past {bound:?}"),
            );
        }
    }
}

/// Whether the run was connected and in the room at `at`, by what it showed.
fn online_at(run: &RunRecord, at: Duration) -> bool {
    let mut online = false;
    for (time, line) in &run.shown {
        if *time > at {
            break;
        }
        match line {
            Line::YouAreConnected | Line::Resumed(_) => online = true,
            Line::Reconnecting(_)
            | Line::Rejoining
            | Line::ConnectionLost(_)
            | Line::Disconnecting => online = false,
            _ => {}
        }
    }
    online && run.outcome.is_none_or(|(ended, _)| ended > at)
}
