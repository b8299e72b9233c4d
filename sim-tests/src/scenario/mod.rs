//! What a simulation run does: its users' scripts and its fault plan.
//!
//! A swarm scenario is derived from one seed, through separate random streams
//! per purpose (user script, faults, protocol jitter), so that changing how
//! one is drawn does not change the others. Named scenarios are written by
//! hand with fixed times, for the transcript snapshots.
//!
//! Submodules: `users` (what the scripted users type), `faults` (the fault
//! plan).

mod faults;
mod users;

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;

use chat_core::buggify::Site;

use crate::adversary::{self, AdversaryScript};
pub use crate::seeds::stream;

/// The server's host name in every simulation.
pub const SERVER_HOST: &str = "server";

/// The port the server listens on.
pub const SERVER_PORT: u16 = 9999;

/// Where the server keeps its data on its simulated disk.
pub const SERVER_DATA_DIR: &str = "/var/lib/chat";

/// Per-connection queue limit in simulations: small, so that a client that
/// stops reading fills it within a run, yet larger than what one burst of
/// [`SIM_MESSAGE_BURST`] long messages broadcasts in one step (the server
/// handles a connection's pipelined frames before any writer runs, so a
/// limit below one burst would drop every reader of the room), and than the
/// history a join is shown (20 messages of up to a kilobyte here: a join's
/// history may go beyond the limit, but not while a limit's worth of
/// earlier ones is unwritten, so two pipelined joins need the room).
pub const SIM_QUEUE_BYTES_MAX: usize = 32 * 1024;

/// Messages a connection may send at once above the rate in simulations:
/// few, so that a flood reaches the rate limit (see [`SIM_QUEUE_BYTES_MAX`]).
pub const SIM_MESSAGE_BURST: u32 = 4;

/// Per-stream segment capacity of turmoil's TCP in simulations (each write
/// is one segment). turmoil uses the same number as the listener's backlog
/// and panics when a burst of held connection attempts overflows it, so it
/// stays at turmoil's default.
pub const SIM_TCP_CAPACITY: usize = 64;

/// Room history in simulations: small, so that resumes after long outages
/// meet gap notices.
pub const SIM_HISTORY_MAX: usize = 32;

/// The second room some users join.
pub const SECOND_ROOM: &str = "dev";

/// Something a scripted user does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserAction {
    /// Types a line: a message, or a command (`/join dev`, `/msg ...`).
    Type(String),
    /// Types `.exit`.
    Exit,
    /// Leaves by a signal: Ctrl-C, SIGTERM, or a closed terminal (SIGHUP).
    /// The client waits a little for the acks of what it sent, not for all.
    Signal,
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
    /// The server host crashes (losing writes not yet synced, tearing those
    /// in flight) and is started again a little later.
    ServerCrash,
    /// A write or sync of the server's log fails.
    DiskError,
    /// The server's disk is full for a while.
    DiskFull,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 11] = [
        FaultKind::LatencySpike,
        FaultKind::Hold,
        FaultKind::Partition,
        FaultKind::PartitionOneWay,
        FaultKind::LinkFailure,
        FaultKind::Crash,
        FaultKind::StopReading,
        FaultKind::LateJoin,
        FaultKind::ServerCrash,
        FaultKind::DiskError,
        FaultKind::DiskFull,
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
            FaultKind::ServerCrash => "server crashes",
            FaultKind::DiskError => "disk errors",
            FaultKind::DiskFull => "full disks",
        }
    }
}

/// Which operation of the server's log a disk error fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskOperation {
    /// A write.
    Append,
    /// A data sync.
    Sync,
    /// A directory sync.
    SyncDirectory,
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
    /// Crash the server host; start it again after `down`.
    ServerCrash {
        /// How long it stays down.
        down: Duration,
    },
    /// Fail the next such operation of the server's log.
    DiskError {
        /// Which operation.
        operation: DiskOperation,
    },
    /// Every write of the server's log fails until `until`.
    DiskFull {
        /// When room is made.
        until: Duration,
    },
}

impl FaultEvent {
    /// The kind of fault this is, as the summary counts them.
    pub fn kind(&self) -> FaultKind {
        match self {
            FaultEvent::LatencySpike { .. } => FaultKind::LatencySpike,
            FaultEvent::Hold { .. } => FaultKind::Hold,
            FaultEvent::Partition { .. } => FaultKind::Partition,
            FaultEvent::PartitionOneWay { .. } => FaultKind::PartitionOneWay,
            FaultEvent::LinkFailure { .. } => FaultKind::LinkFailure,
            FaultEvent::Crash { .. } => FaultKind::Crash,
            FaultEvent::ServerCrash { .. } => FaultKind::ServerCrash,
            FaultEvent::DiskError { .. } => FaultKind::DiskError,
            FaultEvent::DiskFull { .. } => FaultKind::DiskFull,
        }
    }
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
    /// Whether the server keeps its data (on the simulated disk).
    pub durable: bool,
    /// Raw-protocol clients and their episodes (none in most named
    /// scenarios).
    pub adversaries: Vec<AdversaryScript>,
    /// The fault sites of the drivers this run enables (none in named
    /// scenarios), and the seed of their choices.
    pub buggify: (Vec<Site>, u64),
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
            .map(|index| {
                users::user_script(&mut script_rng, index, client_count, active, late_joiners)
            })
            .collect();
        users::add_impostor(&mut script_rng, &mut clients);
        users::leave_by_signal(&mut stream(seed, "leave by signal"), &mut clients);
        let mut fault_counts = BTreeMap::new();
        let mut faults = Vec::new();
        for kind in &enabled {
            let count = faults::plan(&mut fault_rng, *kind, &mut clients, active, &mut faults);
            fault_counts.insert(*kind, count);
        }
        faults.sort_by_key(|(at, _)| *at);
        let adversaries = draw_adversaries(seed, &clients, active);
        let mut sites_rng = stream(seed, "buggify");
        let sites = Site::ALL
            .into_iter()
            .filter(|_| sites_rng.random_bool(0.5))
            .collect();
        Scenario {
            seed,
            name: None,
            active,
            // Long enough for the slowest bound: heartbeat timeout + grace +
            // reconnect backoff, after the last fault (or server restart).
            quiet: Duration::from_secs(75),
            tick: Duration::from_millis(20),
            max_latency: Duration::from_millis(fault_rng.random_range(1..=40)),
            clients,
            faults,
            fault_counts,
            durable: true,
            adversaries,
            buggify: (sites, sites_rng.random()),
        }
    }
}

/// Half the runs have one or two adversaries, drawn from a stream of their
/// own so that the users' scripts and the fault plan stay as they were.
fn draw_adversaries(seed: u64, clients: &[ClientScript], active: Duration) -> Vec<AdversaryScript> {
    let mut rng = stream(seed, "adversaries");
    if !rng.random_bool(0.5) {
        return Vec::new();
    }
    let victims: Vec<String> = clients
        .iter()
        .map(|client| client.runs[0].nick.clone())
        .collect();
    let count = rng.random_range(1..=2);
    (0..count)
        .map(|index| adversary::script(&mut rng, index, &victims, active))
        .collect()
}

fn host_name(index: usize) -> String {
    format!("client{index}")
}
