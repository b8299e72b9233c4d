//! The report of one run (`sim seed N`), written for someone who has never
//! seen this simulation: a legend first, then the run at a glance, every
//! fault on one timeline, each user's screen with times, every property
//! with its verdict and number of checks, what the fingerprint means, and
//! the trace (all of it with `--trace`; otherwise the lines around the
//! earliest violation).
//!
//! Why this shape: a failing seed is read by whoever broke it, usually not
//! whoever wrote the simulation. The order follows their questions: what is
//! this, what went wrong, what was happening around then, what did people
//! see, which rule says it is wrong. Every line comes from the run's
//! observations, none from the wall clock, so two processes print the same
//! bytes for the same seed.

use std::fmt::Write;
use std::time::Duration;

use chat_core::session::{EndReason, Outcome};

use crate::adversary::{self, Conversation};
use crate::oracle::{Property, Verdict};
use crate::sweep::SeedResult;
use crate::timeline::{self, Entry, Lane, Place, Until};
use crate::transcript;
use crate::world::{ClientRecord, Observations, RunRecord};

/// What the report includes beyond its fixed sections.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The whole trace, not only the lines around the earliest violation.
    pub full_trace: bool,
    /// The planted bug switched on for the run, if one was.
    pub planted: Option<String>,
}

/// The whole report of one run.
pub fn report(result: &SeedResult, options: &Options) -> String {
    let mut text = legend(result);
    text.push_str(&at_a_glance(result, options));
    if let Some(observations) = &result.observations {
        text.push_str(&plan(observations));
        text.push_str(&screens(observations));
        text.push_str(&properties(&result.verdict));
        text.push_str(&fingerprint(observations));
    }
    text.push_str(&trace(result, options.full_trace));
    text
}

/// The width the report wraps its prose at.
const WIDTH: usize = 110;

/// `head` then `text`, wrapped at [`WIDTH`] on spaces, later lines
/// indented to where `text` began: one row of a table, or a paragraph.
fn row(head: &str, text: &str) -> String {
    let indent = head.chars().count();
    let mut out = head.to_owned();
    let mut column = indent;
    for (number, word) in text.split(' ').enumerate() {
        let length = word.chars().count();
        if number > 0 && column + 1 + length > WIDTH && column > indent {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            column = indent;
        } else if number > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += length;
    }
    out.push('\n');
    out
}

/// Seconds with milliseconds, as every time in the report is shown.
fn seconds(at: Duration) -> String {
    format!("{:.3}", at.as_secs_f64())
}

/// What run this is: a seed, or a named scenario.
fn title(result: &SeedResult) -> String {
    let name = result
        .observations
        .as_ref()
        .and_then(|observations| observations.scenario.name.clone());
    match name {
        Some(name) => format!("scenario \"{name}\""),
        None => format!("seed {}", result.seed),
    }
}

fn legend(result: &SeedResult) -> String {
    let mut text = row(
        "",
        &format!(
            "{}: one simulated run of the chat (the real server and client code over turmoil's \
             simulated network, disk and clock), judged by the oracle.",
            title(result)
        ),
    );
    text.push_str(
        "\nHow to read this report
  sections   1 the run at a glance: who took part, which faults were on, the verdict
             2 faults and restarts: every fault of the plan on one timeline, with the
               server's stops and restarts as they happened
             3 screens: what each user's terminal showed, line by line
             4 properties: every property the oracle checked, its verdict, how many checks
             5 fingerprint: the run's hash, and what a change of it means
             6 trace: the log lines of the server, the clients and the fault injector
  times      simulated seconds since the run began (the wall clock plays no part): an
             active phase (users type, faults strike), then a quiet phase (the network
             heals, nobody types, everyone must catch up). 12.345 is 12.345 s.
  from  to   when a fault starts and ends; \"-\": a moment; \"end\": until the run ends
  where      the host it struck: server, a client host (client3), an adversary (adv0),
             or everyone: the server's host and disk, which every user depends on
  >          a line the user typed; the other lines are what the client showed
  cN mK      message K of the user on host clientN (every message text says who sent it)
  ~×N        N filler characters (long messages that fill queues); \"... (N characters)\":
             a line cut short here, not on the screen
  adversary  a program other than our client, writing what it should not (PROTOCOL.md)\n",
    );
    text
}

