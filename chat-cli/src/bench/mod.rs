//! `chat-cli bench`: the load generator and the side-by-side comparison with
//! the IRC servers people would otherwise run (ngIRCd, InspIRCd).
//!
//! Every scenario starts a fresh server, runs, and stops it by its process
//! id. Our server runs twice per run: with its defaults (durable: every
//! message on disk before it is acknowledged) and in memory, so that the
//! cost of durability is a measured figure. With `--peers`, each scenario
//! also runs against every peer in turn, and the ratios ours / best peer
//! are printed and written as JSON.
//!
//! The generator reaches every server through chat-net's `TokioNetwork`
//! ([`wire`]), as the server and the client do: chat-net stays the one
//! crate that names socket types.

mod disk;
mod load;
mod recovery;
mod report;
mod servers;
mod soak;
mod tls;
mod wire;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use load::{Figures, Plan};
use report::Results;
use servers::{Launch, Server, TempDir};
use tls::TlsFiles;

/// Options of `chat-cli bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Also run every scenario against ngIRCd and InspIRCd (installed from
    /// Debian's packages; `just bench-peers` installs them).
    #[arg(long)]
    peers: bool,

    /// Folder with the peers' config templates.
    #[arg(long, default_value = "../shared/peers")]
    peers_config: PathBuf,

    /// Scenarios to run (1 to 5). Give the option with no value for none
    /// (with --recovery, to measure only that).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "1,2,3,4,5")]
    scenarios: Vec<u8>,

    /// Most messages each talker has unseen by its observer, as fast as
    /// possible (the scenarios as published use 32). With few talkers this
    /// bounds the messages in flight, so throughput is then in-flight
    /// messages over round-trip time: a larger window shows what the server
    /// does when latency is not the limit.
    #[arg(long, default_value_t = load::WINDOW, value_parser = clap::value_parser!(u64).range(1..=load::LAG_MAX))]
    window: u64,

    /// Multiply every scenario's message count by this (quick runs).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,

    /// Runs of each scenario against each server; the median run counts
    /// (by deliveries per second, or by p99 latency at a fixed rate).
    #[arg(long, default_value_t = 3)]
    runs: usize,

    /// Scenarios that also run against our server over TLS (a certificate
    /// made at start, signed by a private CA the generator trusts); the
    /// table shows the figures, `tls_fraction_scenario1` deliveries per
    /// second over TLS as a fraction of plain. Give the option with no value
    /// for none.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "1")]
    tls_scenarios: Vec<u8>,

    /// Also measure recovery: fill a data directory with this many messages
    /// through the server (retention raised to keep them all), kill it with
    /// SIGKILL, and time its restart until it welcomes a client (`just bench`
    /// gives 1000000).
    #[arg(long, value_name = "MESSAGES", overrides_with = "recovery", value_parser = clap::value_parser!(u64).range(1..=recovery::MESSAGES_MAX))]
    recovery: Option<u64>,

    /// Instead of the scenarios, soak our server: this many waves of clients
    /// that connect, chat and leave (some abruptly) while a few stay; after
    /// each, its descriptors must return to their baseline, its memory stay
    /// near the first wave's, and the stayers must have lost nothing.
    #[arg(long, value_name = "WAVES", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    soak: Option<u64>,

    /// Write the figures and ratios as JSON here (given twice, the last
    /// counts, so that `just bench --json FILE` works).
    #[arg(long, overrides_with = "json")]
    json: Option<PathBuf>,
}

