//! One timeline of everything that happened to a run besides the chat
//! itself: every fault of the scenario's plan with where it struck and when
//! it started and ended (client freezes, late joins, crashes, link faults,
//! server crashes, disk errors and full disks), the adversaries' episodes,
//! the server's stops and restarts as they were observed, and the moment
//! the network heals.
//!
//! Why one place: the first question about a failing seed is "what was
//! going wrong around then, and where?", and the text report
//! ([`crate::report`]) and the picture ([`crate::svg`]) must give the same
//! answer. Times are the plan's; the step loop applies each at the first
//! tick at or after it.

use std::time::Duration;

use crate::adversary::Conversation;
use crate::scenario::{DiskOperation, FaultEvent, FaultKind, Scenario};
use crate::world::{Lifetime, Observations};

/// A horizontal lane of the run: a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane {
    /// The server host.
    Server,
    /// A client host, by its index in the scenario's clients.
    Client(usize),
    /// An adversary host, by its index in the scenario's adversaries.
    Adversary(usize),
}

/// Where an entry of the timeline struck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The whole room: the server, and through it everyone.
    Everyone,
    /// One host.
    Lane(Lane),
}

/// When an entry of the timeline ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// It is a moment, not a period.
    Instant,
    /// At this time.
    At(Duration),
    /// Never: it lasts to the end of the run.
    RunEnd,
}

/// What an entry of the timeline is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A fault of the plan.
    Fault(FaultKind),
    /// An adversary's episode (one connection).
    Episode,
    /// The server started again (after a crash or a stop).
    ServerStarted,
    /// The server stopped by itself (a storage failure) or could not start.
    ServerStopped,
    /// The network healed: the quiet phase began.
    Heal,
}

/// One entry of the timeline.
#[derive(Clone, Debug)]
pub struct Entry {
    /// When it began.
    pub start: Duration,
    /// When it ended.
    pub until: Until,
    /// Where.
    pub place: Place,
    /// What kind of thing it is.
    pub kind: Kind,
    /// What happened, in words.
    pub what: String,
    /// A word or two for it, for a picture.
    pub label: String,
}

impl Entry {
    /// When it ended, as a time (an instant ends where it starts).
    pub fn end(&self, run_end: Duration) -> Duration {
        match self.until {
            Until::Instant => self.start,
            Until::At(at) => at,
            Until::RunEnd => run_end,
        }
    }
}

/// Every lane of a run, in the order they are shown: the server, the
/// client hosts, the adversaries.
pub fn lanes(scenario: &Scenario) -> Vec<Lane> {
    let clients = (0..scenario.clients.len()).map(Lane::Client);
    let adversaries = (0..scenario.adversaries.len()).map(Lane::Adversary);
    std::iter::once(Lane::Server)
        .chain(clients)
        .chain(adversaries)
        .collect()
}

/// A lane's host name.
pub fn host_of(scenario: &Scenario, lane: Lane) -> &str {
    match lane {
        Lane::Server => crate::scenario::SERVER_HOST,
        Lane::Client(index) => &scenario.clients[index].host,
        Lane::Adversary(index) => &scenario.adversaries[index].host,
    }
}

/// The lane of a host, if it is one of the run's.
pub fn lane_of_host(scenario: &Scenario, host: &str) -> Option<Lane> {
    lanes(scenario)
        .into_iter()
        .find(|lane| host_of(scenario, *lane) == host)
}

/// The whole timeline of a run, by start time (the plan's order among
/// equal times).
pub fn entries(observations: &Observations) -> Vec<Entry> {
    let scenario = &observations.scenario;
    let mut entries: Vec<Entry> = scenario
        .faults
        .iter()
        .map(|(at, event)| planned_fault(observations, *at, event))
        .collect();
    entries.extend(client_faults(scenario));
    entries.extend(episodes(scenario, &observations.adversaries));
    entries.extend(server_lifetimes(&observations.server.lifetimes));
    entries.push(Entry {
        start: scenario.heal_at(),
        until: Until::Instant,
        place: Place::Everyone,
        kind: Kind::Heal,
        what: "the network heals: held links released, partitions repaired, no more link \
               failures or latency spikes, room on the disk; nobody types from now on"
            .to_owned(),
        label: "heal".to_owned(),
    });
    entries.sort_by_key(|entry| entry.start);
    for entry in &mut entries {
        note_crashed_host(observations, entry);
    }
    entries
}