fn at_a_glance(result: &SeedResult, options: &Options) -> String {
    let mut text = "\n== 1. the run at a glance\n".to_owned();
    if let Some(observations) = &result.observations {
        text.push_str(&participants(observations));
    }
    if let Some(bug) = &options.planted {
        text.push_str(&row(
            "  planted bug  ",
            &format!(
                "{bug} (a deliberate bug, switched on for this run: the oracle must catch it)"
            ),
        ));
    }
    let verdict = match (&result.panic, result.verdict.earliest()) {
        (Some(message), _) => format!("the run panicked (a broken invariant): {message}"),
        (None, Some(earliest)) => format!(
            "FAILED: {} violation(s), the earliest: {earliest}; all of them in section 4",
            result.verdict.violations.len()
        ),
        (None, None) => format!(
            "every property held ({} checks)",
            result.verdict.check_count()
        ),
    };
    text.push_str(&row("  verdict      ", &verdict));
    text
}

fn participants(observations: &Observations) -> String {
    let scenario = &observations.scenario;
    let users: Vec<String> = observations
        .clients
        .iter()
        .map(|client| format!("{} ({})", client.host, nicknames(client)))
        .collect();
    let adversaries: Vec<String> = scenario
        .adversaries
        .iter()
        .map(|script| format!("{} ({} episodes)", script.host, script.episodes.len()))
        .collect();
    let faults: Vec<String> = scenario
        .fault_counts
        .iter()
        .map(|(kind, count)| format!("{} x{count}", kind.name()))
        .collect();
    let mut text = row(
        "  phases       ",
        &format!(
            "{} s active, then {} s quiet; one step of the simulation is {} ms",
            scenario.active.as_secs_f64(),
            scenario.quiet.as_secs_f64(),
            scenario.tick.as_millis()
        ),
    );
    text.push_str(&row("  users        ", &list_or_none(&users)));
    text.push_str(&row("  adversaries  ", &list_or_none(&adversaries)));
    text.push_str(&row(
        "  fault kinds  ",
        &format!(
            "{} (each seed turns on a random subset)",
            list_or_none(&faults)
        ),
    ));
    let keeping = if scenario.durable {
        "on a simulated disk that loses unsynced writes at a crash"
    } else {
        "in memory only"
    };
    text.push_str(&row(
        "  the server   ",
        &format!(
            "keeps its data {keeping}; network latency up to {} ms",
            scenario.max_latency.as_millis()
        ),
    ));
    text
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// The nicknames a client host's runs used, each once, in order.
fn nicknames(client: &ClientRecord) -> String {
    let mut nicks: Vec<&str> = Vec::new();
    for run in &client.runs {
        if !nicks.contains(&run.nick.as_str()) {
            nicks.push(&run.nick);
        }
    }
    if nicks.is_empty() {
        "never started".to_owned()
    } else {
        nicks.join(", ")
    }
}

/// `text` cut to at most `characters` characters, an ellipsis marking
/// the cut.
pub fn shortened_to(text: &str, characters: usize) -> String {
    if text.chars().count() <= characters {
        return text.to_owned();
    }
    let kept: String = text.chars().take(characters.saturating_sub(1)).collect();
    format!("{kept}\u{2026}")
}

/// Where an entry struck, in a word.
pub fn place_name(observations: &Observations, place: Place) -> &str {
    match place {
        Place::Everyone => "everyone",
        Place::Lane(lane) => timeline::host_of(&observations.scenario, lane),
    }
}

fn plan(observations: &Observations) -> String {
    let entries = timeline::entries(observations);
    let mut text = "\n== 2. faults and restarts, in time order\n".to_owned();
    let _ = writeln!(text, "{:>9} {:>9}  {:9} what", "from", "to", "where");
    for entry in &entries {
        let head = format!(
            "{:>9} {:>9}  {:9} ",
            seconds(entry.start),
            until_text(entry),
            place_name(observations, entry.place)
        );
        text.push_str(&row(&head, &entry.what));
    }
    let down = timeline::server_down(observations);
    if !down.is_empty() {
        let total: Duration = down.iter().map(|(from, to)| *to - *from).sum();
        let _ = writeln!(
            text,
            "  the server was down {} time(s), {} s in all",
            down.len(),
            seconds(total)
        );
    }
    text
}

fn until_text(entry: &Entry) -> String {
    match entry.until {
        Until::Instant => "-".to_owned(),
        Until::At(at) => seconds(at),
        Until::RunEnd => "end".to_owned(),
    }
}

fn screens(observations: &Observations) -> String {
    let mut text = "\n== 3. screens: what each user's terminal showed\n".to_owned();
    for record in &observations.clients {
        for (number, run) in record.runs.iter().enumerate() {
            text.push_str(&run_header(record, number, run));
            for line in run_lines(run) {
                text.push_str(&line);
            }
            if let Some(crashed) = record.crashed_at.filter(|crash| *crash >= run.started)
                && number + 1 == record.runs.len()
            {
                let _ = writeln!(
                    text,
                    "{:>9}    [the client's host crashed here]",
                    seconds(crashed)
                );
            }
        }
        if record.runs.is_empty() {
            let _ = writeln!(text, "--- {}: the client never started", record.host);
        }
    }
    for conversation in &observations.adversaries {
        text.push_str(&conversation_lines(conversation));
    }
    text
}

fn run_header(record: &ClientRecord, number: usize, run: &RunRecord) -> String {
    let ended = match &run.outcome {
        Some((at, outcome)) => format!("ended at {}: {}", seconds(*at), outcome_text(outcome)),
        None if record.crashed_at.is_some() && number + 1 == record.runs.len() => {
            "ended by the crash of its host".to_owned()
        }
        None => "still running when the run ended".to_owned(),
    };
    format!(
        "--- {} on {} (client run {} of {}), started at {}, {ended}\n",
        run.nick,
        record.host,
        number + 1,
        record.runs.len(),
        seconds(run.started)
    )
}

fn outcome_text(outcome: &Outcome) -> String {
    let reason = match outcome.reason {
        EndReason::Left => "the user left".to_owned(),
        EndReason::Unreachable => "the server could not be reached".to_owned(),
        EndReason::Refused(code) => format!("the server refused it ({code})"),
        EndReason::ConnectionLost => "the connection was lost for good".to_owned(),
    };
    format!("{reason}; {}", outcome.tally)
}

/// A run's lines, typed and shown, in time order (a typed line before what
/// it made the client show at the same instant).
fn run_lines(run: &RunRecord) -> Vec<String> {
    let typed = run
        .typed
        .iter()
        .map(|(at, line)| (*at, 0, '>', line.clone()));
    let shown = run
        .shown
        .iter()
        .map(|(at, line)| (*at, 1, ' ', line.to_string()));
    let mut lines: Vec<(Duration, u8, char, String)> = typed.chain(shown).collect();
    lines.sort_by_key(|(at, order, _, _)| (*at, *order));
    lines
        .into_iter()
        .map(|(at, _, mark, line)| {
            format!(
                "{:>9}  {mark} {}\n",
                seconds(at),
                transcript::shortened(&line)
            )
        })
        .collect()
}

/// One adversary episode: what it wrote, what came back (runs of the same
/// kind of frame in one line), and how it ended.
fn conversation_lines(conversation: &Conversation) -> String {
    let episode = conversation
        .episode
        .as_ref()
        .map_or_else(|| "?".to_owned(), |episode| episode.summary());
    let mut text = format!("--- adversary {}: {episode}\n", conversation.nick);
    let Some(connected) = conversation.connected else {
        let _ = writeln!(
            text,
            "{:>9}    could not connect",
            seconds(conversation.ended)
        );
        return text;
    };
    let kinds: Vec<&str> = conversation
        .sent
        .iter()
        .map(|(_, kind)| kind.as_str())
        .collect();
    let _ = writeln!(
        text,
        "{:>9}    connected; wrote: {}",
        seconds(connected),
        runs_of(&kinds)
    );
    let received: Vec<(Duration, String)> = conversation
        .received
        .iter()
        .filter(|(_, frame)| !matches!(frame, chat_core::protocol::ServerFrame::Heartbeat))
        .map(|(at, frame)| (*at, adversary::frame_summary(frame)))
        .collect();
    for line in collapsed(&received) {
        text.push_str(&line);
    }
    match conversation.closed {
        Some(at) => {
            let _ = writeln!(text, "{:>9}    closed by the server", seconds(at));
        }
        None => {
            let _ = writeln!(
                text,
                "{:>9}    gave up waiting",
                seconds(conversation.ended)
            );
        }
    }
    text
}

/// `hello, join, send ×120`: consecutive equal items counted.
fn runs_of(items: &[&str]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut index = 0;
    while index < items.len() {
        let same = items[index..]
            .iter()
            .take_while(|item| **item == items[index])
            .count();
        parts.push(match same {
            1 => items[index].to_owned(),
            _ => format!("{} ×{same}", items[index]),
        });
        index += same;
    }
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Received frames, a line each, except that a run of more than three of
/// one kind (`ack 1`, `ack 2`, ...) shows its first, a count, its last.
fn collapsed(received: &[(Duration, String)]) -> Vec<String> {
    let kind = |summary: &str| summary.split(' ').next().unwrap_or("").to_owned();
    let line = |(at, summary): &(Duration, String)| {
        format!(
            "{:>9}    got {}\n",
            seconds(*at),
            transcript::shortened(summary)
        )
    };
    let mut lines = Vec::new();
    let mut index = 0;
    while index < received.len() {
        let first = kind(&received[index].1);
        let same = received[index..]
            .iter()
            .take_while(|(_, summary)| kind(summary) == first)
            .count();
        if same > 3 {
            lines.push(line(&received[index]));
            lines.push(format!("{:>9}    ... {} more {first}\n", "", same - 2));
            lines.push(line(&received[index + same - 1]));
        } else {
            lines.extend(received[index..index + same].iter().map(line));
        }
        index += same;
    }
    lines
}

fn properties(verdict: &Verdict) -> String {
    let mut text = format!(
        "\n== 4. properties: {} checked, {} checks in all\n",
        Property::ALL.len(),
        verdict.check_count()
    );
    let _ = writeln!(
        text,
        "  {:8} {:>6}  {:23} meaning",
        "verdict", "checks", "property"
    );
    for property in Property::ALL {
        let checks = verdict.checks.get(&property).copied().unwrap_or(0);
        let broken = verdict
            .violations
            .iter()
            .any(|violation| violation.property == property);
        let status = match (broken, checks) {
            (true, _) => "BROKEN",
            (false, 0) => "no case",
            (false, _) => "held",
        };
        let head = format!("  {status:8} {checks:>6}  {:23} ", property.name());
        text.push_str(&row(&head, property.meaning()));
    }
    text.push_str("  (\"no case\": nothing in this run for it to check)\n");
    if !verdict.violations.is_empty() {
        let _ = writeln!(text, "\nviolations, in full:");
        for violation in &verdict.violations {
            text.push_str(&row("  ", &violation.to_string()));
        }
    }
    text
}

fn fingerprint(observations: &Observations) -> String {
    format!(
        "\n== 5. fingerprint {:016x}
  A 64-bit FNV-1a hash of the run's whole trace and of every screen with its times and every
  event the server released (sim-tests/src/transcript.rs). The seed decides everything: each
  purpose (users, faults, network, tokens...) draws from its own stream, derived from the seed
  with algorithms this project owns (sim-tests/src/seeds.rs), so a seed gives the same run and
  the same fingerprint in every process, on every machine (tests/sim/determinism.rs checks it).
  A seed whose fingerprint changed is no longer the run that was recorded: the code under test,
  the simulation, or how a seed is drawn changed. Two different fingerprints from one build and
  one seed would mean something is not deterministic: a bug to fix. It says nothing about right
  or wrong; the properties do.\n",
        transcript::fingerprint(observations)
    )
}

/// How many trace lines the report shows around the earliest violation.
const TRACE_AROUND_LINES_MAX: usize = 60;

fn trace(result: &SeedResult, full: bool) -> String {
    let lines: Vec<&str> = result.trace.lines().collect();
    let mut text = format!(
        "\n== 6. trace: {} lines (each stamped with simulated time; \"-\": outside any host)\n",
        lines.len()
    );
    if full {
        for line in &lines {
            let _ = writeln!(text, "{line}");
        }
        return text;
    }
    let around = result
        .verdict
        .earliest()
        .and_then(|violation| violation.at)
        .map(|at| lines_around(&lines, at));
    match (around, &result.panic) {
        (Some(shown), _) => {
            text.push_str("  the lines from 2 s before to 1 s after the earliest violation:\n");
            for line in shown {
                let _ = writeln!(text, "{line}");
            }
        }
        (None, Some(_)) => {
            text.push_str("  its last 40 lines:\n");
            let _ = writeln!(text, "{}", result.trace_tail(40));
        }
        (None, None) => {}
    }
    text.push_str("  (run again with --trace for every line)\n");
    text
}

/// The trace lines stamped from 2 s before `at` to 1 s after (a line
/// stamped `-` belongs with the stamped line before it), at most
/// [`TRACE_AROUND_LINES_MAX`], the latest kept.
fn lines_around<'a>(lines: &[&'a str], at: Duration) -> Vec<&'a str> {
    let from = at.saturating_sub(Duration::from_secs(2));
    let to = at + Duration::from_secs(1);
    let mut last_stamp = Duration::ZERO;
    let mut shown: Vec<&str> = Vec::new();
    for line in lines {
        if let Some(stamp) = stamp_of(line) {
            last_stamp = stamp;
        }
        if last_stamp >= from && last_stamp <= to {
            shown.push(line);
        }
    }
    let skip = shown.len().saturating_sub(TRACE_AROUND_LINES_MAX);
    shown.split_off(skip)
}

