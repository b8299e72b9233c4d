//! The oracle on hand-built histories (no simulation runs): a small correct
//! history passes, and for every property the smallest change that breaks it
//! is reported under that property's name, with the seed, the client and the
//! sequence numbers involved.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chat_core::protocol::{Seq, ServerFrame};
use chat_core::room::{CloseReason, ConnectionId, Notice, RoomConfig};
use chat_core::session::{EndReason, Line, Outcome, SessionConfig};
use sim_tests::oracle::{self, Verdict, Violation};
use sim_tests::scenario::{
    ClientScript, RunScript, SIM_HISTORY_MAX, SIM_QUEUE_BYTES_MAX, Scenario, UserAction,
};
use sim_tests::world::{ClientRecord, Observations, RunRecord, ServerRecord};

const SEED: u64 = 99;

/// One-way latency between the server and every client.
const LATENCY: Duration = Duration::from_millis(5);

/// The baseline's client hosts, by index.
const ALICE: usize = 0;
const BOB: usize = 1;

/// How the oracle names the baseline's clients.
const ALICE_NAME: &str = "client0 (alice)";
const BOB_NAME: &str = "client1 (bob)";

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Slack the oracle adds to its time bounds.
const SLACK: Duration = Duration::from_secs(2);

/// Within this a crashed member must be announced as left (the default
/// timeouts, as the simulation uses them).
fn departure_bound() -> Duration {
    let room = RoomConfig::default();
    room.heartbeat_timeout + room.session_grace + SLACK
}

/// Within this a client that stops reading must lose its connection.
fn stopped_reader_bound() -> Duration {
    SessionConfig::new("", "").heartbeat_timeout + RoomConfig::default().heartbeat_timeout + SLACK
}

fn joined(nick: &str) -> ServerFrame {
    ServerFrame::Joined {
        room: "lobby".to_owned(),
        seq: 0,
        nick: nick.to_owned(),
    }
}

fn left(nick: &str) -> ServerFrame {
    ServerFrame::Left {
        room: "lobby".to_owned(),
        seq: 0,
        nick: nick.to_owned(),
    }
}

fn message(nick: &str, text: &str) -> ServerFrame {
    ServerFrame::Message {
        room: "lobby".to_owned(),
        seq: 0,
        nick: nick.to_owned(),
        text: text.to_owned(),
    }
}

fn set_seq(frame: &mut ServerFrame, new: Seq) {
    match frame {
        ServerFrame::Joined { seq, .. }
        | ServerFrame::Left { seq, .. }
        | ServerFrame::Message { seq, .. } => *seq = new,
        other => panic!("not a room event: {other:?}"),
    }
}

/// The line a client shows for a room event.
fn line_of(frame: &ServerFrame) -> Line {
    match frame {
        ServerFrame::Joined { seq, nick, .. } => Line::Joined {
            nick: nick.clone(),
            seq: *seq,
        },
        ServerFrame::Left { seq, nick, .. } => Line::Left {
            nick: nick.clone(),
            seq: *seq,
        },
        ServerFrame::Message {
            seq, nick, text, ..
        } => Line::Message {
            nick: nick.clone(),
            text: text.clone(),
            seq: *seq,
        },
        other => panic!("not a room event: {other:?}"),
    }
}

fn line_seq(line: &Line) -> Option<Seq> {
    match line {
        Line::Joined { seq, .. } | Line::Left { seq, .. } | Line::Message { seq, .. } => Some(*seq),
        _ => None,
    }
}

/// Where `lines` show event `seq`.
fn position(lines: &[(Duration, Line)], seq: Seq) -> usize {
    lines
        .iter()
        .position(|(_, line)| line_seq(line) == Some(seq))
        .unwrap_or_else(|| panic!("event {seq} is shown"))
}

/// A room history under construction, as a correct run would record it:
/// each event goes into the server's log and is shown, one latency later, by
/// every client that is in the room at the time.
struct History {
    observations: Observations,
    /// Per client: whether it is in the room and receiving events.
    online: Vec<bool>,
    /// Per client: the last event it showed.
    last_shown: Vec<Seq>,
}