/// A scenario's number, what it is, and its plan.
fn scenario(number: u8, scale: f64, window: u64) -> Option<(&'static str, Plan)> {
    let messages = |count: u32| ((f64::from(count) * scale).round() as u32).max(1);
    let limit = Duration::from_secs(120);
    let base = Plan {
        members: 0,
        talkers: 0,
        messages: 0,
        rate: None,
        window,
        idle: 0,
        stuck: 0,
        limit,
    };
    Some(match number {
        1 => (
            "100 talkers x 1000, one room",
            Plan {
                members: 100,
                talkers: 100,
                messages: messages(1000),
                ..base
            },
        ),
        2 => (
            "10 talkers x 10000",
            Plan {
                members: 10,
                talkers: 10,
                messages: messages(10_000),
                ..base
            },
        ),
        3 => (
            "10 talkers, 10k msg/s offered",
            Plan {
                members: 10,
                talkers: 10,
                messages: messages(5_000),
                rate: Some(10_000.0),
                ..base
            },
        ),
        4 => (
            "1000 idle members + 10 talkers",
            Plan {
                members: 10,
                talkers: 10,
                messages: messages(200),
                idle: 1000,
                ..base
            },
        ),
        5 => (
            "scenario 1 + 1 member not reading",
            Plan {
                members: 100,
                talkers: 100,
                messages: messages(1000),
                stuck: 1,
                ..base
            },
        ),
        _ => return None,
    })
}

/// A server a scenario runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    /// Ours with its defaults (durable).
    Ours,
    /// Ours, keeping nothing on disk.
    OursInMemory,
    /// Ours with its defaults, over TLS.
    OursTls,
    /// ngIRCd from Debian's package.
    Ngircd,
    /// InspIRCd from Debian's package.
    Inspircd,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Self::Ours => report::OURS,
            Self::OursInMemory => report::OURS_IN_MEMORY,
            Self::OursTls => report::OURS_TLS,
            Self::Ngircd => "ngIRCd",
            Self::Inspircd => "InspIRCd",
        }
    }

    async fn start(self, bench: &Bench<'_>) -> Result<Server> {
        match self {
            Self::Ours => servers::start_ours(&Launch::durable()),
            Self::OursInMemory => servers::start_ours(&Launch::in_memory()),
            Self::OursTls => {
                let tls = bench.tls()?;
                servers::start_ours(&Launch {
                    tls: Some(tls),
                    ..Launch::durable()
                })
            }
            Self::Ngircd => servers::start_ngircd(&bench.args.peers_config).await,
            Self::Inspircd => servers::start_inspircd(&bench.args.peers_config).await,
        }
    }
}

/// One benchmark run: its options, and the TLS certificate its TLS runs
/// share (made at start when one is needed).
struct Bench<'a> {
    args: &'a BenchArgs,
    tls: Option<(Arc<TlsFiles>, TempDir)>,
}

impl<'a> Bench<'a> {
    fn new(args: &'a BenchArgs) -> Result<Self> {
        let needs_tls = args
            .scenarios
            .iter()
            .any(|number| args.tls_scenarios.contains(number));
        let tls = if needs_tls {
            let directory = servers::workdir("tls")?;
            let files = TlsFiles::generate(directory.path()).context("make a TLS certificate")?;
            Some((Arc::new(files), directory))
        } else {
            None
        };
        Ok(Self { args, tls })
    }

    fn tls(&self) -> Result<Arc<TlsFiles>> {
        self.tls
            .as_ref()
            .map(|(files, _)| files.clone())
            .context("no TLS certificate was made")
    }

    /// The servers scenario `number` runs against, in the order they run.
    fn contenders(&self, number: u8) -> Vec<Contender> {
        let mut list = vec![Contender::Ours, Contender::OursInMemory];
        if self.args.tls_scenarios.contains(&number) {
            list.push(Contender::OursTls);
        }
        if self.args.peers {
            list.extend([Contender::Ngircd, Contender::Inspircd]);
        }
        list
    }
}