/// A fault that strikes a client host after the host crashed changes
/// nothing: say so, lest a reader look for its effect.
fn note_crashed_host(observations: &Observations, entry: &mut Entry) {
    let Place::Lane(Lane::Client(index)) = entry.place else {
        return;
    };
    let crashed = observations
        .clients
        .get(index)
        .and_then(|client| client.crashed_at);
    if let Some(crashed) = crashed.filter(|crashed| *crashed < entry.start) {
        entry.what.push_str(&format!(
            " (no effect: the host crashed at {:.3} s)",
            crashed.as_secs_f64()
        ));
    }
}

/// The faults of the plan that live in the users' scripts: clients that
/// stop reading, and clients that start late.
fn client_faults(scenario: &Scenario) -> Vec<Entry> {
    let mut entries = Vec::new();
    let late_joins = scenario.fault_counts.contains_key(&FaultKind::LateJoin);
    for (index, client) in scenario.clients.iter().enumerate() {
        let place = Place::Lane(Lane::Client(index));
        for (start, end) in &client.freezes {
            entries.push(Entry {
                start: *start,
                until: Until::At(*end),
                place,
                kind: Kind::Fault(FaultKind::StopReading),
                what: format!(
                    "stopped reader: {} does not read its socket (it still writes, heartbeats too)",
                    client.host
                ),
                label: fault_label(FaultKind::StopReading).to_owned(),
            });
        }
        let first = client.runs.first();
        // The plan's own rule for a late joiner (see scenario::faults).
        if let Some(run) = first.filter(|run| late_joins && run.start >= Duration::from_secs(15)) {
            entries.push(Entry {
                start: Duration::ZERO,
                until: Until::At(run.start),
                place,
                kind: Kind::Fault(FaultKind::LateJoin),
                what: format!(
                    "late join: {} starts its client only at {:.3} s",
                    run.nick,
                    run.start.as_secs_f64()
                ),
                label: fault_label(FaultKind::LateJoin).to_owned(),
            });
        }
    }
    entries
}

/// A fault of the plan's list, with the place it struck.
fn planned_fault(observations: &Observations, at: Duration, event: &FaultEvent) -> Entry {
    let client = struck_client(event).unwrap_or_default();
    let place = lane_of_host(&observations.scenario, client).map_or(Place::Everyone, Place::Lane);
    let (until, kind, what) = match event {
        FaultEvent::LatencySpike { max, until, .. } => (
            Until::At(*until),
            FaultKind::LatencySpike,
            format!(
                "latency spike: messages between the server and {client} take up to {} ms",
                max.as_millis()
            ),
        ),
        FaultEvent::Hold { until, .. } => (
            Until::At(*until),
            FaultKind::Hold,
            format!("held link: segments between the server and {client} wait, then all arrive"),
        ),
        FaultEvent::Partition { until, .. } => (
            Until::At(*until),
            FaultKind::Partition,
            format!("partition: the server and {client} cannot reach each other"),
        ),
        FaultEvent::PartitionOneWay {
            to_client, until, ..
        } => (
            Until::At(*until),
            FaultKind::PartitionOneWay,
            one_way(client, *to_client),
        ),
        FaultEvent::LinkFailure {
            rate_per_mille,
            until,
            ..
        } => (
            Until::At(*until),
            FaultKind::LinkFailure,
            format!(
                "failing link: each segment between the server and {client} breaks the link \
                 with chance {:.1}% (an open stream then stays stuck)",
                f64::from(*rate_per_mille) / 10.0
            ),
        ),
        FaultEvent::Crash { .. } => (
            Until::RunEnd,
            FaultKind::Crash,
            format!(
                "client crash: {client}'s host crashes for good{}",
                crash_note(observations, place)
            ),
        ),
        FaultEvent::ServerCrash { .. }
        | FaultEvent::DiskError { .. }
        | FaultEvent::DiskFull { .. } => return server_fault(observations, at, event),
    };
    Entry {
        start: at,
        until,
        place,
        kind: Kind::Fault(kind),
        what,
        label: fault_label(kind).to_owned(),
    }
}