impl History {
    fn new() -> History {
        let scenario = Scenario {
            seed: SEED,
            name: Some("hand-built oracle history".to_owned()),
            active: Duration::from_secs(60),
            quiet: Duration::from_secs(75),
            tick: ms(10),
            max_latency: LATENCY,
            clients: Vec::new(),
            faults: Vec::new(),
            fault_counts: BTreeMap::new(),
        };
        History {
            observations: Observations {
                simulated: scenario.end(),
                scenario,
                server: ServerRecord {
                    queued_bytes_peak: 512,
                    ..ServerRecord::default()
                },
                clients: Vec::new(),
                faults_applied: BTreeMap::new(),
                trace: String::new(),
            },
            online: Vec::new(),
            last_shown: Vec::new(),
        }
    }

    fn check(&self) -> Verdict {
        oracle::check(&self.observations)
    }

    /// A client host whose user starts the client as `nick` at `at`.
    fn client(&mut self, host: &str, nick: &str, at: Duration) -> usize {
        self.observations.scenario.clients.push(ClientScript {
            host: host.to_owned(),
            runs: Vec::new(),
            freezes: Vec::new(),
        });
        self.observations.clients.push(ClientRecord {
            host: host.to_owned(),
            ..ClientRecord::default()
        });
        self.online.push(false);
        self.last_shown.push(0);
        let client = self.online.len() - 1;
        self.start_run(client, nick, at);
        client
    }

    /// The user starts the client again, as `nick`, at `at`.
    fn start_run(&mut self, client: usize, nick: &str, at: Duration) {
        self.observations.scenario.clients[client]
            .runs
            .push(RunScript {
                start: at,
                nick: nick.to_owned(),
                actions: Vec::new(),
            });
        self.observations.clients[client].runs.push(RunRecord {
            nick: nick.to_owned(),
            started: at,
            ..RunRecord::default()
        });
        self.last_shown[client] = 0;
    }

    /// The client's current run.
    fn run(&mut self, client: usize) -> &mut RunRecord {
        self.observations.clients[client]
            .runs
            .last_mut()
            .expect("the client has a run")
    }

    fn nick(&mut self, client: usize) -> String {
        self.run(client).nick.clone()
    }

    /// What the client's current run showed.
    fn shown(&mut self, client: usize) -> &mut Vec<(Duration, Line)> {
        &mut self.run(client).shown
    }

    /// The line with which the client's current run showed event `seq`.
    fn line(&mut self, client: usize, seq: Seq) -> &mut Line {
        let lines = self.shown(client);
        let index = position(lines, seq);
        &mut lines[index].1
    }

    fn show(&mut self, client: usize, at: Duration, line: Line) {
        self.shown(client).push((at, line));
    }

    fn notice(&mut self, at: Duration, notice: Notice) {
        self.observations.server.notices.push((at, notice));
    }

    /// The user types `text` at `at`.
    fn typed(&mut self, client: usize, at: Duration, text: &str) {
        let action = if text == ".exit" {
            UserAction::Exit
        } else {
            UserAction::Say(text.to_owned())
        };
        self.observations.scenario.clients[client]
            .runs
            .last_mut()
            .expect("the client has a run")
            .actions
            .push((at, action));
        self.run(client).typed.push((at, text.to_owned()));
    }

    fn log_len(&self) -> Seq {
        self.observations.server.events.len() as Seq
    }

    /// The server broadcasts `frame` at `at` as the next event; every
    /// client in the room shows it one latency later.
    fn event(&mut self, at: Duration, mut frame: ServerFrame) -> Seq {
        let seq = self.log_len() + 1;
        set_seq(&mut frame, seq);
        let line = line_of(&frame);
        for client in 0..self.online.len() {
            if self.online[client] {
                self.show(client, at + LATENCY, line.clone());
                self.last_shown[client] = seq;
            }
        }
        self.observations.server.events.push((at, frame));
        seq
    }

    /// The client's hello reaches the server at `at`: the room sees it
    /// join, and the client shows its own join, then that it is connected.
    fn join(&mut self, client: usize, at: Duration) -> Seq {
        let nick = self.nick(client);
        self.notice(at, Notice::ConnectionEstablished);
        self.notice(at, Notice::Nickname(nick.clone()));
        self.online[client] = true;
        let seq = self.event(at, joined(&nick));
        self.show(client, at + LATENCY, Line::YouAreConnected);
        seq
    }

