//! Runs a [`Scenario`]: one server host and the client hosts, all running the
//! real chat-core code over turmoil's network, driven by our own step loop so
//! that faults land between steps. Returns everything observed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use chat_core::client::{self, ClientConfig};
use chat_core::protocol::{self, ServerFrame};
use chat_core::room::{Notice, RoomConfig, Stats};
use chat_core::server::{self, Observed, ServerConfig, ServerHandle};
use chat_core::session::{Line, Outcome, SessionConfig};
use chat_net::{Network, SimNetwork};
use rand::Rng;
use tokio::sync::mpsc;

use crate::net::FreezableNetwork;
use crate::scenario::{
    ClientScript, FaultEvent, FaultKind, RunScript, SERVER_HOST, SERVER_PORT, SIM_HISTORY_MAX,
    SIM_QUEUE_BYTES_MAX, SIM_TCP_CAPACITY, Scenario, UserAction, stream,
};
use crate::trace::{self, TraceBuffer};

/// What one client run showed and did.
#[derive(Clone, Debug, Default)]
pub struct RunRecord {
    /// The nickname.
    pub nick: String,
    /// When the user started it.
    pub started: Duration,
    /// Lines the user typed (handed to the client), with times.
    pub typed: Vec<(Duration, String)>,
    /// Lines the client showed, with times.
    pub shown: Vec<(Duration, Line)>,
    /// How and when it ended, if it did.
    pub outcome: Option<(Duration, Outcome)>,
}

/// What one client host did.
#[derive(Clone, Debug, Default)]
pub struct ClientRecord {
    /// The host's name.
    pub host: String,
    /// Its client runs, in order.
    pub runs: Vec<RunRecord>,
    /// When it crashed, if it did.
    pub crashed_at: Option<Duration>,
    /// Windows during which it did not read.
    pub freezes: Vec<(Duration, Duration)>,
}

/// What the server did.
#[derive(Clone, Debug, Default)]
pub struct ServerRecord {
    /// Every room event, decoded, with the time it was broadcast.
    pub events: Vec<(Duration, ServerFrame)>,
    /// Every console notice, with its time.
    pub notices: Vec<(Duration, Notice)>,
    /// The state machine's counters at the end.
    pub stats: Stats,
    /// Most bytes ever queued for one connection.
    pub queued_bytes_peak: usize,
}

/// Everything a run observed: what the oracle judges.
#[derive(Clone, Debug)]
pub struct Observations {
    /// The scenario that ran.
    pub scenario: Scenario,
    /// The server's side.
    pub server: ServerRecord,
    /// Each client host's side, in host order.
    pub clients: Vec<ClientRecord>,
    /// Simulated time that passed.
    pub simulated: Duration,
    /// Faults actually applied, per kind.
    pub faults_applied: BTreeMap<FaultKind, usize>,
    /// The run's trace.
    pub trace: String,
}

/// The server's configuration in simulations: production timeouts, small
/// queues and history.
pub fn server_config() -> ServerConfig {
    ServerConfig {
        room: RoomConfig {
            history_max: SIM_HISTORY_MAX,
            ..RoomConfig::default()
        },
        queue_bytes_max: SIM_QUEUE_BYTES_MAX,
        ..ServerConfig::default()
    }
}

type Shared<T> = Arc<Mutex<T>>;

