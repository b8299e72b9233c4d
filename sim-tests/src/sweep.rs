//! Runs seeds, judges each with the oracle, and sums up what a sweep
//! exercised.

use std::collections::BTreeMap;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use chat_core::session::Line;

use chat_core::buggify::Site;

use crate::adversary::FRAME_KINDS;
use crate::oracle::{self, Verdict, Violation};
use crate::scenario::{FaultKind, Scenario};
use crate::trace::TraceBuffer;
use crate::transcript;
use crate::world::{self, Observations};

/// The mechanisms a sweep must exercise, in the order the summary lists them.
pub const MECHANISMS: [&str; 33] = [
    "disconnects noticed by the server",
    "reconnects by clients",
    "resumes",
    "events replayed",
    "dedup hits",
    "gap notices",
    "evictions",
    "slow readers dropped",
    "sessions expired",
    "rejoins after a lost session",
    "leaves by a signal",
    "server crashes",
    "recoveries",
    "torn tails cut",
    "disk errors stopping the server",
    "private messages",
    "nickname changes",
    "history shown on join",
    "adversary frames after a refusal",
    "adversary frames after quit",
    "adversary frames after leave",
    "adversary frames of every kind pipelined",
    "adversary second hellos",
    "adversary garbage",
    "adversary frames split byte by byte",
    "adversary guessed resumes",
    "adversary expired resumes",
    "adversary message ids misused",
    "adversary floods",
    "adversary silent connections",
    "adversary half-closes",
    "adversary resets mid-frame",
    "adversary readers that never read",
];

/// The result of one seed.
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// The oracle's verdict (empty when the run panicked).
    pub verdict: Verdict,
    /// Why the run panicked, if it did.
    pub panic: Option<String>,
    /// The run's observations, unless it panicked.
    pub observations: Option<Observations>,
    /// The trace, even when the run panicked.
    pub trace: String,
}

impl SeedResult {
    /// True when every property held and nothing panicked.
    pub fn passed(&self) -> bool {
        self.panic.is_none() && self.verdict.violations.is_empty()
    }

    /// The first broken property, if any.
    pub fn first_violation(&self) -> Option<&Violation> {
        self.verdict.violations.first()
    }

    /// The last `lines` lines of the trace.
    pub fn trace_tail(&self, lines: usize) -> String {
        let all: Vec<&str> = self.trace.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Runs a scenario, catching a panic of the code under test.
pub fn run_scenario(scenario: &Scenario) -> SeedResult {
    let buffer = TraceBuffer::default();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| world::run_traced(scenario, &buffer)));
    match outcome {
        Ok(observations) => SeedResult {
            seed: scenario.seed,
            verdict: oracle::check(&observations),
            panic: None,
            trace: observations.trace.clone(),
            observations: Some(observations),
        },
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| {
                    payload
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_owned())
                })
                .unwrap_or_else(|| "a panic without a message".to_owned());
            SeedResult {
                seed: scenario.seed,
                verdict: Verdict::default(),
                panic: Some(message),
                observations: None,
                trace: buffer.text(),
            }
        }
    }
}

/// Runs the swarm scenario of one seed.
pub fn run_seed(seed: u64) -> SeedResult {
    run_scenario(&Scenario::from_seed(seed))
}

/// What a sweep did, summed over its seeds.
#[derive(Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Simulated time, all seeds together.
    pub simulated: Duration,
    /// Faults applied, per kind.
    pub faults: BTreeMap<FaultKind, usize>,
    /// Mechanism counts, by the names in [`MECHANISMS`].
    pub mechanisms: BTreeMap<&'static str, u64>,
    /// How often each fault site of the drivers fired.
    pub sites_fired: BTreeMap<Site, u64>,
    /// Frames the adversaries sent, by kind (see [`FRAME_KINDS`]).
    pub frames_sent: BTreeMap<String, u64>,
    /// Individual checks that ran.
    pub checks: usize,
    /// Seeds that failed.
    pub failures: Vec<u64>,
}