    /// The user types `text`; it reaches the room at `at`.
    fn say(&mut self, client: usize, at: Duration, text: &str) -> Seq {
        let nick = self.nick(client);
        self.typed(client, at - LATENCY, text);
        self.event(at, message(&nick, text))
    }

    /// The user types `.exit` at `at`, with everything acknowledged: the
    /// client says it is disconnecting, the room sees it leave, and the run
    /// ends when the server closes the connection.
    fn exit(&mut self, client: usize, at: Duration) -> Seq {
        let nick = self.nick(client);
        self.typed(client, at, ".exit");
        self.show(client, at, Line::Disconnecting);
        self.online[client] = false;
        let left_at = at + LATENCY;
        self.notice(left_at, Notice::LeftServer(nick.clone()));
        self.notice(
            left_at,
            Notice::Dropped {
                connection: ConnectionId(client as u64 + 1),
                nick: Some(nick.clone()),
                reason: CloseReason::PeerClosed,
            },
        );
        let seq = self.event(left_at, left(&nick));
        self.run(client).outcome = Some((
            left_at + LATENCY,
            Outcome {
                reason: EndReason::Left,
                not_delivered: 0,
            },
        ));
        seq
    }

    /// The client stops hearing the server at `at` and says it is
    /// reconnecting; it misses what follows.
    fn disconnect(&mut self, client: usize, at: Duration) {
        self.online[client] = false;
        self.show(
            client,
            at,
            Line::Reconnecting("the server stopped answering".to_owned()),
        );
    }

    /// The client resumes at `at`: the server replays what its history
    /// still holds after the last event the client showed, after a gap
    /// notice for the rest.
    fn resume(&mut self, client: usize, at: Duration) {
        let last = self.log_len();
        let evicted_up_to = last.saturating_sub(SIM_HISTORY_MAX as Seq);
        let from = self.last_shown[client] + 1;
        let first_replayed = from.max(evicted_up_to + 1);
        let replayed = last + 1 - first_replayed;
        let nick = self.nick(client);
        self.notice(
            at,
            Notice::Resumed {
                nick,
                replayed: replayed as usize,
            },
        );
        self.show(client, at + LATENCY, Line::Resumed(replayed));
        if first_replayed > from {
            self.show(client, at + LATENCY, Line::Gap(first_replayed - from));
        }
        for seq in first_replayed..=last {
            let line = line_of(&self.observations.server.events[seq as usize - 1].1);
            self.show(client, at + LATENCY, line);
        }
        self.last_shown[client] = last;
        self.online[client] = true;
    }

    /// The server ends the session of a client that has been away for the
    /// grace period: the room sees it leave.
    fn expire(&mut self, client: usize, at: Duration) -> Seq {
        assert!(
            !self.online[client],
            "only an absent client's session expires"
        );
        let nick = self.nick(client);
        self.notice(at, Notice::LeftServer(nick.clone()));
        self.event(at, left(&nick))
    }

    /// The client reconnects at `at`, is told the server no longer knows its
    /// session, and joins afresh.
    fn rejoin(&mut self, client: usize, at: Duration) -> Seq {
        self.show(client, at, Line::Rejoining);
        self.join(client, at + LATENCY)
    }

    /// Every client run that showed event `seq` shows `text` for it, as the
    /// log does.
    fn set_text(&mut self, seq: Seq, new: &str) {
        let (_, frame) = &mut self.observations.server.events[seq as usize - 1];
        let ServerFrame::Message { text, .. } = frame else {
            panic!("event {seq} is not a message");
        };
        *text = new.to_owned();
        for record in &mut self.observations.clients {
            for run in &mut record.runs {
                for (_, line) in &mut run.shown {
                    if let Line::Message {
                        text, seq: shown, ..
                    } = line
                        && *shown == seq
                    {
                        *text = new.to_owned();
                    }
                }
            }
        }
    }
}