fn lock<T>(shared: &Shared<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while recording fails the run anyway; keep what was recorded.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// Runs the scenario and returns what was observed. Panics (a broken
/// invariant in the code under test) propagate to the caller.
pub fn run(scenario: &Scenario) -> Observations {
    run_traced(scenario, &TraceBuffer::default())
}

/// [`run`], with the trace going into `buffer`, which the caller still has
/// if the run panics.
pub fn run_traced(scenario: &Scenario, buffer: &TraceBuffer) -> Observations {
    let _subscriber = tracing::subscriber::set_default(trace::subscriber(buffer.clone()));
    let mut sim = turmoil::Builder::new()
        .rng_seed(stream(scenario.seed, "network").random())
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .simulation_duration(scenario.end() + Duration::from_secs(1))
        .tick_duration(scenario.tick)
        .min_message_latency(Duration::from_millis(1).min(scenario.max_latency))
        .max_message_latency(scenario.max_latency)
        .tcp_capacity(SIM_TCP_CAPACITY)
        .build();
    let server_record: Shared<ServerRecord> = Shared::default();
    let server_handle: Shared<Option<ServerHandle>> = Shared::default();
    add_server(&mut sim, scenario.seed, &server_record, &server_handle);
    let clients: Vec<Shared<ClientRecord>> = scenario
        .clients
        .iter()
        .enumerate()
        .map(|(index, script)| add_client(&mut sim, scenario.seed, index, script))
        .collect();
    let faults_applied = step_loop(&mut sim, scenario, &clients);
    let simulated = sim.elapsed();
    assert!(
        simulated >= scenario.end(),
        "the run simulated {simulated:?}, less than {:?}",
        scenario.end()
    );
    let mut server = lock(&server_record).clone();
    if let Some(handle) = lock(&server_handle).as_ref() {
        server.stats = handle.stats();
        server.queued_bytes_peak = handle.queued_bytes_peak();
    }
    let clients = clients.iter().map(|record| lock(record).clone()).collect();
    drop(sim);
    Observations {
        scenario: scenario.clone(),
        server,
        clients,
        simulated,
        faults_applied,
        trace: buffer.text(),
    }
}

fn add_server(
    sim: &mut turmoil::Sim<'_>,
    seed: u64,
    record: &Shared<ServerRecord>,
    handle: &Shared<Option<ServerHandle>>,
) {
    let record = record.clone();
    let handle = handle.clone();
    let server_seed = stream(seed, "server").random();
    sim.host(SERVER_HOST, move || {
        let record = record.clone();
        let handle = handle.clone();
        async move {
            let listener = SimNetwork.bind(&format!("0.0.0.0:{SERVER_PORT}")).await?;
            let on_start = move |started: ServerHandle| {
                started.set_observer(move |observed| observe(&record, observed));
                *lock(&handle) = Some(started);
            };
            server::run::<SimNetwork>(
                listener,
                server_config(),
                server_seed,
                std::future::pending(),
                on_start,
            )
            .await?;
            Ok(())
        }
    });
}

fn observe(record: &Shared<ServerRecord>, observed: Observed<'_>) {
    let at = now();
    let mut record = lock(record);
    match observed {
        Observed::Event(frame) => {
            let line = frame.strip_suffix(b"\n").unwrap_or(frame);
            // Invariant: the server encodes its own events.
            let event =
                protocol::decode_line::<ServerFrame>(line).expect("the server's events decode");
            record.events.push((at, event));
        }
        Observed::Notice(notice) => record.notices.push((at, notice.clone())),
    }
}

fn add_client(
    sim: &mut turmoil::Sim<'_>,
    seed: u64,
    index: usize,
    script: &ClientScript,
) -> Shared<ClientRecord> {
    let record = Arc::new(Mutex::new(ClientRecord {
        host: script.host.clone(),
        freezes: script.freezes.clone(),
        ..ClientRecord::default()
    }));
    let network = FreezableNetwork::new(&script.freezes);
    let runs = script.runs.clone();
    let jitter_seed: u64 = stream(seed, &format!("jitter {index}")).random();
    let shared = record.clone();
    sim.host(script.host.as_str(), move || {
        let (record, network, runs) = (shared.clone(), network.clone(), runs.clone());
        async move {
            for (number, run) in runs.iter().enumerate() {
                tokio::time::sleep(run.start.saturating_sub(now())).await;
                let session_seed = jitter_seed.wrapping_add(number as u64);
                client_run(network.clone(), run, session_seed, &record).await;
            }
            Ok(())
        }
    });
    record
}

/// One run of the real client, with a scripted user.
async fn client_run(
    network: FreezableNetwork,
    script: &RunScript,
    seed: u64,
    record: &Shared<ClientRecord>,
) {
    let run_index = {
        let mut record = lock(record);
        record.runs.push(RunRecord {
            nick: script.nick.clone(),
            started: now(),
            ..RunRecord::default()
        });
        record.runs.len() - 1
    };
    let mut config = ClientConfig::new(format!("{SERVER_HOST}:{SERVER_PORT}"), script.nick.clone());
    config.session = SessionConfig {
        seed,
        ..config.session
    };
    let (input, lines) = mpsc::channel(1);
    let typist = {
        let record = record.clone();
        let actions = script.actions.clone();
        tokio::spawn(async move {
            for (at, action) in actions {
                tokio::time::sleep(at.saturating_sub(now())).await;
                let line = match action {
                    UserAction::Say(text) => text,
                    UserAction::Exit => ".exit".to_owned(),
                };
                if input.send(line.clone()).await.is_err() {
                    return; // The client has ended.
                }
                lock(&record).runs[run_index].typed.push((now(), line));
            }
            // The user stays until the simulation ends.
            std::future::pending::<()>().await;
        })
    };
    let shown = record.clone();
    let outcome = client::run(network, config, lines, move |line| {
        lock(&shown).runs[run_index]
            .shown
            .push((now(), line.clone()));
    })
    .await;
    typist.abort();
    lock(record).runs[run_index].outcome = Some((now(), outcome));
}

/// Steps the simulation to the scenario's end, applying faults on time and
/// healing everything at the end of the active phase.
fn step_loop(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    clients: &[Shared<ClientRecord>],
) -> BTreeMap<FaultKind, usize> {
    let mut applied = BTreeMap::new();
    for client in &scenario.clients {
        if !client.freezes.is_empty() {
            applied.insert(FaultKind::StopReading, client.freezes.len());
        }
    }
    if let Some(count) = scenario.fault_counts.get(&FaultKind::LateJoin) {
        applied.insert(FaultKind::LateJoin, *count);
    }
    let mut pending = scenario.faults.iter().peekable();
    let mut healed = false;
    while sim.elapsed() < scenario.end() {
        let elapsed = sim.elapsed();
        while let Some((_, event)) = pending.next_if(|(at, _)| *at <= elapsed) {
            apply(sim, event, scenario, clients, elapsed);
            *applied.entry(kind_of(event)).or_insert(0) += 1;
        }
        if !healed && elapsed >= scenario.heal_at() {
            heal(sim, scenario);
            healed = true;
        }
        repair_expired(sim, scenario, elapsed);
        if let Err(error) = sim.step() {
            panic!("a simulated host failed: {error}");
        }
    }
    applied
}

fn kind_of(event: &FaultEvent) -> FaultKind {
    match event {
        FaultEvent::LatencySpike { .. } => FaultKind::LatencySpike,
        FaultEvent::Hold { .. } => FaultKind::Hold,
        FaultEvent::Partition { .. } => FaultKind::Partition,
        FaultEvent::PartitionOneWay { .. } => FaultKind::PartitionOneWay,
        FaultEvent::LinkFailure { .. } => FaultKind::LinkFailure,
        FaultEvent::Crash { .. } => FaultKind::Crash,
    }
}

fn apply(
    sim: &mut turmoil::Sim<'_>,
    event: &FaultEvent,
    scenario: &Scenario,
    clients: &[Shared<ClientRecord>],
    now: Duration,
) {
    tracing::info!("fault at {:.3}s: {event:?}", now.as_secs_f64());
    match event {
        FaultEvent::LatencySpike { client, max, .. } => {
            sim.set_link_max_message_latency(SERVER_HOST, client.as_str(), *max);
        }
        FaultEvent::Hold { client, .. } => sim.hold(SERVER_HOST, client.as_str()),
        FaultEvent::Partition { client, .. } => sim.partition(SERVER_HOST, client.as_str()),
        FaultEvent::PartitionOneWay {
            client,
            to_client: true,
            ..
        } => sim.partition_oneway(SERVER_HOST, client.as_str()),
        FaultEvent::PartitionOneWay {
            client,
            to_client: false,
            ..
        } => sim.partition_oneway(client.as_str(), SERVER_HOST),
        FaultEvent::LinkFailure {
            client,
            rate_per_mille,
            ..
        } => {
            sim.set_link_fail_rate(
                SERVER_HOST,
                client.as_str(),
                f64::from(*rate_per_mille) / 1000.0,
            );
        }
        FaultEvent::Crash { client } => {
            if sim.is_host_running(client.as_str()) {
                sim.crash(client.as_str());
                let index = scenario
                    .clients
                    .iter()
                    .position(|script| script.host == *client);
                if let Some(index) = index {
                    lock(&clients[index]).crashed_at.get_or_insert(now);
                }
            }
        }
    }
}

/// Ends the faults whose time is up (the `until` of each).
fn repair_expired(sim: &mut turmoil::Sim<'_>, scenario: &Scenario, now: Duration) {
    let tick = scenario.tick;
    for (at, event) in &scenario.faults {
        let until = match event {
            FaultEvent::LatencySpike { until, .. }
            | FaultEvent::Hold { until, .. }
            | FaultEvent::Partition { until, .. }
            | FaultEvent::PartitionOneWay { until, .. }
            | FaultEvent::LinkFailure { until, .. } => *until,
            FaultEvent::Crash { .. } => continue,
        };
        // Exactly once: in the step where `until` is reached.
        if until < *at || !(until <= now && now < until + tick) {
            continue;
        }
        end_fault(sim, event, scenario);
    }
}

fn end_fault(sim: &mut turmoil::Sim<'_>, event: &FaultEvent, scenario: &Scenario) {
    tracing::info!(
        "fault ends at {:.3}s: {event:?}",
        sim.elapsed().as_secs_f64()
    );
    match event {
        FaultEvent::LatencySpike { client, .. } => {
            sim.set_link_max_message_latency(SERVER_HOST, client.as_str(), scenario.max_latency);
        }
        FaultEvent::Hold { client, .. } => sim.release(SERVER_HOST, client.as_str()),
        FaultEvent::Partition { client, .. } | FaultEvent::PartitionOneWay { client, .. } => {
            sim.repair(SERVER_HOST, client.as_str());
        }
        FaultEvent::LinkFailure { client, .. } => {
            sim.set_link_fail_rate(SERVER_HOST, client.as_str(), 0.0);
            sim.repair(SERVER_HOST, client.as_str());
        }
        FaultEvent::Crash { .. } => {}
    }
}

/// The quiet phase begins: every link healthy, nothing held, no failures.
fn heal(sim: &mut turmoil::Sim<'_>, scenario: &Scenario) {
    tracing::info!("healing the network at {:.3}s", sim.elapsed().as_secs_f64());
    sim.set_fail_rate(0.0);
    for client in &scenario.clients {
        let host = client.host.as_str();
        sim.release(SERVER_HOST, host);
        sim.repair(SERVER_HOST, host);
        sim.set_link_fail_rate(SERVER_HOST, host, 0.0);
        sim.set_link_max_message_latency(SERVER_HOST, host, scenario.max_latency);
    }
}
