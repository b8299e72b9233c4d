//! `sim`: seed sweeps, single-seed replays, fingerprints and planted bugs.
//! The justfile's `sim`, `sim-seed` and `sim-planted` recipes call it.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use sim_tests::scenario::FaultKind;
use sim_tests::sweep::{self, MECHANISMS, SeedResult, Summary};
use sim_tests::{oracle, report, svg, transcript};

/// Deterministic simulation of the chat: sweeps, replays, planted bugs.
#[derive(Parser)]
#[command(name = "sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run many seeds and print a summary; exits non-zero on any violation.
    Sweep {
        /// How many seeds.
        #[arg(long, default_value_t = 200)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Also fail when a mechanism was never exercised.
        #[arg(long)]
        require_mechanisms: bool,
        /// Threads running seeds (default: one per core).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Run one seed and print a report a newcomer can read: a legend, the
    /// run at a glance, every fault on one timeline, each user's screen,
    /// every property with its verdict, the fingerprint, and the trace
    /// around the earliest violation. Exits non-zero when a property
    /// failed.
    Seed {
        /// The seed.
        seed: u64,
        /// Print the whole trace at the end, not only the lines around the
        /// earliest violation.
        #[arg(long)]
        trace: bool,
        /// Draw the run as an SVG picture into this file (a lane per host
        /// over time, faults as bands, messages as lines, violations in
        /// red) and print the verdict instead of the report.
        #[arg(long, value_name = "FILE")]
        svg: Option<std::path::PathBuf>,
        /// Switch on this planted bug for the run (needs a build with
        /// `--cfg chat_planted`; `sim planted` lists them).
        #[arg(long, value_name = "BUG")]
        planted: Option<String>,
    },
    /// Print the fingerprint (hash of trace and transcripts) of each seed.
    Fingerprint {
        /// The seeds.
        seeds: Vec<u64>,
    },
    /// For each planted bug, run seeds until the oracle catches it (needs a
    /// build with `--cfg chat_planted`: `just sim-planted`).
    Planted {
        /// Give up on a bug after this many seeds.
        #[arg(long, default_value_t = 200)]
        max_seeds: u64,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Sweep {
            seeds,
            start,
            require_mechanisms,
            jobs,
        } => sweep_seeds(
            start,
            seeds,
            jobs.unwrap_or_else(sweep::default_jobs),
            require_mechanisms,
        ),
        Command::Seed {
            seed,
            trace,
            svg,
            planted,
        } => {
            if let Some(bug) = &planted
                && let Err(message) = planted::activate(bug)
            {
                eprintln!("{message}");
                return ExitCode::from(2);
            }
            let options = report::Options {
                full_trace: trace,
                planted,
            };
            match svg {
                Some(path) => draw(seed, &path, &options),
                None => replay(seed, &options),
            }
        }
        Command::Fingerprint { seeds } => {
            for seed in seeds {
                let result = sweep::run_seed(seed);
                let fingerprint = result
                    .observations
                    .as_ref()
                    .map_or(0, transcript::fingerprint);
                println!("{seed} {fingerprint:016x}");
            }
            ExitCode::SUCCESS
        }
        Command::Planted { max_seeds } => planted::run(max_seeds),
    }
}

/// Silences the default panic message; the sweep reports panics itself.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