/// The baseline conversation: alice joins, then bob; they talk (alice's
/// messages numbered like the swarm's, bob's in free text like the named
/// scenarios'); bob types `.exit` and leaves; alice stays to the end.
/// `before_exit` adds events while both are in the room.
///
/// The log: 1 alice joined, 2 bob joined, 3 alice "c0 m0 hi bob",
/// 4 bob "Hello there", 5 alice "c0 m1 how are you?", 6 bob left.
fn conversation(before_exit: impl FnOnce(&mut History)) -> History {
    let mut history = History::new();
    let alice = history.client("client0", "alice", ms(500));
    let bob = history.client("client1", "bob", ms(1_500));
    assert_eq!((alice, bob), (ALICE, BOB));
    history.join(alice, ms(1_000));
    history.join(bob, ms(2_000));
    history.say(alice, ms(3_000), "c0 m0 hi bob");
    history.say(bob, ms(4_000), "Hello there");
    history.say(alice, ms(5_000), "c0 m1 how are you?");
    before_exit(&mut history);
    history.exit(bob, ms(6_000));
    history
}

fn baseline() -> History {
    conversation(|_| {})
}

/// The properties the verdict says are broken.
fn broken(verdict: &Verdict) -> BTreeSet<&'static str> {
    verdict
        .violations
        .iter()
        .map(|violation| violation.property)
        .collect()
}

/// The violations of a history that breaks `property` and nothing else
/// (each with the scenario's seed).
fn only(history: &History, property: &str) -> Vec<Violation> {
    assert!(
        oracle::PROPERTIES.contains(&property),
        "unknown property {property}"
    );
    let verdict = history.check();
    assert_eq!(
        broken(&verdict),
        BTreeSet::from([property]),
        "expected only {property} to be broken: {:#?}",
        verdict.violations
    );
    for violation in &verdict.violations {
        assert_eq!(violation.seed, SEED, "{violation}");
    }
    verdict.violations
}

/// The single violation of a history that breaks `property` once and
/// nothing else.
fn single(history: &History, property: &str) -> Violation {
    let mut violations = only(history, property);
    assert_eq!(violations.len(), 1, "{violations:#?}");
    violations.remove(0)
}

fn client(violation: &Violation) -> Option<&str> {
    violation.client.as_deref()
}

// The smallest change to the baseline that breaks each property.

/// The server numbers event 4 as 5 (the clients still show it as 4).
fn break_log_contiguous() -> History {
    let mut history = baseline();
    set_seq(&mut history.observations.server.events[3].1, 5);
    history
}

/// alice shows bob's message with other words.
fn break_no_fabrication() -> History {
    let mut history = baseline();
    *history.line(ALICE, 4) = Line::Message {
        nick: "bob".to_owned(),
        text: "Hello where".to_owned(),
        seq: 4,
    };
    history
}

/// The server delivers bob's retried message a second time.
fn break_no_duplicate() -> History {
    conversation(|history| {
        history.event(ms(5_500), message("bob", "Hello there"));
    })
}

/// alice shows events 3 and 4 the wrong way round.
fn break_sequence_order() -> History {
    let mut history = baseline();
    let lines = history.shown(ALICE);
    let (third, fourth) = (position(lines, 3), position(lines, 4));
    let line = lines[third].1.clone();
    lines[third].1 = lines[fourth].1.clone();
    lines[fourth].1 = line;
    history
}

/// The room delivers alice's two numbered messages the wrong way round (and
/// everyone shows them so).
fn break_per_sender_fifo() -> History {
    let mut history = baseline();
    history.set_text(3, "c0 m1 how are you?");
    history.set_text(5, "c0 m0 hi bob");
    history
}

/// alice skips event 4 without a word.
fn break_no_silent_gap() -> History {
    let mut history = baseline();
    let lines = history.shown(ALICE);
    let index = position(lines, 4);
    lines.remove(index);
    history
}

/// alice skips event 4 with a gap notice, though the room's history still
/// held it.
fn break_gap_justified() -> History {
    let mut history = baseline();
    *history.line(ALICE, 4) = Line::Gap(1);
    history
}

/// An impostor is let into the room as bob while bob is there.
fn break_unique_nicknames() -> History {
    conversation(|history| {
        history.event(ms(5_500), joined("bob"));
    })
}

/// bob's departure is announced a second time.
fn break_join_leave_once() -> History {
    let mut history = baseline();
    history.event(ms(7_000), left("bob"));
    history
}

/// alice is told the server forgot her session, though she never left.
fn break_no_spurious_rejoin() -> History {
    let mut history = baseline();
    let lines = history.shown(ALICE);
    let index = position(lines, 5);
    lines.insert(index, (ms(4_500), Line::Rejoining));
    history
}