/// Runs the benchmark; prints a table (and writes JSON if asked).
pub fn main(args: BenchArgs) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat-cli bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &BenchArgs) -> Result<()> {
    let limit = crate::limits::raise_open_files().context("raise the open-file limit")?;
    eprintln!("open-file limit: {limit}");
    // One thread: on two cores, the generator takes one and the server the
    // other (a second generator thread only contends with the server).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    if let Some(waves) = args.soak {
        return run_soak(&runtime, args, waves as usize);
    }
    let bench = Bench::new(args)?;
    let mut results = Results::default();
    for &number in &args.scenarios {
        let rows = runtime.block_on(run_scenario(&bench, number))?;
        results.0.insert(number, rows);
    }
    report::print_table(&results);
    let mut ratios = report::ratios(&results);
    if args.window != load::WINDOW {
        println!(
            "(each talker with at most {} messages in flight, not the published {})",
            args.window,
            load::WINDOW
        );
    }
    ratios.insert("window", serde_json::json!(args.window));
    if !args.scenarios.is_empty() {
        let directory =
            std::env::temp_dir().join(format!("chat-bench-disk-{}", std::process::id()));
        let latency = disk::measure(&directory)?;
        println!("{}", latency.summary());
        ratios.extend(latency.json());
    }
    if let Some(messages) = args.recovery {
        let recovery = runtime.block_on(recovery::measure(messages))?;
        println!(
            "recovery of {} messages ({:.0} MiB of log): {:.2} s to a welcome, {:.0} messages/s (the room at sequence number {})",
            recovery.messages,
            recovery.disk_bytes as f64 / (1024.0 * 1024.0),
            recovery.seconds,
            recovery.messages_per_second(),
            recovery.last_seq
        );
        ratios.extend(recovery.json());
    }
    report::print_ratios(&ratios);
    if let Some(path) = &args.json {
        report::write_json(path, &results, ratios)?;
        println!("written to {}", path.display());
    }
    Ok(())
}

/// The soak instead of the scenarios: its summary, and its figures as JSON.
fn run_soak(runtime: &tokio::runtime::Runtime, args: &BenchArgs, waves: usize) -> Result<()> {
    let soak = runtime.block_on(soak::run(waves))?;
    println!("{}", soak.summary());
    if let Some(path) = &args.json {
        report::write_document(path, &serde_json::json!({ "soak": soak.json() }))?;
        println!("written to {}", path.display());
    }
    Ok(())
}

/// Runs scenario `number` against every contender, alternating between
/// them run after run; returns each one's median run.
async fn run_scenario(bench: &Bench<'_>, number: u8) -> Result<Vec<(String, Figures)>> {
    let args = bench.args;
    let (title, plan) = scenario(number, args.scale, args.window)
        .with_context(|| format!("no scenario {number}"))?;
    let contenders = bench.contenders(number);
    let mut runs: BTreeMap<&str, Vec<Figures>> = BTreeMap::new();
    for run in 1..=args.runs.max(1) {
        for &contender in &contenders {
            let name = contender.name();
            eprintln!("scenario {number} ({title}) against {name}, run {run}...");
            let server = contender.start(bench).await?;
            eprintln!("  {name} runs as process {}", server.pid());
            let figures = load::run(&server, &plan).await;
            server.stop();
            runs.entry(name)
                .or_default()
                .push(figures.with_context(|| format!("scenario {number} against {name}"))?);
        }
    }
    Ok(contenders
        .iter()
        .map(|contender| {
            let name = contender.name();
            let figures = median(runs.remove(name).unwrap_or_default(), plan.rate.is_some());
            (name.to_owned(), figures)
        })
        .collect())
}

/// The median run: by p99 latency for fixed-rate scenarios, else by
/// deliveries per second.
fn median(mut runs: Vec<Figures>, by_latency: bool) -> Figures {
    if by_latency {
        runs.sort_by_key(|figures| figures.latency_p99_us);
    } else {
        runs.sort_by(|a, b| a.deliveries_per_second.total_cmp(&b.deliveries_per_second));
    }
    let middle = runs.len() / 2;
    runs.into_iter().nth(middle).unwrap_or_default()
}
