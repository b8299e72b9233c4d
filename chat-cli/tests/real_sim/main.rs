//! The real binaries under the simulation's oracle.
//!
//! The simulation proves the chat-core code right on turmoil's network; this
//! test shows that the real thing behaves the same: `chat-cli server` and
//! `chat-cli client` processes (tokio's multi-threaded runtime, real TCP
//! over loopback, jemalloc, the real disk with fsync, SIGKILL) run the
//! users and faults the simulation's generator draws for a seed, through
//! a fault-injecting proxy per client host, and the simulation's oracle
//! judges what they reported (`--transcript`, `--observe`).
//!
//! What it cannot do is in `plan` (disk faults and adversaries are left
//! out, with reasons); the run is not reproducible byte for byte as a
//! simulated one is (real scheduling decides the interleavings), but the
//! seed decides the scenario, so a failing seed is replayed with
//! `just real-sim-seed N` and compared with `just sim-seed N`.
//!
//! Seeds: a few in `cargo nextest run --workspace` (this test), more with
//! `just real-sim COUNT` (`REAL_SIM_SEEDS`, a list `1,5,9` or a range
//! `0..20`; `REAL_SIM_PARALLEL` seeds at once, 3 by default).
//!
//! Modules: `plan` (the seed's scenario, scaled, and the settings),
//! `proxy` (the link faults), `processes` (the server's supervisor and
//! the client hosts), `schedule` (the faults on time), `collect` (the
//! reports into the oracle's observations), `run` (one seed).

mod collect;
mod plan;
mod processes;
mod proxy;
mod run;
mod schedule;

use std::sync::Arc;

use chat_core::session::Line;
use sim_tests::oracle::Property;
use sim_tests::scenario::FaultKind;
use tokio::sync::Semaphore;

use run::SeedRun;

/// The seeds every `just test` runs: between them they kill and restart
/// the server (three times), kill clients (three), cut links both ways
/// and one way, hold, delay and fail them, stop readers and start users
/// late.
const CI_SEEDS: [u64; 3] = [0, 4, 10];

/// Seeds run at once unless `REAL_SIM_PARALLEL` says otherwise.
const PARALLEL_DEFAULT: usize = 3;

/// The seeds to run: `REAL_SIM_SEEDS` (`1,5,9` or `0..20`), else
/// [`CI_SEEDS`].
fn seeds() -> Result<Vec<u64>, String> {
    let Ok(text) = std::env::var("REAL_SIM_SEEDS") else {
        return Ok(CI_SEEDS.to_vec());
    };
    let number = |word: &str| {
        word.trim()
            .parse::<u64>()
            .map_err(|error| format!("REAL_SIM_SEEDS: {word:?} is not a seed: {error}"))
    };
    match text.split_once("..") {
        Some((first, end)) => Ok((number(first)?..number(end)?).collect()),
        None => text.split(',').map(number).collect(),
    }
}

fn parallel() -> Result<usize, String> {
    match std::env::var("REAL_SIM_PARALLEL") {
        Ok(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|count| *count > 0)
            .ok_or_else(|| format!("REAL_SIM_PARALLEL: {text:?} is not a positive count")),
        Err(_) => Ok(PARALLEL_DEFAULT),
    }
}

/// Runs `seeds`, `parallel` at a time, each on its own processes.
fn run_seeds(seeds: &[u64], parallel: usize) -> Vec<anyhow::Result<SeedRun>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the harness");
    runtime.block_on(async {
        let permits = Arc::new(Semaphore::new(parallel));
        let mut tasks = Vec::new();
        for &seed in seeds {
            let permits = permits.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                run::run_seed(seed).await
            }));
        }
        let mut runs = Vec::new();
        for task in tasks {
            runs.push(
                task.await
                    .unwrap_or_else(|error| Err(anyhow::anyhow!("the run panicked: {error}"))),
            );
        }
        runs
    })
}