/// alice types a message that never reaches the room, and is not told.
fn break_sends_resolved() -> History {
    let mut history = baseline();
    history.typed(ALICE, ms(5_500), "c0 m2 anyone there?");
    history
}

/// alice, still running at the end, never shows bob leaving (event 6).
fn break_liveness_delivery() -> History {
    let mut history = baseline();
    let lines = history.shown(ALICE);
    let index = position(lines, 6);
    lines.remove(index);
    history
}

/// alice's host crashes while she is in the room, and the room never sees
/// her leave.
fn break_crash_announced() -> History {
    let mut history = baseline();
    history.observations.clients[ALICE].crashed_at = Some(ms(8_000));
    history
}

/// One connection's queue grows one byte past the limit.
fn break_bounded_queues() -> History {
    let mut history = baseline();
    history.observations.server.queued_bytes_peak = SIM_QUEUE_BYTES_MAX + 1;
    history
}

/// alice stops reading for the whole bound, and the server never drops her.
fn break_stopped_reader_dropped() -> History {
    let mut history = baseline();
    let start = ms(8_000);
    history.observations.clients[ALICE]
        .freezes
        .push((start, start + stopped_reader_bound()));
    history
}

/// Builds a history that breaks one property.
type Breaker = fn() -> History;

/// Each property's breaker, in the order of [`oracle::PROPERTIES`].
const BREAKERS: [(&str, Breaker); 15] = [
    ("log_contiguous", break_log_contiguous),
    ("no_fabrication", break_no_fabrication),
    ("no_duplicate", break_no_duplicate),
    ("sequence_order", break_sequence_order),
    ("per_sender_fifo", break_per_sender_fifo),
    ("no_silent_gap", break_no_silent_gap),
    ("gap_justified", break_gap_justified),
    ("unique_nicknames", break_unique_nicknames),
    ("join_leave_once", break_join_leave_once),
    ("no_spurious_rejoin", break_no_spurious_rejoin),
    ("sends_resolved", break_sends_resolved),
    ("liveness_delivery", break_liveness_delivery),
    ("crash_announced", break_crash_announced),
    ("bounded_queues", break_bounded_queues),
    ("stopped_reader_dropped", break_stopped_reader_dropped),
];

#[test]
fn the_baseline_passes_every_check() {
    let history = baseline();
    let verdict = history.check();
    assert!(verdict.violations.is_empty(), "{:#?}", verdict.violations);
    // At least one check per logged event (its numbering) and per event
    // each client showed.
    let shown_events: usize = history
        .observations
        .clients
        .iter()
        .flat_map(|record| &record.runs)
        .flat_map(|run| &run.shown)
        .filter(|(_, line)| line_seq(line).is_some())
        .count();
    assert!(shown_events > 0);
    assert!(
        verdict.checks >= history.observations.server.events.len() + shown_events,
        "only {} checks",
        verdict.checks
    );
}

#[test]
fn every_property_has_a_breaker_that_the_oracle_catches() {
    let names: Vec<&str> = BREAKERS.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, oracle::PROPERTIES);
    for (property, breaker) in BREAKERS {
        let verdict = breaker().check();
        assert!(
            broken(&verdict).contains(property),
            "{property} was not caught: {:#?}",
            verdict.violations
        );
    }
}

#[test]
fn log_contiguous_catches_a_misnumbered_event() {
    let violation = single(&break_log_contiguous(), "log_contiguous");
    assert_eq!(client(&violation), None);
    assert_eq!(violation.seqs, [5]);
}

#[test]
fn no_fabrication_catches_an_altered_line() {
    let violation = single(&break_no_fabrication(), "no_fabrication");
    assert_eq!(client(&violation), Some(ALICE_NAME));
    assert_eq!(violation.seqs, [4]);
}

#[test]
fn no_duplicate_catches_a_message_logged_twice() {
    let violation = single(&break_no_duplicate(), "no_duplicate");
    assert_eq!(client(&violation), None);
    assert_eq!(violation.seqs, [6]);
}

