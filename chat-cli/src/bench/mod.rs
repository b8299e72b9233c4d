//! `chat-cli bench`: the load generator and the side-by-side comparison with
//! the IRC servers people would otherwise run (ngIRCd, InspIRCd).
//!
//! Every scenario starts a fresh server, runs, and stops it by its process
//! id. With `--peers`, each scenario runs against every server in turn, and
//! the ratios ours / best peer are printed and written as JSON.

mod load;
mod servers;
mod wire;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};

use load::{Figures, Plan};
use servers::Server;

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

    /// Scenarios to run (1 to 5).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    scenarios: Vec<u8>,

    /// Multiply every scenario's message count by this (quick runs).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,

    /// Runs of each scenario against each server; the median run counts
    /// (by deliveries per second, or by p99 latency at a fixed rate).
    #[arg(long, default_value_t = 3)]
    runs: usize,

    /// Write the figures and ratios as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// A scenario's number, what it is, and its plan.
fn scenario(number: u8, scale: f64) -> Option<(&'static str, Plan)> {
    let messages = |count: u32| ((f64::from(count) * scale).round() as u32).max(1);
    let limit = Duration::from_secs(120);
    let base = Plan {
        members: 0,
        talkers: 0,
        messages: 0,
        rate: None,
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

type Start = fn(&Path) -> Result<Server>;

fn contenders(args: &BenchArgs) -> Vec<(&'static str, Start)> {
    let mut list: Vec<(&'static str, Start)> = vec![
        ("chat (ours)", |_| servers::start_ours(true)),
        ("chat (ours, in memory)", |_| servers::start_ours(false)),
    ];
    if args.peers {
        list.push(("ngIRCd", servers::start_ngircd));
        list.push(("InspIRCd", servers::start_inspircd));
    }
    list
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
    let mut results: BTreeMap<u8, Vec<(String, Figures)>> = BTreeMap::new();
    for &number in &args.scenarios {
        let (title, plan) =
            scenario(number, args.scale).with_context(|| format!("no scenario {number}"))?;
        // Alternate between the servers, run after run.
        let mut runs: BTreeMap<&str, Vec<Figures>> = BTreeMap::new();
        for run in 1..=args.runs.max(1) {
            for (name, start) in contenders(args) {
                eprintln!("scenario {number} ({title}) against {name}, run {run}...");
                let server = start(&args.peers_config)?;
                eprintln!("  {name} runs as process {}", server.pid());
                let figures = runtime.block_on(load::run(&server, &plan));
                server.stop();
                runs.entry(name)
                    .or_default()
                    .push(figures.with_context(|| format!("scenario {number} against {name}"))?);
            }
        }
        for (name, _) in contenders(args) {
            let figures = median(runs.remove(name).unwrap_or_default(), plan.rate.is_some());
            results
                .entry(number)
                .or_default()
                .push((name.to_owned(), figures));
        }
    }
    print_table(&results);
    let ratios = ratios(&results);
    for (key, value) in &ratios {
        println!(
            "{key:32} {}",
            value
                .as_f64()
                .map_or("-".to_owned(), |value| format!("{value:.2}"))
        );
    }
    if let Some(path) = &args.json {
        write_json(path, &results, ratios)?;
        println!("written to {}", path.display());
    }
    Ok(())
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

fn print_table(results: &BTreeMap<u8, Vec<(String, Figures)>>) {
    println!(
        "{:<3} {:<12} {:>12} {:>9} {:>9} {:>9} {:>6} {:>5} {:>5} {:>9} {:>8} {:>10}",
        "#",
        "server",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lost",
        "dup",
        "ooo",
        "cpu µs/d",
        "rss MiB",
        "idle B/conn"
    );
    for (number, rows) in results {
        for (name, figures) in rows {
            println!(
                "{:<3} {:<12} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>6} {:>5} {:>5} {:>9.3} {:>8.1} {:>10}",
                number,
                name,
                figures.deliveries_per_second,
                figures.latency_p50_us as f64 / 1000.0,
                figures.latency_p99_us as f64 / 1000.0,
                figures.latency_max_us as f64 / 1000.0,
                figures.lost,
                figures.duplicated,
                figures.out_of_order,
                figures.server_cpu_us_per_delivery,
                figures.server_rss_mib,
                figures
                    .idle_bytes_per_connection
                    .map_or("-".to_owned(), |bytes| format!("{bytes:.0}")),
            );
        }
    }
}

/// Ours divided by the best peer's figure, for each target.
fn ratios(results: &BTreeMap<u8, Vec<(String, Figures)>>) -> BTreeMap<&'static str, Value> {
    let ours = |number: u8| {
        results
            .get(&number)
            .and_then(|rows| rows.iter().find(|(name, _)| name == "chat (ours)"))
            .map(|(_, figures)| figures)
    };
    let peers = |number: u8| -> Vec<&Figures> {
        results
            .get(&number)
            .map(|rows| {
                rows.iter()
                    .filter(|(name, _)| !name.starts_with("chat (ours"))
                    .map(|(_, figures)| figures)
                    .collect()
            })
            .unwrap_or_default()
    };
    let best_higher = |number: u8, get: fn(&Figures) -> f64| {
        let best = peers(number).into_iter().map(get).fold(f64::NAN, f64::max);
        ours(number)
            .map(|figures| get(figures) / best)
            .filter(|ratio| ratio.is_finite())
    };
    let best_lower = |number: u8, get: fn(&Figures) -> f64| {
        let best = peers(number).into_iter().map(get).fold(f64::NAN, f64::min);
        ours(number)
            .map(|figures| get(figures) / best)
            .filter(|ratio| ratio.is_finite())
    };
    let mut ratios = BTreeMap::new();
    ratios.insert(
        "ratio_deliveries_scenario1",
        json!(best_higher(1, |figures| figures.deliveries_per_second)),
    );
    ratios.insert(
        "ratio_deliveries_scenario2",
        json!(best_higher(2, |figures| figures.deliveries_per_second)),
    );
    ratios.insert(
        "ratio_p99_scenario3",
        json!(best_lower(3, |figures| figures.latency_p99_us as f64)),
    );
    ratios.insert(
        "ratio_idle_memory",
        json!(best_lower(4, |figures| figures
            .idle_bytes_per_connection
            .unwrap_or(f64::NAN))),
    );
    ratios.insert(
        "overload_rss_mib",
        json!(ours(5).map(|figures| figures.server_rss_mib)),
    );
    let fraction = match (ours(5), ours(1)) {
        (Some(loaded), Some(alone)) => {
            Some(loaded.deliveries_per_second / alone.deliveries_per_second)
        }
        _ => None,
    };
    ratios.insert("scenario5_throughput_fraction", json!(fraction));
    ratios
}

fn write_json(
    path: &Path,
    results: &BTreeMap<u8, Vec<(String, Figures)>>,
    ratios: BTreeMap<&'static str, Value>,
) -> Result<()> {
    let mut servers: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for (number, rows) in results {
        for (name, figures) in rows {
            servers.entry(name.clone()).or_default().insert(
                format!("scenario{number}"),
                json!({
                    "deliveries": figures.deliveries,
                    "expected": figures.expected,
                    "deliveries_per_second": figures.deliveries_per_second,
                    "latency_p50_us": figures.latency_p50_us,
                    "latency_p99_us": figures.latency_p99_us,
                    "latency_max_us": figures.latency_max_us,
                    "lost": figures.lost,
                    "duplicated": figures.duplicated,
                    "out_of_order": figures.out_of_order,
                    "server_cpu_us_per_delivery": figures.server_cpu_us_per_delivery,
                    "server_rss_mib": figures.server_rss_mib,
                    "idle_bytes_per_connection": figures.idle_bytes_per_connection,
                }),
            );
        }
    }
    let mut document: serde_json::Map<String, Value> = ratios
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    document.insert("servers".to_owned(), json!(servers));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(
        path,
        serde_json::to_string_pretty(&Value::Object(document))?,
    )?;
    Ok(())
}
