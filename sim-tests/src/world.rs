//! Runs a [`Scenario`]: one server host and the client hosts, all running the
//! real chat-core code over turmoil's network (and the server over its
//! simulated disk), driven by our own step loop so that faults land between
//! steps. Returns everything observed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use chat_core::buggify::{self, Site};
use chat_core::client::{self, ClientConfig, Ui};
use chat_core::protocol::{self, ServerFrame};
use chat_core::report::ServerReport;
use chat_core::room::{MemberId, Notice, RoomConfig, RoomId, Stats};
use chat_core::server::{self, Keeping, Observed, ServerConfig, ServerHandle};
use chat_core::session::{Line, Outcome, SessionConfig};
use chat_core::store::RecoveryStats;
use chat_net::{FaultyStorage, Network, SimNetwork, SimStorage};
use rand::{Rng, RngCore};
use tokio::sync::mpsc;

use crate::adversary::{self, Conversation};
use crate::net::FreezableNetwork;
use crate::scenario::{
    ClientScript, FaultKind, RunScript, SERVER_DATA_DIR, SERVER_HOST, SERVER_PORT, SIM_HISTORY_MAX,
    SIM_MESSAGE_BURST, SIM_QUEUE_BYTES_MAX, SIM_TCP_CAPACITY, Scenario, UserAction, stream,
};
use crate::trace::{self, TraceBuffer};

mod steps;

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
    /// When the user left by a signal, if they did.
    pub signalled: Option<Duration>,
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

/// Whose stream an event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StreamOf {
    /// A room's.
    Room(RoomId),
    /// A member's private stream.
    Private(MemberId),
}

/// An event as the server released it.
#[derive(Clone, Debug)]
pub struct ServerEvent {
    /// When.
    pub at: Duration,
    /// Whose stream.
    pub stream: StreamOf,
    /// The event.
    pub frame: ServerFrame,
}

/// One room as a recovery rebuilt it: what a real server reports too.
pub use chat_core::report::RecoveredRoom;

/// One start of the server.
#[derive(Clone, Debug, Default)]
pub struct Lifetime {
    /// When it started.
    pub started: Duration,
    /// The rooms it recovered (empty for the first start).
    pub rooms: Vec<RecoveredRoom>,
    /// The private events it recovered, by owner.
    pub privates: Vec<(MemberId, Vec<ServerFrame>)>,
    /// The nicknames of the sessions it recovered.
    pub members: Vec<String>,
    /// What the log's recovery found.
    pub recovery: Option<RecoveryStats>,
    /// Whether it came up (recovered and about to listen); false when it
    /// failed or was crashed while starting.
    pub up: bool,
    /// Why it could not start, if it could not.
    pub failed: Option<String>,
    /// Why it stopped by itself (a storage failure), if it did.
    pub stopped: Option<String>,
    /// When it stopped by itself, if it did.
    pub stopped_at: Option<Duration>,
}

/// What the server did.
#[derive(Clone, Debug, Default)]
pub struct ServerRecord {
    /// Every event, decoded, as released, across all its lifetimes.
    pub events: Vec<ServerEvent>,
    /// Every console notice, with its time.
    pub notices: Vec<(Duration, Notice)>,
    /// Each start.
    pub lifetimes: Vec<Lifetime>,
    /// When the host was crashed.
    pub crashes: Vec<Duration>,
    /// The state machine's counters, summed over lifetimes.
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
    /// The server's room configuration in this run (the oracle's bounds).
    pub room_config: RoomConfig,
    /// The clients' session configuration in this run.
    pub session_config: SessionConfig,
    /// The server's per-connection queue limit in this run.
    pub queue_bytes_max: usize,
    /// Every adversary episode's conversation, by host then time.
    pub adversaries: Vec<Conversation>,
    /// How often each fault site of the drivers fired.
    pub buggify_fired: BTreeMap<Site, u64>,
}