#[test]
fn real_processes_hold_every_property_of_the_simulation() {
    let seeds = seeds().expect("the seeds to run");
    let parallel = parallel().expect("how many seeds at once");
    for (property, reason) in plan::PROPERTIES_SKIPPED {
        println!("skipped on real processes: {property}: {reason}");
    }
    for (kind, reason) in plan::FAULTS_LEFT_OUT {
        println!("left out of real runs: {}: {reason}", kind.name());
    }
    let mut failures = Vec::new();
    let mut passed = Vec::new();
    for (seed, run) in seeds.iter().zip(run_seeds(&seeds, parallel)) {
        match run {
            Err(error) => failures.push(format!("seed {seed}: the run failed: {error:#}")),
            Ok(run) if run.verdict.violations.is_empty() => {
                println!("{}", run.summary());
                let _ = std::fs::remove_dir_all(&run.directory);
                passed.push(run);
            }
            Ok(run) => failures.push(run::failure_report(&run)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
    judged_something(&passed);
    faults_reached_connections(&passed);
    if let Some(run) = passed.first() {
        a_duplicate_is_caught(run);
    }
}

/// The runs were judged on what their users saw: the checks that read the
/// screens, the sends and the restarts ran (added up over the seeds run,
/// since one seed may crash every client before it typed).
fn judged_something(runs: &[SeedRun]) {
    for property in [
        Property::NoFabrication,
        Property::SequenceOrder,
        Property::SendsResolved,
        Property::AckedDurable,
    ] {
        let checks: usize = runs
            .iter()
            .map(|run| run.verdict.checks.get(&property).copied().unwrap_or(0))
            .sum();
        assert!(checks > 0, "{property} was never checked");
    }
}

/// The proxies did what the plans asked of them to real connections: where
/// links were cut or held, connections were reset and bytes waited; where
/// latency spiked, bytes were delayed (added up over the seeds run, since
/// a short fault may strike an idle link).
fn faults_reached_connections(runs: &[SeedRun]) {
    let applied = |kinds: &[FaultKind]| {
        runs.iter().any(|run| {
            kinds
                .iter()
                .any(|kind| run.observations.faults_applied.contains_key(kind))
        })
    };
    let resets: u64 = runs.iter().map(|run| run.proxies.resets).sum();
    let held: u64 = runs.iter().map(|run| run.proxies.held).sum();
    let delayed: u64 = runs.iter().map(|run| run.proxies.delayed).sum();
    if applied(&[
        FaultKind::Partition,
        FaultKind::PartitionOneWay,
        FaultKind::LinkFailure,
    ]) {
        assert!(
            resets > 0,
            "links were cut or failed, yet no connection was reset"
        );
    }
    if applied(&[
        FaultKind::Hold,
        FaultKind::Partition,
        FaultKind::StopReading,
    ]) {
        assert!(
            held > 0,
            "links were held, cut or stopped, yet nothing waited"
        );
    }
    if applied(&[FaultKind::LatencySpike]) {
        assert!(delayed > 0, "latency spiked, yet nothing was delayed");
    }
}

/// The canary: the same observations with one message shown twice must
/// break `no_duplicate`, so a real run's reports do reach the oracle.
fn a_duplicate_is_caught(run: &SeedRun) {
    let mut observations = run.observations.clone();
    let shown = observations
        .clients
        .iter_mut()
        .flat_map(|client| client.runs.iter_mut())
        .map(|run| &mut run.shown)
        .find(|shown| {
            shown
                .iter()
                .any(|(_, line)| matches!(line, Line::Message { .. }))
        })
        .expect("some client showed a message");
    let position = shown
        .iter()
        .position(|(_, line)| matches!(line, Line::Message { .. }))
        .expect("a message line");
    let twice = shown[position].clone();
    shown.insert(position + 1, twice);
    let verdict = run::judge(&observations);
    assert!(
        verdict
            .violations
            .iter()
            .any(|violation| violation.property == Property::NoDuplicate),
        "a message shown twice was not caught: {:?}",
        verdict.violations
    );
}