fn sweep_seeds(start: u64, count: u64, jobs: usize, require_mechanisms: bool) -> ExitCode {
    quiet_panics();
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut progress = Progress::new(count);
    let mut failed: Option<SeedResult> = None;
    sweep::run_parallel(start..start + count, jobs, sweep::run_seed, |_, result| {
        summary.add(&result);
        progress.update(summary.seeds, started);
        if result.passed() {
            return true;
        }
        // Of the failing seeds, the lowest is reported: the same one
        // whatever the number of threads.
        if failed.as_ref().is_none_or(|first| result.seed < first.seed) {
            failed = Some(result);
        }
        false
    });
    progress.clear();
    if let Some(result) = &failed {
        eprint!("{}", sweep::failure_report(result));
        print_summary(&summary, started, jobs);
        return ExitCode::FAILURE;
    }
    print_summary(&summary, started, jobs);
    let unexercised = summary.unexercised();
    if require_mechanisms && !unexercised.is_empty() {
        eprintln!("FAILED: never exercised: {}", unexercised.join(", "));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

struct Progress {
    total: u64,
    terminal: bool,
    next_report: u64,
}

impl Progress {
    fn new(total: u64) -> Self {
        Self {
            total,
            terminal: std::io::stderr().is_terminal(),
            next_report: total / 10,
        }
    }

    fn update(&mut self, done: u64, started: Instant) {
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        if self.terminal {
            eprint!("\r  {done}/{} seeds, {rate:.1} seeds/s ", self.total);
            let _ = std::io::stderr().flush();
        } else if done >= self.next_report {
            eprintln!("  {done}/{} seeds, {rate:.1} seeds/s", self.total);
            self.next_report += (self.total / 10).max(1);
        }
    }

    fn clear(&self) {
        if self.terminal {
            eprint!("\r{:60}\r", "");
        }
    }
}

fn print_summary(summary: &Summary, started: Instant, jobs: usize) {
    let wall = started.elapsed().as_secs_f64();
    println!("simulation sweep");
    println!("  seeds run            {}", summary.seeds);
    println!(
        "  seeds per second     {:.1} ({jobs} threads)",
        summary.seeds as f64 / wall.max(1e-9)
    );
    println!(
        "  simulated time       {:.0} s ({:.0}x real time)",
        summary.simulated.as_secs_f64(),
        summary.simulated.as_secs_f64() / wall.max(1e-9)
    );
    println!(
        "  checks passed        {} of {} ({} properties)",
        summary.checks - summary.failures.len().min(summary.checks),
        summary.checks,
        oracle::Property::ALL.len()
    );
    println!("  faults injected");
    for kind in FaultKind::ALL {
        println!(
            "    {:22} {}",
            kind.name(),
            summary.faults.get(&kind).copied().unwrap_or(0)
        );
    }
    println!("  mechanisms exercised");
    for name in MECHANISMS {
        println!(
            "    {:34} {}",
            name,
            summary.mechanisms.get(name).copied().unwrap_or(0)
        );
    }
    println!("  fault sites fired (BUGGIFY)");
    for site in chat_core::buggify::Site::ALL {
        println!(
            "    {:34} {}",
            site.name(),
            summary.sites_fired.get(&site).copied().unwrap_or(0)
        );
    }
    println!("  adversary frames sent, by kind");
    for kind in sim_tests::adversary::FRAME_KINDS {
        println!(
            "    {:34} {}",
            kind,
            summary.frames_sent.get(kind).copied().unwrap_or(0)
        );
    }
    if summary.failures.is_empty() {
        println!("  result               every property held");
    } else {
        println!(
            "  result               FAILED at seed {:?}",
            summary.failures
        );
    }
}

fn replay(seed: u64, options: &report::Options) -> ExitCode {
    let result = sweep::run_seed(seed);
    print!("{}", report::report(&result, options));
    verdict_code(&result)
}

fn verdict_code(result: &SeedResult) -> ExitCode {
    if result.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Writes the picture of `seed` to `path`; prints the verdict.
fn draw(seed: u64, path: &std::path::Path, options: &report::Options) -> ExitCode {
    let result = sweep::run_seed(seed);
    let Some(observations) = &result.observations else {
        eprint!("{}", sweep::failure_report(&result));
        eprintln!("nothing to draw: the run panicked before it finished");
        return ExitCode::FAILURE;
    };
    let picture = svg::picture(observations, &result.verdict, options.planted.as_deref());
    if let Err(error) = std::fs::write(path, picture) {
        eprintln!("could not write {}: {error}", path.display());
        return ExitCode::from(2);
    }
    if result.passed() {
        println!(
            "seed {seed}: every property held ({} checks)",
            result.verdict.check_count()
        );
    } else {
        let planted = options
            .planted
            .as_ref()
            .map_or_else(String::new, |bug| format!(" --planted {bug}"));
        println!(
            "seed {seed}: FAILED, {} violation(s); the earliest of each property broken \
             (`sim seed {seed}{planted}` explains them all):",
            result.verdict.violations.len()
        );
        for violation in result.verdict.earliest_per_property() {
            println!("  {violation}");
        }
    }
    println!("drew seed {seed} into {}", path.display());
    verdict_code(&result)
}

#[cfg(chat_planted)]
mod planted {
    use std::process::ExitCode;

    use chat_core::planted::{self, Bug};
    use sim_tests::oracle::Property;
    use sim_tests::sweep;

    /// The property each planted bug must trip.
    fn expected_property(bug: Bug) -> Property {
        match bug {
            Bug::NickUniqueness => Property::UniqueNicknames,
            Bug::DoubleLeave => Property::JoinLeaveOnce,
            Bug::UnboundedQueue => Property::BoundedQueues,
            Bug::NoDedup => Property::NoDuplicate,
            Bug::ReplayOffByOne => Property::GapJustified,
            Bug::NoEviction => Property::NoSpuriousRejoin,
            Bug::RenameSkipsRoom => Property::RenameAnnounced,
            Bug::PrivateToThird => Property::PrivateParties,
            Bug::ResumeWithoutToken | Bug::FramesAfterRefusal | Bug::NoHandshakeDeadline => {
                Property::AdversaryContract
            }
            Bug::AckBeforeDurable | Bug::SegmentDirNotSynced | Bug::TrustTornTail => {
                Property::AckedDurable
            }
        }
    }

    pub fn run(max_seeds: u64) -> ExitCode {
        super::quiet_panics();
        let mut all_caught = true;
        println!("planted bug            expected property      seeds until caught  (the seed)");
        for bug in Bug::ALL {
            planted::activate(Some(bug));
            let property = expected_property(bug);
            let catches = |seed| {
                sweep::run_seed(seed)
                    .verdict
                    .violations
                    .iter()
                    .any(|violation| violation.property == property)
            };
            // The lowest seed that catches it, whatever the thread count.
            let mut caught: Option<u64> = None;
            sweep::run_parallel(0..max_seeds, sweep::default_jobs(), catches, |seed, hit| {
                if hit && caught.is_none_or(|first| seed < first) {
                    caught = Some(seed);
                }
                !hit
            });
            match caught {
                Some(seed) => println!(
                    "{:22} {:22} {:<19} (seed {seed})",
                    bug.name(),
                    property,
                    seed + 1
                ),
                None => {
                    all_caught = false;
                    println!(
                        "{:22} {:22} NOT CAUGHT in {max_seeds} seeds",
                        bug.name(),
                        property
                    );
                }
            }
        }
        planted::activate(None);
        println!(
            "replay one: target/planted/sim/sim seed SEED --planted BUG; \
             draw it: just sim-planted-svg BUG SEED FILE"
        );
        if all_caught {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// Switches on the planted bug called `name` for this process.
    pub fn activate(name: &str) -> Result<(), String> {
        let bug = Bug::ALL.into_iter().find(|bug| bug.name() == name);
        match bug {
            Some(bug) => {
                planted::activate(Some(bug));
                Ok(())
            }
            None => {
                let names: Vec<&str> = Bug::ALL.iter().map(|bug| bug.name()).collect();
                Err(format!(
                    "no planted bug is called {name:?}; there are: {}",
                    names.join(", ")
                ))
            }
        }
    }
}

#[cfg(not(chat_planted))]
mod planted {
    use std::process::ExitCode;

    pub fn activate(_name: &str) -> Result<(), String> {
        Err(
            "this build has no planted bugs: build with --cfg chat_planted \
             (`just sim-planted-svg BUG SEED FILE` does)"
                .to_owned(),
        )
    }

    pub fn run(_max_seeds: u64) -> ExitCode {
        eprintln!(
            "this build has no planted bugs: run `just sim-planted`, which builds with --cfg chat_planted"
        );
        ExitCode::from(2)
    }
}