/// The server's configuration in simulations: production timeouts, small
/// queues and history.
pub fn server_config() -> ServerConfig {
    ServerConfig {
        room: RoomConfig {
            history_max: SIM_HISTORY_MAX,
            message_burst: SIM_MESSAGE_BURST,
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

/// The simulated disk of the server, with the faults the step loop arms.
pub type ServerDisk = FaultyStorage<SimStorage>;

/// Runs the scenario and returns what was observed. Panics (a broken
/// invariant in the code under test) propagate to the caller.
pub fn run(scenario: &Scenario) -> Observations {
    run_traced(scenario, &TraceBuffer::default())
}

/// [`run`], with the trace going into `buffer`, which the caller still has
/// if the run panics.
pub fn run_traced(scenario: &Scenario, buffer: &TraceBuffer) -> Observations {
    let _subscriber = tracing::subscriber::set_default(trace::subscriber(buffer.clone()));
    let (sites, sites_seed) = &scenario.buggify;
    buggify::enable(sites, *sites_seed);
    let mut sim = build_sim(scenario);
    let server_record: Shared<ServerRecord> = Shared::default();
    let handles: Shared<Vec<ServerHandle>> = Shared::default();
    let disk = FaultyStorage::new(SimStorage::new());
    add_server(&mut sim, scenario, &server_record, &handles, &disk);
    let clients: Vec<Shared<ClientRecord>> = scenario
        .clients
        .iter()
        .enumerate()
        .map(|(index, script)| add_client(&mut sim, scenario.seed, index, script))
        .collect();
    let adversaries: Vec<Shared<Vec<Conversation>>> = scenario
        .adversaries
        .iter()
        .map(|script| {
            let record = Shared::default();
            let (script, shared) = (script.clone(), Arc::clone(&record));
            sim.client(script.host.clone(), async move {
                adversary::run(script, shared).await;
                Ok(())
            });
            record
        })
        .collect();
    let faults_applied = steps::step_loop(&mut sim, scenario, &clients, &server_record, &disk);
    let buggify_fired = buggify::disable();
    let simulated = sim.elapsed();
    assert!(
        simulated >= scenario.end(),
        "the run simulated {simulated:?}, less than {:?}",
        scenario.end()
    );
    let mut server = lock(&server_record).clone();
    for handle in lock(&handles).iter() {
        add_stats(&mut server.stats, handle.stats());
        server.queued_bytes_peak = server.queued_bytes_peak.max(handle.queued_bytes_peak());
    }
    let clients = clients.iter().map(|record| lock(record).clone()).collect();
    let adversaries = adversaries
        .iter()
        .flat_map(|record| lock(record).clone())
        .collect();
    drop(sim);
    let config = server_config();
    Observations {
        scenario: scenario.clone(),
        server,
        clients,
        simulated,
        faults_applied,
        trace: buffer.text(),
        room_config: config.room,
        session_config: ClientConfig::new("", "").session,
        queue_bytes_max: config.queue_bytes_max,
        adversaries,
        buggify_fired,
    }
}

fn build_sim<'a>(scenario: &Scenario) -> turmoil::Sim<'a> {
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(stream(scenario.seed, "network").random())
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .simulation_duration(scenario.end() + Duration::from_secs(1))
        .tick_duration(scenario.tick)
        .min_message_latency(Duration::from_millis(1).min(scenario.max_latency))
        .max_message_latency(scenario.max_latency)
        .tcp_capacity(SIM_TCP_CAPACITY);
    // A disk that tears writes: at a crash, each write not yet synced keeps
    // a random whole-block prefix (and now and then the disk flushes some
    // early). Operations take simulated time, up to longer than a tick, so
    // that a crash between two steps can land between a write and its sync.
    builder.fs().block_size(64).sync_probability(0.02);
    builder
        .fs()
        .io_latency()
        .min_latency(Duration::from_micros(100))
        .max_latency(Duration::from_millis(40))
        .distribution(0.5);
    builder.build()
}

fn add_stats(total: &mut Stats, more: Stats) {
    let Stats {
        resumes,
        replayed_events,
        dedup_hits,
        gap_notices,
        slow_readers_dropped,
        dead_connections_dropped,
        evictions,
        sessions_expired,
        handshake_timeouts,
        throttles,
        floods_closed,
        connections_refused,
        frames_ignored,
        resumes_refused,
        messages,
        private_messages,
        renames,
        rooms_freed,
        history_sent,
    } = more;
    total.resumes += resumes;
    total.replayed_events += replayed_events;
    total.dedup_hits += dedup_hits;
    total.gap_notices += gap_notices;
    total.slow_readers_dropped += slow_readers_dropped;
    total.dead_connections_dropped += dead_connections_dropped;
    total.evictions += evictions;
    total.sessions_expired += sessions_expired;
    total.handshake_timeouts += handshake_timeouts;
    total.throttles += throttles;
    total.floods_closed += floods_closed;
    total.connections_refused += connections_refused;
    total.frames_ignored += frames_ignored;
    total.resumes_refused += resumes_refused;
    total.messages += messages;
    total.private_messages += private_messages;
    total.renames += renames;
    total.rooms_freed += rooms_freed;
    total.history_sent += history_sent;
}

/// 32 bytes for the server's token generator in one lifetime.
fn token_seed(seed: u64, lifetime: usize) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    stream(seed, &format!("tokens {lifetime}")).fill_bytes(&mut bytes);
    bytes
}

fn add_server(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    record: &Shared<ServerRecord>,
    handles: &Shared<Vec<ServerHandle>>,
    disk: &ServerDisk,
) {
    let (record, handles, disk) = (record.clone(), handles.clone(), disk.clone());
    let (seed, durable) = (scenario.seed, scenario.durable);
    sim.host(SERVER_HOST, move || {
        let (record, handles, disk) = (record.clone(), handles.clone(), disk.clone());
        async move {
            let lifetime = {
                let mut record = lock(&record);
                record.lifetimes.push(Lifetime {
                    started: now(),
                    ..Lifetime::default()
                });
                record.lifetimes.len() - 1
            };
            let keeping = if durable {
                Keeping::Durable {
                    storage: disk,
                    dir: SERVER_DATA_DIR.into(),
                }
            } else {
                Keeping::InMemory
            };
            let config = server_config();
            let incarnation = || format!("{:032x}", stream(seed, "incarnation").random::<u128>());
            let start = match server::open(
                keeping,
                &config.room,
                token_seed(seed, lifetime),
                incarnation,
            )
            .await
            {
                Ok(start) => start,
                Err(error) => {
                    tracing::warn!("The server could not start: {error}");
                    lock(&record).lifetimes[lifetime].failed = Some(error.to_string());
                    return Ok(());
                }
            };
            record_recovery(&record, lifetime, &start);
            let listener = SimNetwork.bind(&format!("0.0.0.0:{SERVER_PORT}")).await?;
            let on_start = {
                let record = record.clone();
                move |started: ServerHandle| {
                    started.set_observer(move |observed| observe(&record, observed));
                    lock(&handles).push(started);
                }
            };
            let ran = server::run::<SimNetwork, ServerDisk>(
                listener,
                config,
                start,
                std::future::pending(),
                on_start,
            )
            .await;
            if let Err(error) = ran {
                let mut record = lock(&record);
                record.lifetimes[lifetime].stopped = Some(error.to_string());
                record.lifetimes[lifetime].stopped_at = Some(now());
            }
            Ok(())
        }
    });
}

fn record_recovery(
    record: &Shared<ServerRecord>,
    lifetime: usize,
    start: &server::Start<ServerDisk>,
) {
    let ServerReport::Recovered {
        rooms,
        privates,
        members,
        recovery,
    } = ServerReport::recovered(&start.rooms, start.recovered)
    else {
        unreachable!("ServerReport::recovered makes a Recovered report");
    };
    let mut record = lock(record);
    let lifetime = &mut record.lifetimes[lifetime];
    lifetime.rooms = rooms;
    lifetime.privates = privates;
    lifetime.members = members;
    lifetime.up = true;
    lifetime.recovery = recovery;
}

fn decode(frame: &bytes::Bytes) -> ServerFrame {
    let line = frame.strip_suffix(b"\n").unwrap_or(frame);
    // Invariant: the server encodes its own events.
    protocol::decode_line::<ServerFrame>(line).expect("the server's events decode")
}

fn observe(record: &Shared<ServerRecord>, observed: Observed<'_>) {
    let at = now();
    let mut record = lock(record);
    match observed {
        Observed::Event { room, frame } => record.events.push(ServerEvent {
            at,
            stream: StreamOf::Room(room),
            frame: decode(frame),
        }),
        Observed::Private { owner, frame } => record.events.push(ServerEvent {
            at,
            stream: StreamOf::Private(owner),
            frame: decode(frame),
        }),
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
    let (signal, signalled) = tokio::sync::oneshot::channel::<()>();
    let typist = {
        let record = record.clone();
        let actions = script.actions.clone();
        let mut signal = Some(signal);
        tokio::spawn(async move {
            for (at, action) in actions {
                tokio::time::sleep(at.saturating_sub(now())).await;
                let line = match action {
                    UserAction::Type(text) => text,
                    UserAction::Exit => ".exit".to_owned(),
                    UserAction::Signal => {
                        if let Some(signal) = signal.take() {
                            lock(&record).runs[run_index].signalled = Some(now());
                            let _ = signal.send(());
                        }
                        continue;
                    }
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
    let leave = async move {
        if signalled.await.is_err() {
            std::future::pending::<()>().await; // The user stays.
        }
    };
    let shown = record.clone();
    let outcome = client::run(network, config, lines, leave, move |ui| {
        if let Ui::Show(line) = ui {
            lock(&shown).runs[run_index]
                .shown
                .push((now(), line.clone()));
        }
    })
    .await;
    typist.abort();
    lock(record).runs[run_index].outcome = Some((now(), outcome));
}