/// What a client crash struck: the step loop crashes only a host that is
/// still running, and one whose client runs have all ended is not.
fn crash_note(observations: &Observations, place: Place) -> &'static str {
    let Place::Lane(Lane::Client(index)) = place else {
        return "";
    };
    let crashed = observations
        .clients
        .get(index)
        .is_some_and(|client| client.crashed_at.is_some());
    if crashed {
        ""
    } else {
        " (nothing to crash: its client had already ended)"
    }
}

/// The client host a fault strikes, if it strikes one.
fn struck_client(event: &FaultEvent) -> Option<&str> {
    match event {
        FaultEvent::LatencySpike { client, .. }
        | FaultEvent::Hold { client, .. }
        | FaultEvent::Partition { client, .. }
        | FaultEvent::PartitionOneWay { client, .. }
        | FaultEvent::LinkFailure { client, .. }
        | FaultEvent::Crash { client } => Some(client),
        FaultEvent::ServerCrash { .. }
        | FaultEvent::DiskError { .. }
        | FaultEvent::DiskFull { .. } => None,
    }
}

fn one_way(client: &str, to_client: bool) -> String {
    if to_client {
        format!("one-way partition: the server cannot reach {client} ({client} still reaches it)")
    } else {
        format!("one-way partition: {client} cannot reach the server (the server still reaches it)")
    }
}

/// A fault of the server's host or disk: it strikes everyone.
fn server_fault(observations: &Observations, at: Duration, event: &FaultEvent) -> Entry {
    let (until, kind, what) = match event {
        FaultEvent::ServerCrash { down } => {
            // The observed restart, if the server was up to be crashed.
            let restarted = observations
                .server
                .lifetimes
                .iter()
                .map(|lifetime| lifetime.started)
                .find(|started| *started > at);
            // The step loop crashes the host at the first tick at or after
            // `at`, and only if it is running.
            let tick = observations.scenario.tick;
            let crashed = observations
                .server
                .crashes
                .iter()
                .any(|crash| *crash >= at && *crash <= at + tick);
            let already_down = if crashed {
                ""
            } else {
                " (it was down already: nothing to crash, but the restart waits)"
            };
            (
                restarted.map_or(Until::At(at + *down), Until::At),
                FaultKind::ServerCrash,
                format!(
                    "server crash: the server's host crashes (writes not yet synced are lost, \
                     writes in flight torn); a supervisor starts it again after {:.3} s{already_down}",
                    down.as_secs_f64()
                ),
            )
        }
        FaultEvent::DiskError { operation } => {
            let operation = match operation {
                DiskOperation::Append => "write",
                DiskOperation::Sync => "data sync",
                DiskOperation::SyncDirectory => "directory sync",
            };
            (
                Until::Instant,
                FaultKind::DiskError,
                format!("disk error: the log's next {operation} fails (the server must stop)"),
            )
        }
        FaultEvent::DiskFull { until } => (
            Until::At(*until),
            FaultKind::DiskFull,
            "full disk: every write of the server's log fails".to_owned(),
        ),
        other => unreachable!("{other:?} strikes a client, not the server"),
    };
    Entry {
        start: at,
        until,
        place: Place::Everyone,
        kind: Kind::Fault(kind),
        what,
        label: fault_label(kind).to_owned(),
    }
}

/// What one fault of a kind is called in a picture.
pub fn fault_label(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::LatencySpike => "latency spike",
        FaultKind::Hold => "held link",
        FaultKind::Partition => "partition",
        FaultKind::PartitionOneWay => "one-way partition",
        FaultKind::LinkFailure => "failing link",
        FaultKind::Crash => "host crashed",
        FaultKind::StopReading => "stopped reading",
        FaultKind::LateJoin => "not started yet (late join)",
        FaultKind::ServerCrash => "server crash",
        FaultKind::DiskError => "disk error",
        FaultKind::DiskFull => "disk full",
    }
}