#[test]
fn no_duplicate_catches_a_line_shown_twice() {
    let mut history = baseline();
    let lines = history.shown(ALICE);
    let index = position(lines, 4);
    let copy = lines[index].clone();
    lines.insert(index + 1, copy);
    let verdict = history.check();
    // Within one run a repeat is also out of order and leaves event 5's
    // place empty.
    assert_eq!(
        broken(&verdict),
        BTreeSet::from(["no_duplicate", "no_silent_gap", "sequence_order"])
    );
    let duplicates: Vec<&Violation> = verdict
        .violations
        .iter()
        .filter(|violation| violation.property == "no_duplicate")
        .collect();
    assert_eq!(duplicates.len(), 1, "{duplicates:#?}");
    assert_eq!(duplicates[0].seed, SEED);
    assert_eq!(client(duplicates[0]), Some(ALICE_NAME));
    assert_eq!(duplicates[0].seqs, [4]);
}

#[test]
fn sequence_order_catches_swapped_lines() {
    let verdict = break_sequence_order().check();
    // An event shown too early also leaves a hole where it belonged: with
    // no rejoin in between, order and gap checks cannot be separated.
    assert_eq!(
        broken(&verdict),
        BTreeSet::from(["no_silent_gap", "sequence_order"]),
        "{:#?}",
        verdict.violations
    );
    let order: Vec<&Violation> = verdict
        .violations
        .iter()
        .filter(|violation| violation.property == "sequence_order")
        .collect();
    assert_eq!(order.len(), 1, "{order:#?}");
    assert_eq!(order[0].seed, SEED);
    assert_eq!(client(order[0]), Some(ALICE_NAME));
    assert_eq!(order[0].seqs, [4, 3]);
}

#[test]
fn per_sender_fifo_catches_a_sender_reordered_in_the_log() {
    let violation = single(&break_per_sender_fifo(), "per_sender_fifo");
    // The oracle names the sender by its message prefix (`c0`), not as
    // "host (nick)" like the other client properties.
    assert_eq!(client(&violation), Some("c0"));
    assert_eq!(violation.seqs, [5]);
}

#[test]
fn no_silent_gap_catches_a_missing_line() {
    let violation = single(&break_no_silent_gap(), "no_silent_gap");
    assert_eq!(client(&violation), Some(ALICE_NAME));
    assert_eq!(violation.seqs, [4, 5]);
}

#[test]
fn gap_justified_catches_a_gap_over_history_still_held() {
    let violation = single(&break_gap_justified(), "gap_justified");
    assert_eq!(client(&violation), Some(ALICE_NAME));
    assert_eq!(violation.seqs, [4, 4]);
}

/// The baseline, then alice loses her connection, carol joins and says 40
/// things (more than the room's history holds), and alice resumes.
fn long_outage() -> History {
    let mut history = baseline();
    history.disconnect(ALICE, ms(6_500));
    let carol = history.client("client2", "carol", ms(6_900));
    history.join(carol, ms(7_000));
    for number in 0..40 {
        history.say(
            carol,
            ms(7_100 + 100 * number),
            &format!("c2 m{number} chatter"),
        );
    }
    history.resume(ALICE, ms(20_000));
    history
}

#[test]
fn a_gap_over_evicted_history_is_justified_and_one_event_more_is_not() {
    let mut history = long_outage();
    // 47 events, the last 32 held: alice skips 7..=15 and is replayed
    // 16..=47.
    assert_eq!(history.log_len(), 47);
    assert!(history.shown(ALICE).contains(&(ms(20_005), Line::Gap(9))));
    let verdict = history.check();
    assert!(verdict.violations.is_empty(), "{:#?}", verdict.violations);

    // Skipping event 16 too, which history still held, is not justified.
    let lines = history.shown(ALICE);
    let gap = lines
        .iter()
        .position(|(_, line)| *line == Line::Gap(9))
        .expect("the gap is shown");
    lines[gap].1 = Line::Gap(10);
    let index = position(lines, 16);
    lines.remove(index);
    let violation = single(&history, "gap_justified");
    assert_eq!(client(&violation), Some(ALICE_NAME));
    assert_eq!(violation.seqs, [7, 16]);
}

#[test]
fn unique_nicknames_catches_a_second_member_with_the_same_name() {
    let violation = single(&break_unique_nicknames(), "unique_nicknames");
    assert_eq!(client(&violation), Some("bob"));
    assert_eq!(violation.seqs, [6]);
}

