//! What a simulation run does: its users' scripts and its fault plan.
//!
//! A swarm scenario is derived from one seed, through separate random streams
//! per purpose (user script, faults, protocol jitter), so that changing how
//! one is drawn does not change the others. Named scenarios are written by
//! hand with fixed times, for the transcript snapshots.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;

use crate::seeds::SeedRng;
pub use crate::seeds::stream;

/// The server's host name in every simulation.
pub const SERVER_HOST: &str = "server";

/// The port the server listens on.
pub const SERVER_PORT: u16 = 9999;

/// Per-connection queue limit in simulations: small, so that a client that
/// stops reading fills it within a run.
pub const SIM_QUEUE_BYTES_MAX: usize = 4096;

/// Per-stream segment capacity of turmoil's TCP in simulations (each write
/// is one segment). turmoil uses the same number as the listener's backlog
/// and panics when a burst of held connection attempts overflows it, so it
/// stays at turmoil's default.
pub const SIM_TCP_CAPACITY: usize = 64;

/// Room history in simulations: small, so that resumes after long outages
/// meet gap notices.
pub const SIM_HISTORY_MAX: usize = 32;

/// Something a scripted user does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserAction {
    /// Types a message.
    Say(String),
    /// Types `.exit`.
    Exit,
}

/// One run of the client program on a host: started at `start`, as `nick`.
#[derive(Clone, Debug)]
pub struct RunScript {
    /// When the user starts the client.
    pub start: Duration,
    /// The nickname.
    pub nick: String,
    /// What the user types, at absolute times.
    pub actions: Vec<(Duration, UserAction)>,
}

/// Everything that happens on one client host.
#[derive(Clone, Debug)]
pub struct ClientScript {
    /// The host's name.
    pub host: String,
    /// Client runs, one after the other.
    pub runs: Vec<RunScript>,
    /// Windows during which the client does not read its socket.
    pub freezes: Vec<(Duration, Duration)>,
}

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A link's latency jumps for a while.
    LatencySpike,
    /// A link holds every segment for a while, then delivers them.
    Hold,
    /// A link drops everything, both ways, for a while.
    Partition,
    /// A link drops everything one way for a while.
    PartitionOneWay,
    /// A link fails at random for a while.
    LinkFailure,
    /// A client host crashes for good.
    Crash,
    /// A client stops reading for a while.
    StopReading,
    /// A client starts late.
    LateJoin,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::LatencySpike,
        FaultKind::Hold,
        FaultKind::Partition,
        FaultKind::PartitionOneWay,
        FaultKind::LinkFailure,
        FaultKind::Crash,
        FaultKind::StopReading,
        FaultKind::LateJoin,
    ];

    /// A short name for summaries.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::LatencySpike => "latency spikes",
            FaultKind::Hold => "held links",
            FaultKind::Partition => "partitions",
            FaultKind::PartitionOneWay => "one-way partitions",
            FaultKind::LinkFailure => "link failures",
            FaultKind::Crash => "client crashes",
            FaultKind::StopReading => "stopped readers",
            FaultKind::LateJoin => "late joiners",
        }
    }
}

/// A fault on the network or a host, applied by the step loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultEvent {
    /// Raise the server–client link's latency to `max` until `until`.
    LatencySpike {
        /// The client host.
        client: String,
        /// The latency ceiling during the spike.
        max: Duration,
        /// When it ends.
        until: Duration,
    },
    /// Hold the server–client link until `until`.
    Hold {
        /// The client host.
        client: String,
        /// When the held segments are released.
        until: Duration,
    },
    /// Partition the server–client link until `until`.
    Partition {
        /// The client host.
        client: String,
        /// When it is repaired.
        until: Duration,
    },
    /// Partition one direction of the server–client link until `until`.
    PartitionOneWay {
        /// The client host.
        client: String,
        /// True: server to client is cut; false: client to server.
        to_client: bool,
        /// When it is repaired.
        until: Duration,
    },
    /// Fail the server–client link at random until `until`.
    LinkFailure {
        /// The client host.
        client: String,
        /// Chance per segment that the link breaks.
        rate_per_mille: u32,
        /// When it is repaired.
        until: Duration,
    },
    /// Crash a client host for good.
    Crash {
        /// The client host.
        client: String,
    },
}

/// A whole simulation run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The seed everything was drawn from (or a label's number).
    pub seed: u64,
    /// A name for named scenarios.
    pub name: Option<String>,
    /// The scripted phase: users act and faults happen.
    pub active: Duration,
    /// After it: the network heals and nothing is typed, for liveness.
    pub quiet: Duration,
    /// turmoil's tick.
    pub tick: Duration,
    /// The usual one-way latency ceiling.
    pub max_latency: Duration,
    /// Client hosts and what their users do.
    pub clients: Vec<ClientScript>,
    /// Faults by start time.
    pub faults: Vec<(Duration, FaultEvent)>,
    /// The fault kinds this run enabled (swarm testing), with how many
    /// faults of each were planned.
    pub fault_counts: BTreeMap<FaultKind, usize>,
}

impl Scenario {
    /// When the network heals.
    pub fn heal_at(&self) -> Duration {
        self.active
    }

    /// When the run ends.
    pub fn end(&self) -> Duration {
        self.active + self.quiet
    }

