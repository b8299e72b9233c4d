//! Runs seeds, judges each with the oracle, and sums up what a sweep
//! exercised.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use chat_core::session::Line;

use crate::oracle::{self, Verdict, Violation};
use crate::scenario::{FaultKind, Scenario};
use crate::trace::TraceBuffer;
use crate::transcript;
use crate::world::{self, Observations};

/// The mechanisms a sweep must exercise, in the order the summary lists them.
pub const MECHANISMS: [&str; 10] = [
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
    /// Individual checks that ran.
    pub checks: usize,
    /// Seeds that failed.
    pub failures: Vec<u64>,
}

impl Summary {
    /// Adds one seed's result.
    pub fn add(&mut self, result: &SeedResult) {
        self.seeds += 1;
        self.checks += result.verdict.checks;
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
    }

    /// Mechanisms never exercised.
    pub fn unexercised(&self) -> Vec<&'static str> {
        MECHANISMS
            .into_iter()
            .filter(|name| self.mechanisms.get(name).copied().unwrap_or(0) == 0)
            .collect()
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
    vec![
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
    ]
}

/// The report for a failed seed: the property, the seed, the one command
/// that replays it, and the end of its trace.
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
    report.push_str("--- last lines of its trace\n");
    report.push_str(&result.trace_tail(40));
    report.push('\n');
    if let Some(observations) = &result.observations {
        report.push_str("--- what the users saw\n");
        report.push_str(&transcript::screens(observations));
    }
    report
}