/// The simulated time a trace line is stamped with (`   12.345s ...`).
fn stamp_of(line: &str) -> Option<Duration> {
    let stamp = line.split_whitespace().next()?.strip_suffix('s')?;
    let seconds: f64 = stamp.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// The lane a report's party is on: a violation names a client by host,
/// by `host (nick)`, by nickname, by the `cN` its messages start with, or
/// an adversary by its episode's nickname (`adv0-3`); anything else is the
/// server's.
pub fn lane_of_party(observations: &Observations, party: &str) -> Lane {
    let scenario = &observations.scenario;
    let first = party.split(" (").next().unwrap_or(party);
    if let Some(lane) = timeline::lane_of_host(scenario, first) {
        return lane;
    }
    // Message texts name their sender's host `client3` as `c3`.
    if let Some(number) = first.strip_prefix('c')
        && number.parse::<usize>().is_ok()
        && let Some(lane) = timeline::lane_of_host(scenario, &format!("client{number}"))
    {
        return lane;
    }
    if let Some((host, _)) = first.rsplit_once('-')
        && let Some(lane @ Lane::Adversary(_)) = timeline::lane_of_host(scenario, host)
    {
        return lane;
    }
    let named = |run: &RunRecord| {
        run.nick == first
            || run.shown.iter().any(|(_, line)| {
                matches!(line, chat_core::session::Line::NickChanged(nick) if nick == first)
            })
    };
    observations
        .clients
        .iter()
        .position(|client| client.runs.iter().any(named))
        .map_or(Lane::Server, Lane::Client)
}
