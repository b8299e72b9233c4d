//! The load generator: members join a room, talkers send, every member
//! counts and times what it receives.
//!
//! Talkers send as fast as the server takes them (each keeping at most
//! [`WINDOW`] of its messages unseen by one other member, and all together
//! at most [`LAG_MAX`] messages ahead of the slowest reading member, so that
//! no queue grows without bound) or on a fixed schedule. Latency is measured
//! from the time a message was meant to be sent, so a server that stalls the
//! talkers is charged for the wait (no coordinated omission).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::servers::{Dialect, Server};
use super::wire::{self, Incoming, Member};

/// Most messages a talker has in flight.
const WINDOW: u64 = 32;

/// Most messages any reading member may be behind the talkers, as fast as
/// possible: without this bound a member that the generator's one thread
/// reads late falls further and further behind, until the server drops it as
/// a reader that does not keep up (ours at 1 MiB queued, ngIRCd at 32 KB).
const LAG_MAX: u64 = 2048;

/// Members join in waves of this many (some servers have short listen
/// backlogs).
const WAVE: usize = 25;

/// Longest wait for one member to join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// What a run does.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Members that read (talkers among them).
    pub members: usize,
    /// Of those, how many talk.
    pub talkers: usize,
    /// Messages per talker.
    pub messages: u32,
    /// Total offered rate in messages per second; `None`: as fast as possible.
    pub rate: Option<f64>,
    /// Extra members that join, read and never talk, before everyone else.
    pub idle: usize,
    /// Extra members that join and then stop reading.
    pub stuck: usize,
    /// The run stops by itself after this long.
    pub limit: Duration,
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Messages delivered to members (not counting stuck ones).
    pub deliveries: u64,
    /// Deliveries expected.
    pub expected: u64,
    /// Deliveries per second, from the first send to the last delivery.
    pub deliveries_per_second: f64,
    /// End-to-end latency percentiles and maximum, in microseconds.
    pub latency_p50_us: u64,
    /// 99th percentile.
    pub latency_p99_us: u64,
    /// Maximum.
    pub latency_max_us: u64,
    /// Expected deliveries that never came.
    pub lost: u64,
    /// Deliveries of a message a member already had.
    pub duplicated: u64,
    /// Deliveries older than one already received from the same talker.
    pub out_of_order: u64,
    /// Server CPU time per delivery, in microseconds.
    pub server_cpu_us_per_delivery: f64,
    /// Server resident memory at the end, in MiB.
    pub server_rss_mib: f64,
    /// Memory per idle connection (only with idle members), in bytes.
    pub idle_bytes_per_connection: Option<f64>,
}

/// What each receiving member tallies.
struct Tally {
    histogram: Histogram<u64>,
    deliveries: u64,
    duplicated: u64,
    out_of_order: u64,
    /// Next sequence number expected from each talker.
    next: Vec<u32>,
    last_at: Option<Instant>,
}

impl Tally {
    fn new(talkers: usize) -> Self {
        Self {
            // Invariant: 1 µs to 60 s with 3 significant digits is a valid range.
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
            deliveries: 0,
            duplicated: 0,
            out_of_order: 0,
            next: vec![0; talkers],
            last_at: None,
        }
    }

    fn record(&mut self, delivered: wire::Delivered, start: Instant, now: Instant) {
        let Some(next) = self.next.get_mut(delivered.talker as usize) else {
            return;
        };
        match delivered.seq.cmp(next) {
            std::cmp::Ordering::Equal => *next += 1,
            std::cmp::Ordering::Greater => {
                self.out_of_order += 1;
                *next = delivered.seq + 1;
            }
            std::cmp::Ordering::Less => {
                self.duplicated += 1;
                return;
            }
        }
        self.deliveries += 1;
        let elapsed = now.duration_since(start).as_nanos() as u64;
        let latency_us = elapsed.saturating_sub(delivered.sent_ns) / 1000;
        let _ = self.histogram.record(latency_us.max(1));
        self.last_at = Some(now);
    }
}

/// Shared progress: for each talker, the highest sequence number one other
/// member (its observer) has received, plus one; and how far every reading
/// member is behind.
struct Progress {
    seen: Vec<AtomicU64>,
    /// Woken when a talker's counter moves.
    moved: Vec<Notify>,
    /// Messages sent by all talkers together.
    sent: AtomicU64,
    /// For each reading member, messages received (its own counted as
    /// received where the server does not echo them); `u64::MAX` once it
    /// stopped reading.
    received: Vec<AtomicU64>,
    /// Woken when members received more.
    caught_up: Notify,
}