    /// A swarm scenario drawn from `seed`.
    pub fn from_seed(seed: u64) -> Scenario {
        let mut script_rng = stream(seed, "users");
        let mut fault_rng = stream(seed, "faults");
        let active = Duration::from_secs(60);
        let enabled: Vec<FaultKind> = FaultKind::ALL
            .into_iter()
            .filter(|_| fault_rng.random_bool(0.5))
            .collect();
        let client_count = script_rng.random_range(2..=6);
        let late_joiners = enabled.contains(&FaultKind::LateJoin);
        let mut clients: Vec<ClientScript> = (0..client_count)
            .map(|index| user_script(&mut script_rng, index, active, late_joiners))
            .collect();
        add_impostor(&mut script_rng, &mut clients, active);
        let mut fault_counts = BTreeMap::new();
        let mut faults = Vec::new();
        for kind in &enabled {
            let count = plan_faults(&mut fault_rng, *kind, &mut clients, active, &mut faults);
            fault_counts.insert(*kind, count);
        }
        faults.sort_by_key(|(at, _)| *at);
        Scenario {
            seed,
            name: None,
            active,
            // Long enough for the slowest bound: heartbeat timeout + grace +
            // reconnect backoff, after the last fault.
            quiet: Duration::from_secs(75),
            tick: Duration::from_millis(10),
            max_latency: Duration::from_millis(fault_rng.random_range(1..=40)),
            clients,
            faults,
            fault_counts,
        }
    }
}

fn host_name(index: usize) -> String {
    format!("client{index}")
}

/// A user who joins, chats at random times, and sometimes leaves and comes
/// back under the same nickname.
fn user_script(rng: &mut SeedRng, index: usize, active: Duration, late: bool) -> ClientScript {
    let nick = format!("user{index}");
    let mut start = if late && rng.random_bool(0.3) {
        Duration::from_millis(rng.random_range(15_000..40_000))
    } else {
        Duration::from_millis(rng.random_range(0..3_000))
    };
    let mut runs = Vec::new();
    let mut said = 0;
    while start < active && runs.len() < 3 {
        let mut actions = Vec::new();
        let mut at = start + Duration::from_millis(rng.random_range(500..3_000));
        let leaves = rng.random_bool(0.35);
        let stop = if leaves {
            at + Duration::from_millis(rng.random_range(5_000..40_000))
        } else {
            active
        };
        while at < stop.min(active) {
            actions.push((at, UserAction::Say(message_text(rng, index, said))));
            said += 1;
            at += Duration::from_millis(rng.random_range(200..3_000));
        }
        if leaves && stop < active {
            actions.push((stop, UserAction::Exit));
        }
        runs.push(RunScript {
            start,
            nick: nick.clone(),
            actions,
        });
        if !leaves {
            break;
        }
        start = stop + Duration::from_millis(rng.random_range(1_000..10_000));
    }
    ClientScript {
        host: host_name(index),
        runs,
        freezes: Vec::new(),
    }
}

/// A unique, recognisable message text; now and then a long one, so that
/// queues fill.
fn message_text(rng: &mut SeedRng, client: usize, number: usize) -> String {
    let filler = if rng.random_bool(0.1) {
        rng.random_range(500..2_000)
    } else {
        rng.random_range(0..40)
    };
    format!("c{client} m{number} {}", "~".repeat(filler))
}

/// Sometimes an extra host tries a nickname already in use.
fn add_impostor(rng: &mut SeedRng, clients: &mut Vec<ClientScript>, active: Duration) {
    if !rng.random_bool(0.3) {
        return;
    }
    let index = clients.len();
    let victim = rng.random_range(0..index);
    let start = Duration::from_millis(rng.random_range(3_000..30_000));
    let actions = vec![(
        start + Duration::from_millis(1_000),
        UserAction::Say(message_text(rng, index, 0)),
    )];
    let nick = format!("user{victim}");
    let _ = active;
    clients.push(ClientScript {
        host: host_name(index),
        runs: vec![RunScript {
            start,
            nick,
            actions,
        }],
        freezes: Vec::new(),
    });
}

/// Plans the faults of one kind; returns how many.
fn plan_faults(
    rng: &mut SeedRng,
    kind: FaultKind,
    clients: &mut [ClientScript],
    active: Duration,
    faults: &mut Vec<(Duration, FaultEvent)>,
) -> usize {
    if kind == FaultKind::LateJoin {
        return clients
            .iter()
            .filter(|client| client.runs[0].start >= Duration::from_secs(15))
            .count();
    }
    let count = rng.random_range(1..=3);
    let active_ms = u64::try_from(active.as_millis()).unwrap_or(u64::MAX);
    for _ in 0..count {
        let target = rng.random_range(0..clients.len());
        let client = clients[target].host.clone();
        let at = Duration::from_millis(rng.random_range(2_000..active_ms - 5_000));
        let length = Duration::from_millis(rng.random_range(1_000..50_000));
        let until = (at + length).min(active);
        let event = match kind {
            FaultKind::LatencySpike => FaultEvent::LatencySpike {
                client,
                max: Duration::from_millis(rng.random_range(200..3_000)),
                until,
            },
            FaultKind::Hold => FaultEvent::Hold { client, until },
            FaultKind::Partition => FaultEvent::Partition { client, until },
            FaultKind::PartitionOneWay => FaultEvent::PartitionOneWay {
                client,
                to_client: rng.random_bool(0.5),
                until,
            },
            FaultKind::LinkFailure => FaultEvent::LinkFailure {
                client,
                rate_per_mille: rng.random_range(5..100),
                until,
            },
            FaultKind::Crash => FaultEvent::Crash { client },
            FaultKind::StopReading => {
                clients[target].freezes.push((at, until));
                continue;
            }
            FaultKind::LateJoin => unreachable!("late joins are part of the user scripts"),
        };
        faults.push((at, event));
    }
    count
}
