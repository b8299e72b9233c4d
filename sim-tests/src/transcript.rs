//! What each user's terminal showed, as text: for snapshots (lines only,
//! under a short header) and for determinism checks (with times).

use std::fmt::Write;

use crate::seeds::{FNV_OFFSET, fnv1a};
use crate::world::Observations;

/// The header: seed (or scenario name) and the faults that were applied.
fn header(observations: &Observations) -> String {
    let scenario = &observations.scenario;
    let mut text = match &scenario.name {
        Some(name) => format!("scenario: {name}\n"),
        None => format!("seed: {}\n", scenario.seed),
    };
    let faults: Vec<String> = observations
        .faults_applied
        .iter()
        .map(|(kind, count)| format!("{} x{count}", kind.name()))
        .collect();
    let faults = if faults.is_empty() {
        "none".to_owned()
    } else {
        faults.join(", ")
    };
    let _ = writeln!(text, "faults: {faults}");
    text
}

/// Each user's screen, one section per client run, as a person would read
/// it: the lines only.
pub fn screens(observations: &Observations) -> String {
    let mut text = header(observations);
    for record in &observations.clients {
        for run in &record.runs {
            let _ = writeln!(text, "\n--- {} on {}", run.nick, record.host);
            for (_, line) in &run.shown {
                let _ = writeln!(text, "{}", abridged(&line.to_string()));
            }
            if let Some(crashed) = record.crashed_at.filter(|crash| *crash >= run.started) {
                let _ = writeln!(
                    text,
                    "[the client host crashed at {:.1} s]",
                    crashed.as_secs_f64()
                );
            }
        }
    }
    for conversation in &observations.adversaries {
        let mut lines = crate::adversary::describe(conversation).into_iter();
        if let Some(first) = lines.next() {
            let _ = writeln!(text, "\n--- adversary {first}");
        }
        for line in lines {
            let _ = writeln!(text, "{}", abridged(&line));
        }
    }
    text
}

/// A line cut to a readable width (the simulation's long filler messages).
pub fn abridged(line: &str) -> String {
    const WIDTH: usize = 100;
    if line.chars().count() <= WIDTH {
        return line.to_owned();
    }
    let cut: String = line.chars().take(WIDTH).collect();
    format!("{cut}... ({} characters)", line.chars().count())
}

/// Filler runs of `~` (what makes the simulation's messages long) as
/// `~×N`, then [`abridged`]: what a report shows of a line.
pub fn shortened(line: &str) -> String {
    const FILLER_SHOWN: usize = 3;
    let mut text = String::with_capacity(line.len().min(200));
    let mut run = 0;
    let flush = |text: &mut String, run: usize| match run {
        0 => {}
        1..=FILLER_SHOWN => text.push_str(&"~".repeat(run)),
        _ => {
            let _ = write!(text, "~×{run}");
        }
    };
    for character in line.chars() {
        if character == '~' {
            run += 1;
            continue;
        }
        flush(&mut text, run);
        run = 0;
        text.push(character);
    }
    flush(&mut text, run);
    abridged(&text)
}

/// Every screen with the simulated time of each line, and every room event:
/// byte-identical for the same seed.
pub fn timed(observations: &Observations) -> String {
    let mut text = header(observations);
    for record in &observations.clients {
        for run in &record.runs {
            let _ = writeln!(text, "\n--- {} on {}", run.nick, record.host);
            let shown = run
                .shown
                .iter()
                .map(|(at, line)| (*at, format!("  {line}")));
            let typed = run
                .typed
                .iter()
                .map(|(at, line)| (*at, format!("> {line}")));
            let mut lines: Vec<(std::time::Duration, String)> = shown.chain(typed).collect();
            lines.sort_by_key(|(at, _)| *at);
            for (at, line) in lines {
                let _ = writeln!(text, "{:>9.3}s {line}", at.as_secs_f64());
            }
            if let Some((at, outcome)) = &run.outcome {
                let _ = writeln!(text, "{:>9.3}s [ended: {outcome:?}]", at.as_secs_f64());
            }
        }
    }
    let _ = writeln!(text, "\n--- events as the server released them");
    for event in &observations.server.events {
        let stream = match event.stream {
            crate::world::StreamOf::Room(room) => format!("room {}", room.0),
            crate::world::StreamOf::Private(member) => format!("private {}", member.0),
        };
        let _ = writeln!(
            text,
            "{:>9.3}s {stream}: {:?}",
            event.at.as_secs_f64(),
            event.frame
        );
    }
    for lifetime in &observations.server.lifetimes {
        let _ = writeln!(
            text,
            "{:>9.3}s server started: {} rooms recovered",
            lifetime.started.as_secs_f64(),
            lifetime.rooms.len()
        );
    }
    text
}

/// A hash (FNV-1a, 64 bits) of the full trace and every timed transcript:
/// two runs with the same fingerprint did the same thing at the same
/// simulated instants, line for line.
pub fn fingerprint(observations: &Observations) -> u64 {
    let hash = fnv1a(FNV_OFFSET, observations.trace.as_bytes());
    fnv1a(hash, timed(observations).as_bytes())
}