impl Progress {
    /// True when no reading member is more than [`LAG_MAX`] messages behind.
    fn lag_ok(&self) -> bool {
        let slowest = self
            .received
            .iter()
            .map(|received| received.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX);
        self.sent.load(Ordering::Relaxed) <= slowest.saturating_add(LAG_MAX)
    }

    /// Waits until no reading member lags too far.
    async fn wait_for_lag(&self) {
        loop {
            let caught_up = self.caught_up.notified();
            if self.lag_ok() {
                return;
            }
            caught_up.await;
        }
    }
}

/// Runs `plan` against `server` and measures it.
pub async fn run(server: &Server, plan: &Plan) -> Result<Figures> {
    let dialect = server.dialect;
    let before_idle = server.resident_bytes()?;
    let idle = join_all(dialect, &server.addr, "i", plan.idle).await?;
    let idle_bytes_per_connection = if plan.idle > 0 {
        tokio::time::sleep(Duration::from_secs(1)).await; // Let the server settle.
        let after = server.resident_bytes()?;
        Some((after as f64 - before_idle as f64) / plan.idle as f64)
    } else {
        None
    };
    let stuck = join_all(dialect, &server.addr, "s", plan.stuck).await?;
    let members = join_all(dialect, &server.addr, "m", plan.members).await?;
    let progress = Arc::new(Progress {
        seen: (0..plan.talkers).map(|_| AtomicU64::new(0)).collect(),
        moved: (0..plan.talkers).map(|_| Notify::new()).collect(),
        sent: AtomicU64::new(0),
        received: (0..plan.members + plan.idle)
            .map(|_| AtomicU64::new(0))
            .collect(),
        caught_up: Notify::new(),
    });
    let (stop, stopped) = watch::channel(false);
    let start = Instant::now();
    let cpu_before = server.cpu_time()?;
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (index, member) in members.into_iter().enumerate() {
        let (reader, writer) = (member.reader, member.writer);
        // Member `index` watches the talker before it (a talker does not
        // always receive its own messages).
        let observes = (index + plan.members - 1) % plan.members;
        let observed = (observes < plan.talkers).then_some(observes);
        readers.push(tokio::spawn(read_member(
            reader,
            Reading {
                dialect,
                member: index,
                talkers: plan.talkers,
                observed,
                progress: progress.clone(),
                start,
                stop: stopped.clone(),
            },
        )));
        writers.push(writer);
    }
    for (index, member) in idle.into_iter().enumerate() {
        readers.push(tokio::spawn(read_member(
            member.reader,
            Reading {
                dialect,
                member: plan.members + index,
                talkers: plan.talkers,
                observed: None,
                progress: progress.clone(),
                start,
                stop: stopped.clone(),
            },
        )));
        writers.push(member.writer);
    }
    let talkers: Vec<_> = writers
        .drain(..plan.talkers)
        .enumerate()
        .map(|(talker, writer)| {
            tokio::spawn(talk(
                dialect,
                writer,
                talker,
                plan.clone(),
                progress.clone(),
                start,
            ))
        })
        .collect();
    let keepalive = tokio::spawn(keep_alive(dialect, writers, stopped.clone()));
    let expected_per_member = expected_per_member(dialect, plan);
    let everyone = (plan.members + plan.idle) as u64;
    let deadline = start + plan.limit;
    // A talker's write half stays open until the end: closing it would
    // make the server see the member leave.
    let mut done_talking = Vec::new();
    for talker in talkers {
        if let Ok(Ok(Ok(writer))) = tokio::time::timeout_at(deadline, talker).await {
            done_talking.push(writer);
        }
    }
    let talkers_alive = tokio::spawn(keep_alive(dialect, done_talking, stopped.clone()));
    wait_for_deliveries(&progress, plan, deadline).await;
    // Give the last deliveries a moment to land, then stop the readers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop.send(true);
    let mut total = Tally::new(plan.talkers);
    let mut last_at = start;
    for reader in readers {
        let tally = reader.await.context("a reader task failed")?;
        total
            .histogram
            .add(&tally.histogram)
            .context("merge histograms")?;
        total.deliveries += tally.deliveries;
        total.duplicated += tally.duplicated;
        total.out_of_order += tally.out_of_order;
        last_at = last_at.max(tally.last_at.unwrap_or(start));
    }
    keepalive.abort();
    talkers_alive.abort();
    let cpu = server.cpu_time()?.saturating_sub(cpu_before);
    let expected = expected_per_member * everyone - own_echo_adjustment(dialect, plan);
    let seconds = last_at.duration_since(start).as_secs_f64().max(1e-9);
    drop(stuck);
    Ok(Figures {
        deliveries: total.deliveries,
        expected,
        deliveries_per_second: total.deliveries as f64 / seconds,
        latency_p50_us: total.histogram.value_at_quantile(0.50),
        latency_p99_us: total.histogram.value_at_quantile(0.99),
        latency_max_us: total.histogram.max(),
        lost: expected.saturating_sub(total.deliveries),
        duplicated: total.duplicated,
        out_of_order: total.out_of_order,
        server_cpu_us_per_delivery: cpu.as_secs_f64() * 1e6 / total.deliveries.max(1) as f64,
        server_rss_mib: server.resident_bytes()? as f64 / (1024.0 * 1024.0),
        idle_bytes_per_connection,
    })
}

