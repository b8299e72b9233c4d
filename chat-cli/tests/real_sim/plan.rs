//! What a seed's run is on real processes: the simulation's own scenario
//! for that seed, with every time scaled down (so a seed takes seconds, not
//! minutes), the timeouts of the server and the clients scaled with it, and
//! what real processes cannot undergo left out, each with its reason.
//!
//! Scaling keeps the scenario's shape: the same users type the same lines
//! in the same order, faults strike the same links in the same order, and
//! each fault lasts the same number of heartbeat timeouts as in the
//! simulation. What does not scale is fixed in the client (a reconnect
//! pause of at most 5 s, a 5 s handshake) and the machine's own speed.

use std::time::Duration;

use chat_core::client::ClientConfig;
use chat_core::room::RoomConfig;
use chat_core::session::SessionConfig;
use sim_tests::oracle::Property;
use sim_tests::scenario::{
    ClientScript, FaultEvent, FaultKind, SIM_HISTORY_MAX, SIM_MESSAGE_BURST, SIM_QUEUE_BYTES_MAX,
    Scenario, UserAction,
};

/// Simulated seconds per real second.
pub const TIME_SCALE: u32 = 10;

/// How often each side sends a heartbeat (5 s in production).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);

/// How long each side waits to hear from the other (15 s in production).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(1_500);

/// How long a detached session waits for its client (30 s in production).
pub const SESSION_GRACE: Duration = Duration::from_secs(3);

/// How long the server waits for a hello (10 s in production).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// The fault kinds a real run leaves out, and why.
pub const FAULTS_LEFT_OUT: [(FaultKind, &str); 2] = [
    (
        FaultKind::DiskError,
        "a real process's disk cannot be made to fail one write or sync on command",
    ),
    (
        FaultKind::DiskFull,
        "filling a real disk would fill it for every process on the machine",
    ),
];

/// The properties a real run does not judge, and why. Every other property
/// of the oracle is judged on every seed.
pub const PROPERTIES_SKIPPED: [(Property, &str); 1] = [(
    Property::AdversaryContract,
    "adversaries are scripted turmoil hosts that see every byte of simulated time; real runs drive only users",
)];

/// The seed's scenario for real processes.
pub fn scenario(seed: u64) -> Scenario {
    let mut scenario = Scenario::from_seed(seed);
    scenario.faults.retain(|(_, event)| !left_out(event));
    for (kind, _) in FAULTS_LEFT_OUT {
        scenario.fault_counts.remove(&kind);
    }
    scenario.adversaries.clear();
    // The binary has no fault sites (they exist only in simulation builds).
    scenario.buggify = (Vec::new(), 0);
    scale(&mut scenario);
    scenario
}

fn left_out(event: &FaultEvent) -> bool {
    matches!(
        event,
        FaultEvent::DiskError { .. } | FaultEvent::DiskFull { .. }
    )
}

fn scaled(duration: Duration) -> Duration {
    duration / TIME_SCALE
}

fn scale(scenario: &mut Scenario) {
    scenario.active = scaled(scenario.active);
    scenario.quiet = scaled(scenario.quiet);
    scenario.tick = scaled(scenario.tick);
    scenario.max_latency = scaled(scenario.max_latency);
    for client in &mut scenario.clients {
        scale_client(client);
    }
    for (at, event) in &mut scenario.faults {
        *at = scaled(*at);
        scale_fault(event);
    }
}

fn scale_client(client: &mut ClientScript) {
    for run in &mut client.runs {
        run.start = scaled(run.start);
        for (at, _) in &mut run.actions {
            *at = scaled(*at);
        }
    }
    for (start, end) in &mut client.freezes {
        *start = scaled(*start);
        *end = scaled(*end);
    }
}

fn scale_fault(event: &mut FaultEvent) {
    match event {
        FaultEvent::LatencySpike { max, until, .. } => {
            *max = scaled(*max);
            *until = scaled(*until);
        }
        FaultEvent::Hold { until, .. }
        | FaultEvent::Partition { until, .. }
        | FaultEvent::PartitionOneWay { until, .. }
        | FaultEvent::LinkFailure { until, .. }
        | FaultEvent::DiskFull { until } => *until = scaled(*until),
        FaultEvent::ServerCrash { down } => *down = scaled(*down),
        FaultEvent::Crash { .. } | FaultEvent::DiskError { .. } => {}
    }
}

/// The server's room configuration in real runs, as its options give it.
pub fn room_config() -> RoomConfig {
    RoomConfig {
        heartbeat_interval: HEARTBEAT_INTERVAL,
        heartbeat_timeout: HEARTBEAT_TIMEOUT,
        handshake_timeout: HANDSHAKE_TIMEOUT,
        session_grace: SESSION_GRACE,
        history_max: SIM_HISTORY_MAX,
        message_burst: SIM_MESSAGE_BURST,
        ..RoomConfig::default()
    }
}

/// The per-connection queue limit in real runs.
pub const QUEUE_BYTES_MAX: usize = SIM_QUEUE_BYTES_MAX;

/// The server's command-line options for [`room_config`].
pub fn server_options() -> Vec<String> {
    let config = room_config();
    let mut options: Vec<String> = [
        ("--heartbeat-interval", millis(config.heartbeat_interval)),
        ("--heartbeat-timeout", millis(config.heartbeat_timeout)),
        ("--handshake-timeout", millis(config.handshake_timeout)),
        ("--session-grace", millis(config.session_grace)),
        ("--history-max", config.history_max.to_string()),
        ("--message-burst", config.message_burst.to_string()),
        ("--queue-bytes-max", QUEUE_BYTES_MAX.to_string()),
        ("--summary-interval", "0s".to_owned()),
    ]
    .into_iter()
    .flat_map(|(name, value)| [name.to_owned(), value])
    .collect();
    options.push("--shutdown-timeout".to_owned());
    options.push("1s".to_owned());
    options
}

/// The clients' session configuration in real runs.
pub fn session_config() -> SessionConfig {
    SessionConfig {
        heartbeat_interval: HEARTBEAT_INTERVAL,
        heartbeat_timeout: HEARTBEAT_TIMEOUT,
        ..ClientConfig::new("", "").session
    }
}

/// A client's command-line options for [`session_config`].
pub fn client_options() -> Vec<String> {
    let config = session_config();
    vec![
        "--heartbeat-interval".to_owned(),
        millis(config.heartbeat_interval),
        "--heartbeat-timeout".to_owned(),
        millis(config.heartbeat_timeout),
    ]
}

fn millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

/// The line a scripted action types, if it types one (a leave by a signal
/// is a SIGTERM).
pub fn typed_line(action: &UserAction) -> Option<&str> {
    match action {
        UserAction::Type(line) => Some(line),
        UserAction::Exit => Some(".exit"),
        UserAction::Signal => None,
    }
}