#[test]
fn join_leave_once_catches_a_second_departure() {
    let violation = single(&break_join_leave_once(), "join_leave_once");
    assert_eq!(client(&violation), Some("bob"));
    assert_eq!(violation.seqs, [7]);
}

#[test]
fn join_leave_once_catches_a_message_after_leaving() {
    let mut history = baseline();
    history.event(ms(7_000), message("bob", "Hello again"));
    let violation = single(&history, "join_leave_once");
    assert_eq!(client(&violation), Some("bob"));
    assert_eq!(violation.seqs, [7]);
}

#[test]
fn a_member_who_left_may_come_back() {
    let mut history = baseline();
    history.start_run(BOB, "bob", ms(8_000));
    history.join(BOB, ms(8_500));
    history.say(BOB, ms(9_000), "I'm back");
    let verdict = history.check();
    assert!(verdict.violations.is_empty(), "{:#?}", verdict.violations);
}

#[test]
fn no_spurious_rejoin_catches_a_forgotten_session() {
    let violation = single(&break_no_spurious_rejoin(), "no_spurious_rejoin");
    assert_eq!(client(&violation), Some(ALICE_NAME));
    assert!(violation.seqs.is_empty());
}

/// The baseline, then alice is away longer than the grace period: her
/// session expires (event 7) and she joins afresh (event 8).
fn expired_and_rejoined() -> History {
    let mut history = baseline();
    history.disconnect(ALICE, ms(6_500));
    history.expire(ALICE, ms(6_500) + RoomConfig::default().session_grace);
    history.rejoin(ALICE, ms(60_000));
    history
}

#[test]
fn a_rejoin_after_the_session_expired_is_fine() {
    let history = expired_and_rejoined();
    assert_eq!(history.log_len(), 8);
    let verdict = history.check();
    assert!(verdict.violations.is_empty(), "{:#?}", verdict.violations);
}

// Oracle bug: `no_spurious_rejoin` accepts a rejoin if the nickname left the
// room at any time before, even in an earlier session. Here alice's session
// expired once (a correct rejoin), then her new session is forgotten too
// without the room seeing her leave; only the second fresh join is flagged
// (as `unique_nicknames`), the forgotten session is not.
#[test]
fn no_spurious_rejoin_catches_a_session_forgotten_after_an_earlier_expiry() {
    let mut history = expired_and_rejoined();
    history.disconnect(ALICE, ms(65_000));
    history.rejoin(ALICE, ms(70_000));
    let verdict = history.check();
    let spurious: Vec<&Violation> = verdict
        .violations
        .iter()
        .filter(|violation| violation.property == "no_spurious_rejoin")
        .collect();
    assert_eq!(
        spurious.len(),
        1,
        "the second rejoin (no departure since the first) is not reported: {:#?}",
        verdict.violations
    );
    assert_eq!(client(spurious[0]), Some(ALICE_NAME));
}

// The same oracle bug across runs: bob left in his first run, so a forgotten
// session in his second run goes unreported as such.
#[test]
fn no_spurious_rejoin_catches_a_forgotten_session_in_a_later_run() {
    let mut history = baseline();
    history.start_run(BOB, "bob", ms(8_000));
    history.join(BOB, ms(8_500));
    history.disconnect(BOB, ms(9_000));
    history.rejoin(BOB, ms(10_000));
    let verdict = history.check();
    let spurious: Vec<&Violation> = verdict
        .violations
        .iter()
        .filter(|violation| violation.property == "no_spurious_rejoin")
        .collect();
    assert_eq!(
        spurious.len(),
        1,
        "bob's second run was told its session was gone while it was in the room: {:#?}",
        verdict.violations
    );
    assert_eq!(client(spurious[0]), Some(BOB_NAME));
}

#[test]
fn sends_resolved_catches_a_silently_lost_message() {
    let violation = single(&break_sends_resolved(), "sends_resolved");
    assert_eq!(client(&violation), Some(ALICE_NAME));
    assert!(violation.seqs.is_empty());
    assert!(violation.detail.contains("1 typed"), "{}", violation.detail);
}

#[test]
fn a_lost_message_reported_as_undelivered_is_resolved() {
    let mut history = break_sends_resolved();
    history.show(ALICE, ms(7_000), Line::Undelivered(1));
    let verdict = history.check();
    assert!(verdict.violations.is_empty(), "{:#?}", verdict.violations);
}