/// Messages each member should receive (ours echoes to the sender; IRC
/// does not, which [`own_echo_adjustment`] corrects).
fn expected_per_member(_dialect: Dialect, plan: &Plan) -> u64 {
    plan.talkers as u64 * u64::from(plan.messages)
}

fn own_echo_adjustment(dialect: Dialect, plan: &Plan) -> u64 {
    match dialect {
        Dialect::Chat => 0,
        Dialect::Irc => plan.talkers as u64 * u64::from(plan.messages),
    }
}

/// Joins `count` members in waves.
async fn join_all(dialect: Dialect, addr: &str, prefix: &str, count: usize) -> Result<Vec<Member>> {
    let mut members = Vec::with_capacity(count);
    for wave in (0..count).collect::<Vec<_>>().chunks(WAVE) {
        let joins = wave.iter().map(|index| {
            let nick = format!("{prefix}{index}");
            let addr = addr.to_owned();
            tokio::spawn(async move { wire::join(dialect, &addr, &nick, JOIN_TIMEOUT).await })
        });
        for join in joins.collect::<Vec<_>>() {
            members.push(join.await.context("a join task failed")??);
        }
    }
    Ok(members)
}

/// Reads one member's lines until told to stop; tallies deliveries.
///
/// Works on whole buffers: every complete line in what one read brought is
/// parsed in place (a partial last line is carried over), and one clock
/// reading stamps them all.
async fn read_member(
    reader: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    mut reading: Reading,
) -> Tally {
    let tally = read_lines(reader, &mut reading).await;
    // A member that stopped reading holds no one back.
    reading.progress.received[reading.member].store(u64::MAX, Ordering::Relaxed);
    reading.progress.caught_up.notify_waiters();
    tally
}

/// What one member's reader needs to know.
struct Reading {
    dialect: Dialect,
    /// Its index among the reading members.
    member: usize,
    talkers: usize,
    /// The talker whose window it keeps, if any.
    observed: Option<usize>,
    progress: Arc<Progress>,
    start: Instant,
    stop: watch::Receiver<bool>,
}

async fn read_lines(
    mut reader: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    reading: &mut Reading,
) -> Tally {
    let Reading {
        dialect,
        member,
        talkers,
        observed,
        ref progress,
        start,
        ref mut stop,
    } = *reading;
    let mut tally = Tally::new(talkers);
    let mut counted = 0;
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let chunk = tokio::select! {
            biased;
            _ = stop.changed() => return tally,
            read = reader.fill_buf() => match read {
                Ok(chunk) if !chunk.is_empty() => chunk,
                _ => return tally,
            },
        };
        let now = Instant::now();
        let mut line_start = 0;
        for newline in memchr::memchr_iter(b'\n', chunk) {
            if carry.is_empty() {
                on_line(
                    dialect,
                    &chunk[line_start..newline],
                    observed,
                    progress,
                    &mut tally,
                    start,
                    now,
                );
            } else {
                carry.extend_from_slice(&chunk[line_start..newline]);
                on_line(dialect, &carry, observed, progress, &mut tally, start, now);
                carry.clear();
            }
            line_start = newline + 1;
        }
        carry.extend_from_slice(&chunk[line_start..]);
        let length = chunk.len();
        reader.consume(length);
        progress.received[member].fetch_add(
            tally.deliveries + tally.duplicated - counted,
            Ordering::Relaxed,
        );
        counted = tally.deliveries + tally.duplicated;
        progress.caught_up.notify_waiters();
    }
}