impl Summary {
    /// Adds one seed's result.
    pub fn add(&mut self, result: &SeedResult) {
        self.seeds += 1;
        self.checks += result.verdict.check_count();
        if !result.passed() {
            self.failures.push(result.seed);
        }
        let Some(observations) = &result.observations else {
            return;
        };
        self.simulated += observations.simulated;
        for (kind, count) in &observations.faults_applied {
            *self.faults.entry(*kind).or_insert(0) += count;
        }
        for (name, count) in mechanism_counts(observations) {
            *self.mechanisms.entry(name).or_insert(0) += count;
        }
        for (site, count) in &observations.buggify_fired {
            *self.sites_fired.entry(*site).or_insert(0) += count;
        }
        for conversation in &observations.adversaries {
            for (_, kind) in &conversation.sent {
                *self.frames_sent.entry(kind.clone()).or_insert(0) += 1;
            }
        }
    }

    /// Adds what another part of the sweep summed (the sweep runs seeds on
    /// several threads).
    pub fn merge(&mut self, other: Summary) {
        self.seeds += other.seeds;
        self.simulated += other.simulated;
        self.checks += other.checks;
        for (kind, count) in other.faults {
            *self.faults.entry(kind).or_insert(0) += count;
        }
        for (name, count) in other.mechanisms {
            *self.mechanisms.entry(name).or_insert(0) += count;
        }
        for (site, count) in other.sites_fired {
            *self.sites_fired.entry(site).or_insert(0) += count;
        }
        for (kind, count) in other.frames_sent {
            *self.frames_sent.entry(kind).or_insert(0) += count;
        }
        self.failures.extend(other.failures);
        self.failures.sort_unstable();
    }

    /// Mechanisms never exercised, and kinds of frame no adversary sent.
    pub fn unexercised(&self) -> Vec<String> {
        let mechanisms = MECHANISMS
            .into_iter()
            .filter(|name| self.mechanisms.get(name).copied().unwrap_or(0) == 0)
            .map(str::to_owned);
        let frames = FRAME_KINDS
            .into_iter()
            .filter(|kind| self.frames_sent.get(*kind).copied().unwrap_or(0) == 0)
            .map(|kind| format!("adversary frames: {kind}"));
        let sites = Site::ALL
            .into_iter()
            .filter(|site| self.sites_fired.get(site).copied().unwrap_or(0) == 0)
            .map(|site| format!("fault site: {}", site.name()));
        mechanisms.chain(frames).chain(sites).collect()
    }
}

/// How often each mechanism worked in one run.
pub fn mechanism_counts(observations: &Observations) -> Vec<(&'static str, u64)> {
    let stats = observations.server.stats;
    let lines = || {
        observations
            .clients
            .iter()
            .flat_map(|client| &client.runs)
            .flat_map(|run| &run.shown)
    };
    let reconnects = lines()
        .filter(|(_, line)| matches!(line, Line::Reconnecting(_)))
        .count() as u64;
    let rejoins = lines()
        .filter(|(_, line)| matches!(line, Line::Rejoining))
        .count() as u64;
    let lifetimes = &observations.server.lifetimes;
    let recoveries = lifetimes
        .iter()
        .skip(1)
        .filter(|lifetime| lifetime.up)
        .count() as u64;
    let torn = lifetimes
        .iter()
        .filter(|lifetime| {
            lifetime
                .recovery
                .is_some_and(|recovery| recovery.tail_bytes_dropped > 0)
        })
        .count() as u64;
    let disk_stops = lifetimes
        .iter()
        .filter(|lifetime| lifetime.stopped.is_some())
        .count() as u64;
    let signal_leaves = observations
        .clients
        .iter()
        .flat_map(|client| &client.runs)
        .filter(|run| run.signalled.is_some())
        .count() as u64;
    let mut counts = vec![
        (
            "disconnects noticed by the server",
            stats.dead_connections_dropped,
        ),
        ("reconnects by clients", reconnects),
        ("resumes", stats.resumes),
        ("events replayed", stats.replayed_events),
        ("dedup hits", stats.dedup_hits),
        ("gap notices", stats.gap_notices),
        ("evictions", stats.evictions),
        ("slow readers dropped", stats.slow_readers_dropped),
        ("sessions expired", stats.sessions_expired),
        ("rejoins after a lost session", rejoins),
        ("leaves by a signal", signal_leaves),
        ("server crashes", observations.server.crashes.len() as u64),
        ("recoveries", recoveries),
        ("torn tails cut", torn),
        ("disk errors stopping the server", disk_stops),
        ("private messages", stats.private_messages),
        ("nickname changes", stats.renames),
        ("history shown on join", stats.history_sent),
    ];
    for conversation in &observations.adversaries {
        if let Some(episode) = &conversation.episode
            && conversation.connected.is_some()
        {
            counts.push((episode.name(), 1));
        }
    }
    counts
}

