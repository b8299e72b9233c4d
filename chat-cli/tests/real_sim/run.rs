//! One seed on real processes: the server under its supervisor, a proxy
//! per client host, the hosts' client runs, the fault schedule; then the
//! reports read back and judged by the simulation's oracle.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use sim_tests::oracle::{self, Verdict};
use sim_tests::scenario::Scenario;
use sim_tests::seeds;
use sim_tests::world::Observations;
use tokio::sync::watch;

use crate::collect::{self, RunLogs};
use crate::plan;
use crate::processes::{Files, Host, Supervisor};
use crate::proxy::Proxy;
use crate::schedule::{self, Targets};

/// What one seed's run gave.
pub struct SeedRun {
    /// The seed.
    pub seed: u64,
    /// The oracle's verdict, without the skipped properties.
    pub verdict: Verdict,
    /// What was observed.
    pub observations: Observations,
    /// Real time the run took, from the server's start to the verdict.
    pub wall: Duration,
    /// What the proxies did, all together.
    pub proxies: ProxyTotals,
    /// The run's files (processes' consoles, reports, the data directory).
    pub directory: PathBuf,
}

impl SeedRun {
    /// One line about the run.
    pub fn summary(&self) -> String {
        let faults: Vec<String> = self
            .observations
            .faults_applied
            .iter()
            .map(|(kind, count)| format!("{} {count}", kind.name()))
            .collect();
        let runs: usize = self.observations.clients.iter().map(|c| c.runs.len()).sum();
        let checks: Vec<String> = self
            .verdict
            .checks
            .iter()
            .map(|(property, count)| format!("{property} {count}"))
            .collect();
        format!(
            "seed {}: {} in {:.1} s; {} client runs, {} server starts; faults: {}; proxies: {}; {} checks, {} violations\n  checks: {}",
            self.seed,
            if self.verdict.violations.is_empty() {
                "held"
            } else {
                "BROKEN"
            },
            self.wall.as_secs_f64(),
            runs,
            self.observations.server.lifetimes.len(),
            if faults.is_empty() {
                "none".to_owned()
            } else {
                faults.join(", ")
            },
            self.proxies,
            self.verdict.check_count(),
            self.verdict.violations.len(),
            checks.join(", "),
        )
    }
}

/// Runs `seed` and judges it. The directory is kept (and named in the
/// summary) so that a failure can be read; it lives in the system's
/// temporary directory.
pub async fn run_seed(seed: u64) -> anyhow::Result<SeedRun> {
    let scenario = plan::scenario(seed);
    let directory = tempfile::Builder::new()
        .prefix(&format!("real-sim-seed-{seed}-"))
        .tempdir()
        .context("a directory for the run")?
        .keep();
    let files = Files::new(&directory);
    let wall = Instant::now();
    let (upstream, upstream_seen) = watch::channel(None);
    let (server, clock) = Supervisor::start(&files, upstream).await?;
    let mut proxies = Vec::new();
    for index in 0..scenario.clients.len() {
        let seed = seeds::derive(seed, &format!("proxy {index}"));
        proxies.push(Proxy::start(upstream_seen.clone(), seed).await?);
    }
    let (crashes, hosts) = start_hosts(&scenario, &proxies, clock, &files);
    let targets = Targets {
        proxies: &proxies,
        crashes: &crashes,
        server: &server,
    };
    let faults_applied = schedule::run(&scenario, &clock, &targets).await;
    let mut host_logs = Vec::new();
    for host in hosts {
        host_logs.push(host.await.context("a client host panicked")??);
    }
    let server_log = server.stop().await?;
    let proxies_done = stop_proxies(&mut proxies);
    let logs = RunLogs {
        server: server_log,
        hosts: host_logs,
        faults_applied,
    };
    let observations = collect::observations(&scenario, &files, &clock, logs)?;
    let verdict = judge(&observations);
    Ok(SeedRun {
        seed,
        verdict,
        observations,
        wall: wall.elapsed(),
        proxies: proxies_done,
        directory,
    })
}

type HostTask = tokio::task::JoinHandle<anyhow::Result<crate::processes::HostLog>>;

fn start_hosts(
    scenario: &Scenario,
    proxies: &[Proxy],
    clock: crate::processes::Clock,
    files: &Files,
) -> (Vec<watch::Sender<bool>>, Vec<HostTask>) {
    let mut crashes = Vec::new();
    let mut hosts = Vec::new();
    for (script, proxy) in scenario.clients.iter().zip(proxies) {
        let (crash, crash_seen) = watch::channel(false);
        let host = Host {
            script: script.clone(),
            proxy: proxy.addr,
            crash: crash_seen,
            clock,
            end: scenario.end(),
            files: files.clone(),
        };
        crashes.push(crash);
        hosts.push(tokio::spawn(host.run()));
    }
    (crashes, hosts)
}

/// What the proxies of a run did, all together.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProxyTotals {
    /// Connections accepted.
    pub connections: u64,
    /// Connections reset.
    pub resets: u64,
    /// Pieces that waited for a hold, cut or stop to end.
    pub held: u64,
    /// Pieces delayed by a latency spike.
    pub delayed: u64,
}

impl std::fmt::Display for ProxyTotals {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{} connections, {} reset, {} pieces held, {} pieces delayed",
            self.connections, self.resets, self.held, self.delayed
        )
    }
}

/// Stops the proxies and adds up what they did.
fn stop_proxies(proxies: &mut [Proxy]) -> ProxyTotals {
    let mut totals = ProxyTotals::default();
    for proxy in proxies.iter_mut() {
        proxy.stop();
        let counts = &proxy.counts;
        totals.connections += counts.connections.load(Ordering::Relaxed);
        totals.resets += counts.resets.load(Ordering::Relaxed);
        totals.held += counts.pieces_held.load(Ordering::Relaxed);
        totals.delayed += counts.pieces_delayed.load(Ordering::Relaxed);
    }
    totals
}

/// The oracle's verdict, with the properties real runs skip taken out (they
/// were judged on nothing a real run observes).
pub fn judge(observations: &Observations) -> Verdict {
    let mut verdict = oracle::check(observations);
    for (property, _) in plan::PROPERTIES_SKIPPED {
        verdict.checks.remove(&property);
        verdict
            .violations
            .retain(|violation| violation.property != property);
    }
    verdict
}

/// Everything about a failed run a reader needs.
pub fn failure_report(run: &SeedRun) -> String {
    let mut report = String::new();
    let _ = writeln!(report, "{}", run.summary());
    for violation in &run.verdict.violations {
        let _ = writeln!(report, "  {violation}");
    }
    let _ = writeln!(
        report,
        "  files (consoles, reports, data): {}",
        run.directory.display()
    );
    let _ = writeln!(
        report,
        "  replay: just real-sim-seed {}   (the simulated run: just sim-seed {})",
        run.seed, run.seed
    );
    report
}