#[test]
fn sends_resolved_applies_to_a_run_that_ended() {
    let mut history = baseline();
    history.typed(BOB, ms(5_800), "Anyone?");
    let violation = single(&history, "sends_resolved");
    assert_eq!(client(&violation), Some(BOB_NAME));
}

#[test]
fn liveness_delivery_catches_a_missed_final_event() {
    let violation = single(&break_liveness_delivery(), "liveness_delivery");
    assert_eq!(client(&violation), Some(ALICE_NAME));
    assert_eq!(violation.seqs, [5, 6]);
}

#[test]
fn crash_announced_catches_a_crashed_member_never_announced() {
    let violation = single(&break_crash_announced(), "crash_announced");
    assert_eq!(client(&violation), Some(ALICE_NAME));
    assert!(violation.seqs.is_empty());
}

#[test]
fn a_crash_is_announced_within_the_bound_and_not_after() {
    let crashed_at = ms(8_000);
    let announced = |after: Duration| {
        let mut history = break_crash_announced();
        history.event(crashed_at + after, left("alice"));
        history
    };
    // At once (the connection closed), after heartbeat timeout and grace,
    // and at the bound itself (which includes the oracle's slack).
    for after in [ms(1), departure_bound() - SLACK, departure_bound()] {
        let verdict = announced(after).check();
        assert!(
            verdict.violations.is_empty(),
            "announced {after:?} after the crash: {:#?}",
            verdict.violations
        );
    }
    let violation = single(&announced(departure_bound() + ms(1)), "crash_announced");
    assert_eq!(client(&violation), Some(ALICE_NAME));
}

#[test]
fn bounded_queues_catches_a_queue_past_its_limit() {
    let violation = single(&break_bounded_queues(), "bounded_queues");
    assert_eq!(client(&violation), None);
    assert!(violation.seqs.is_empty());

    let mut at_limit = baseline();
    at_limit.observations.server.queued_bytes_peak = SIM_QUEUE_BYTES_MAX;
    assert!(at_limit.check().violations.is_empty());
}

#[test]
fn stopped_reader_dropped_catches_a_reader_kept_connected() {
    let violation = single(&break_stopped_reader_dropped(), "stopped_reader_dropped");
    assert_eq!(client(&violation), Some(ALICE_NAME));
    assert!(violation.seqs.is_empty());
}

#[test]
fn a_stopped_reader_dropped_within_the_bound_passes_and_a_later_drop_does_not() {
    let start = ms(8_000);
    let dropped = |after: Duration| {
        let mut history = break_stopped_reader_dropped();
        history.notice(
            start + after,
            Notice::Dropped {
                connection: ConnectionId(1),
                nick: Some("alice".to_owned()),
                reason: CloseReason::QueueOverflow,
            },
        );
        history
    };
    let verdict = dropped(ms(12_000)).check();
    assert!(verdict.violations.is_empty(), "{:#?}", verdict.violations);
    single(
        &dropped(stopped_reader_bound() + ms(1)),
        "stopped_reader_dropped",
    );
}

#[test]
fn a_pause_shorter_than_the_bound_need_not_be_dropped() {
    let mut history = baseline();
    let start = ms(8_000);
    history.observations.clients[ALICE]
        .freezes
        .push((start, start + stopped_reader_bound() - ms(1)));
    let verdict = history.check();
    assert!(verdict.violations.is_empty(), "{:#?}", verdict.violations);
}

#[test]
fn a_violation_displays_its_property_seed_client_and_seqs() {
    let violation = single(&break_no_silent_gap(), "no_silent_gap");
    let text = violation.to_string();
    for part in [
        "no_silent_gap",
        "seed 99",
        "client client0 (alice)",
        "[4, 5]",
    ] {
        assert!(text.contains(part), "{part:?} is not in {text:?}");
    }
    assert!(text.contains(&violation.detail), "{text:?}");
}

#[test]
fn a_violation_without_a_client_displays_none() {
    let violation = single(&break_bounded_queues(), "bounded_queues");
    let text = violation.to_string();
    assert!(text.contains("bounded_queues"), "{text:?}");
    assert!(text.contains("seed 99"), "{text:?}");
    assert!(!text.contains("client"), "{text:?}");
    assert!(!text.contains("seqs"), "{text:?}");
}