/// The report for a failed seed: the property, the seed, the one command
/// that replays it and the one that draws it, and the end of its trace.
pub fn failure_report(result: &SeedResult) -> String {
    let mut report = String::new();
    match (&result.panic, result.first_violation()) {
        (Some(message), _) => {
            report.push_str(&format!("seed {} panicked: {message}\n", result.seed))
        }
        (None, Some(_)) => {
            for violation in &result.verdict.violations {
                report.push_str(&format!("{violation}\n"));
            }
        }
        (None, None) => return report,
    }
    report.push_str(&format!("replay it with: just sim-seed {}\n", result.seed));
    report.push_str(&format!(
        "draw it with:   just sim-svg {seed} target/sim/seed-{seed}.svg\n",
        seed = result.seed
    ));
    report.push_str("--- last lines of its trace\n");
    report.push_str(&result.trace_tail(40));
    report.push('\n');
    if let Some(observations) = &result.observations {
        report.push_str("--- what the users saw\n");
        report.push_str(&transcript::screens(observations));
    }
    report
}

/// Stack of each sweep thread: a simulated run nests deeply in debug builds.
const SWEEP_THREAD_STACK_BYTES: usize = 16 * 1024 * 1024;

/// Runs `work` on every seed of `seeds` on `jobs` threads (seeds are
/// independent, and each run is deterministic whatever thread it is on) and
/// hands each result to `collect`, on the calling thread, as it arrives.
/// Seeds are started in increasing order; once `collect` returns false no
/// new seed starts, but those already running finish and are collected, so
/// every seed below the one that stopped the sweep has been collected.
pub fn run_parallel<T: Send>(
    seeds: Range<u64>,
    jobs: usize,
    work: impl Fn(u64) -> T + Sync,
    mut collect: impl FnMut(u64, T) -> bool,
) {
    let next = AtomicU64::new(seeds.start);
    let stopped = AtomicBool::new(false);
    let (sender, receiver) = mpsc::channel();
    thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let sender = sender.clone();
            let (next, stopped, work) = (&next, &stopped, &work);
            let worker = move || {
                while !stopped.load(Ordering::SeqCst) {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed >= seeds.end {
                        return;
                    }
                    if sender.send((seed, work(seed))).is_err() {
                        return;
                    }
                }
            };
            // Invariant: spawning fails only when the OS is out of threads,
            // and then no sweep can run at all.
            thread::Builder::new()
                .stack_size(SWEEP_THREAD_STACK_BYTES)
                .spawn_scoped(scope, worker)
                .expect("spawn a sweep thread");
        }
        drop(sender);
        for (seed, result) in receiver {
            if !collect(seed, result) {
                stopped.store(true, Ordering::SeqCst);
            }
        }
    });
}

/// Threads for a sweep: one per core.
pub fn default_jobs() -> usize {
    thread::available_parallelism().map_or(1, usize::from)
}