/// Tallies one line. (PINGs go unanswered: the runs are far shorter than
/// the peers' ping timeouts, 600 s in the shared configs.)
fn on_line(
    dialect: Dialect,
    line: &[u8],
    observed: Option<usize>,
    progress: &Progress,
    tally: &mut Tally,
    start: Instant,
    now: Instant,
) {
    if let Incoming::Message(delivered) = wire::parse(dialect, line) {
        let talker = delivered.talker as usize;
        if observed == Some(talker) {
            progress.seen[talker].fetch_max(u64::from(delivered.seq) + 1, Ordering::Relaxed);
            progress.moved[talker].notify_one();
        }
        tally.record(delivered, start, now);
    }
}

/// Sends one talker's messages: paced by the window, or on a schedule.
async fn talk(
    dialect: Dialect,
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    talker: usize,
    plan: Plan,
    progress: Arc<Progress>,
    start: Instant,
) -> Result<tokio::net::tcp::OwnedWriteHalf> {
    let interval = plan
        .rate
        .map(|rate| Duration::from_secs_f64(plan.talkers as f64 / rate));
    // Spread the talkers' schedules over one interval.
    let offset = interval.map_or(Duration::ZERO, |interval| {
        interval.mul_f64(talker as f64 / plan.talkers as f64)
    });
    let mut batch = String::new();
    let mut in_batch = 0;
    for seq in 0..plan.messages {
        let intended = match interval {
            Some(interval) => {
                let at = start + offset + interval * seq;
                tokio::time::sleep_until(at).await;
                at
            }
            None => {
                wait_for_window(&progress, talker, u64::from(seq)).await;
                Instant::now()
            }
        };
        let sent_ns = intended.duration_since(start).as_nanos() as u64;
        batch.push_str(&wire::message_line(
            dialect,
            u64::from(seq) + 1,
            &wire::text(talker as u32, seq, sent_ns),
        ));
        in_batch += 1;
        if interval.is_some()
            || batch.len() > 4096
            || seq + 1 == plan.messages
            || !window_open(&progress.seen[talker], u64::from(seq) + 1)
        {
            if interval.is_none() {
                progress.wait_for_lag().await;
            }
            progress.sent.fetch_add(in_batch, Ordering::Relaxed);
            if dialect == Dialect::Irc {
                // IRC servers do not echo: count our own as received.
                progress.received[talker].fetch_add(in_batch, Ordering::Relaxed);
            }
            in_batch = 0;
            writer.write_all(batch.as_bytes()).await?;
            batch.clear();
        }
    }
    Ok(writer)
}

fn window_open(seen: &AtomicU64, next: u64) -> bool {
    next < seen.load(Ordering::Relaxed) + WINDOW
}

/// Waits until message `next` of `talker` fits in the window.
async fn wait_for_window(progress: &Progress, talker: usize, next: u64) {
    loop {
        let moved = progress.moved[talker].notified();
        if window_open(&progress.seen[talker], next) {
            return;
        }
        moved.await;
    }
}

/// Waits until every talker's observer has seen all its messages, or the
/// deadline.
async fn wait_for_deliveries(progress: &Progress, plan: &Plan, deadline: Instant) {
    let done = || {
        progress
            .seen
            .iter()
            .all(|seen| seen.load(Ordering::Relaxed) >= u64::from(plan.messages))
    };
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Keeps quiet members alive (our server drops silent connections).
async fn keep_alive(
    dialect: Dialect,
    mut writers: Vec<tokio::net::tcp::OwnedWriteHalf>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(line) = wire::heartbeat_line(dialect) else {
        let _ = stop.changed().await;
        return;
    };
    let mut ticks = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticks.tick() => {
                for writer in &mut writers {
                    let _ = writer.write_all(line.as_bytes()).await;
                }
            }
        }
    }
}