/// Each adversary episode, from its scripted start to when it gave up.
fn episodes(scenario: &Scenario, conversations: &[Conversation]) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (index, script) in scenario.adversaries.iter().enumerate() {
        for (number, (at, episode)) in script.episodes.iter().enumerate() {
            let nick = format!("{}-{number}", script.host);
            let conversation = conversations.iter().find(|held| held.nick == nick);
            let until = conversation
                .map(|held| held.ended)
                .filter(|ended| ended > at)
                .map_or(Until::Instant, Until::At);
            let outcome = match conversation {
                None => " (never ran: the run ended first)",
                Some(held) if held.connected.is_none() => " (could not connect)",
                Some(held) if held.closed.is_some() => " (the server closed it)",
                Some(_) => "",
            };
            entries.push(Entry {
                start: *at,
                until,
                place: Place::Lane(Lane::Adversary(index)),
                kind: Kind::Episode,
                what: format!("adversary {nick}: {}{outcome}", episode.summary()),
                label: episode.label().to_owned(),
            });
        }
    }
    entries
}

/// The server's starts after the first, and its stops by itself.
fn server_lifetimes(lifetimes: &[Lifetime]) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (number, lifetime) in lifetimes.iter().enumerate() {
        let at_server = |start, kind, what| Entry {
            start,
            until: Until::Instant,
            place: Place::Lane(Lane::Server),
            kind,
            what,
            label: match kind {
                Kind::ServerStarted => "restart".to_owned(),
                _ => "stop".to_owned(),
            },
        };
        if number > 0 && lifetime.failed.is_none() {
            entries.push(at_server(
                lifetime.started,
                Kind::ServerStarted,
                started_again(lifetime),
            ));
        }
        if let Some(error) = &lifetime.failed {
            entries.push(at_server(
                lifetime.started,
                Kind::ServerStopped,
                format!("the server tries to start but cannot: {error}"),
            ));
        }
        if let (Some(error), Some(at)) = (&lifetime.stopped, lifetime.stopped_at) {
            entries.push(at_server(
                at,
                Kind::ServerStopped,
                format!("the server stops by itself: {error}"),
            ));
        }
    }
    entries
}

fn started_again(lifetime: &Lifetime) -> String {
    let mut what = "the server starts again".to_owned();
    if let Some(recovery) = lifetime.recovery {
        what.push_str(&format!(
            ": recovered {} and {} from {}",
            plural(lifetime.rooms.len() as u64, "room"),
            plural(lifetime.members.len() as u64, "session"),
            plural(recovery.records_read, "record")
        ));
        if recovery.tail_bytes_dropped > 0 {
            what.push_str(&format!(
                ", cut {} torn bytes off the log's tail",
                recovery.tail_bytes_dropped
            ));
        }
    } else if lifetime.up {
        what.push_str(" (keeping nothing: it starts empty)");
    }
    what
}

/// `1 room`, `2 rooms`.
fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// When the server was down (crashed, stopped, or failing to start):
/// from each end of a lifetime to the next start, or to `run_end`.
pub fn server_down(observations: &Observations) -> Vec<(Duration, Duration)> {
    let server = &observations.server;
    let run_end = observations.simulated;
    let mut down = Vec::new();
    for (number, lifetime) in server.lifetimes.iter().enumerate() {
        let next = server.lifetimes.get(number + 1).map(|next| next.started);
        let upper = next.unwrap_or(run_end);
        let crashed = server
            .crashes
            .iter()
            .copied()
            .filter(|at| *at >= lifetime.started && *at <= upper)
            .min();
        let ended = if lifetime.failed.is_some() {
            Some(lifetime.started)
        } else {
            crashed.into_iter().chain(lifetime.stopped_at).min()
        };
        if let Some(ended) = ended.filter(|ended| *ended < upper) {
            down.push((ended, upper));
        }
    }
    down
}
