//! `chat-cli bench --soak WAVES`: does the server give back what departed
//! clients held?
//!
//! A server that runs for weeks must return every descriptor and every byte
//! of a client that left, however it left. The soak starts our server (with
//! its defaults: durable), keeps a few clients connected the whole time (the
//! stayers), and runs waves: in each, clients connect and join the room,
//! most of them chat (every message echoed back before they go), and then
//! they leave in every way a client can: `quit`, dropped without a word (a
//! killed process: FIN), reset (`SO_LINGER` 0: RST), half-closed (its write
//! side shut, still reading), or silent and never reading (the server must
//! drop it by its heartbeat timeout). After each wave the soak waits, by
//! polling with a bound, until the server's open file descriptors
//! (`/proc/PID/fd`) are back at their baseline, reads its settled memory
//! (`VmRSS`), and checks that the stayers received every message so far.
//! The load generator's tally judges the stayers at the end: nothing lost,
//! doubled or reordered.
//!
//! The server's heartbeat timeout is 2 s and its session grace 1 s for the
//! soak (defaults: 15 s and 30 s), so that silent clients are dropped, and
//! sessions of clients that vanished end, within each wave.
//!
//! Fails (and `chat-cli bench` exits non-zero) when descriptors do not
//! return to the baseline within [`FDS_TIMEOUT`], when settled memory passes
//! the first wave's by more than [`RSS_GROWTH_MAX_BYTES`], when a long soak's
//! memory still grows over its second half ([`SETTLED_WAVES_MIN`]), or when
//! a stayer missed anything.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chat_net::{TokioReader, TokioWriter};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::load::{self, Progress, Reading, Tally};
use super::servers::{self, Dialect, Launch, Server};
use super::wire::{self, Incoming, Member, Route};

/// Clients connected the whole time.
const STAYERS: usize = 3;

/// Clients per wave; their ways of leaving cycle through [`Departure::ALL`].
const CLIENTS_PER_WAVE: usize = 10;

/// Messages each talking client of a wave sends.
const MESSAGES_PER_TALKER: u32 = 20;

/// How often the stayers send a heartbeat (under the soak's timeout).
const STAYER_HEARTBEAT: Duration = Duration::from_millis(500);

/// Our server's options for the soak: silent clients dropped after 2 s,
/// sessions of vanished clients ended 1 s later.
const SERVER_OPTIONS: [&str; 6] = [
    "--heartbeat-interval",
    "500ms",
    "--heartbeat-timeout",
    "2s",
    "--session-grace",
    "1s",
];

/// Longest a wave's client may take to see its own messages back, or to
/// see the server close a half-closed connection.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for the server's descriptors to return to their baseline
/// after a wave (the heartbeat timeout, 2 s, bounds the slowest: a client
/// that stopped reading).
const FDS_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the descriptors are counted while waiting.
const FDS_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Longest wait for the stayers to receive a wave's messages.
const STAYERS_TIMEOUT: Duration = Duration::from_secs(10);

/// How far settled memory may rise above the first wave's. A wave leaves
/// behind only what the room keeps on purpose: its history, at most 1,024
/// events of about 300 bytes (0.3 MiB), filled after about five waves, and
/// the server's own bookkeeping. A leak of even one 8 KiB buffer per client
/// passes this bound within about 100 waves (`just soak` runs 50 with this
/// bound; a leak of a connection's whole state, tens of KiB, within 20).
const RSS_GROWTH_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// From this many waves on, memory must also have settled: over the second
/// half of the waves it may grow by at most [`SETTLED_SLACK_BYTES`] plus
/// [`SETTLED_GROWTH_PER_WAVE_MAX_BYTES`] a wave. The room's history is full
/// long before (five waves), so what grows there grows with every wave: a
/// leak, or an allocator that keeps fragments. An earlier binary crept by
/// about 10 KiB a wave over its last 60 of 150 waves, which this catches;
/// today's grows by 1-2 KiB a wave over the second half, most of it the
/// page-sized steps in which resident memory moves.
const SETTLED_WAVES_MIN: usize = 40;

/// See [`SETTLED_WAVES_MIN`]: resident memory moves by a few pages from one
/// measurement to the next.
const SETTLED_SLACK_BYTES: u64 = 256 * 1024;

/// See [`SETTLED_WAVES_MIN`].
const SETTLED_GROWTH_PER_WAVE_MAX_BYTES: u64 = 2 * 1024;

/// How a wave's client leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Departure {
    /// Says `quit` and waits for `bye`.
    Quit,
    /// Closes its socket without a word (what a killed client's kernel does).
    Drop,
    /// Closes with a TCP reset (`SO_LINGER` 0).
    Reset,
    /// Shuts its write side and reads until the server closes.
    HalfClose,
    /// Joins, then never reads nor writes: the server must drop it.
    StopReading,
}

impl Departure {
    const ALL: [Departure; 5] = [
        Self::Quit,
        Self::Drop,
        Self::Reset,
        Self::HalfClose,
        Self::StopReading,
    ];

    fn talks(self) -> bool {
        self != Self::StopReading
    }
}

/// What one wave measured.
#[derive(Clone, Debug)]
pub struct WaveFigures {
    /// From 1.
    pub wave: usize,
    /// Messages sent by the wave's clients.
    pub messages: u64,
    /// Messages the stayers received during the wave, together.
    pub stayer_deliveries: u64,
    /// Open descriptors once back at the baseline.
    pub fds: usize,
    /// How long after the clients left the descriptors were back.
    pub fds_seconds: f64,
    /// Settled resident memory after the wave, in bytes.
    pub rss_bytes: u64,
}

/// What the whole soak measured.
pub struct Soak {
    /// Each wave.
    pub waves: Vec<WaveFigures>,
    /// Open descriptors with only the stayers connected.
    pub fds_baseline: usize,
    /// Settled memory after the first wave, in bytes.
    pub rss_baseline: u64,
    /// Messages each stayer should have received.
    pub expected_per_stayer: u64,
    /// The stayers' tallies, added up.
    pub stayers: Tally,
}

/// The clients that stay connected: their readers tally everything, a
/// keep-alive task sends their heartbeats.
struct Stayers {
    progress: Arc<Progress>,
    readers: Vec<JoinHandle<Tally>>,
    keep_alive: JoinHandle<()>,
    stop: watch::Sender<bool>,
    start: Instant,
}

impl Stayers {
    /// Joins the stayers, tallying messages from up to `talkers` talkers.
    async fn join(route: &Route, talkers: usize) -> Result<Self> {
        let members = load::join_all(route, "stayer", STAYERS).await?;
        let progress = Arc::new(Progress::new(talkers, STAYERS, load::WINDOW));
        let (stop, stopped) = watch::channel(false);
        let start = Instant::now();
        let mut readers = Vec::with_capacity(STAYERS);
        let mut writers = Vec::with_capacity(STAYERS);
        for (index, member) in members.into_iter().enumerate() {
            let reading = Reading {
                dialect: Dialect::Chat,
                member: index,
                talkers,
                observed: None,
                progress: progress.clone(),
                start,
                stop: stopped.clone(),
            };
            readers.push(tokio::spawn(load::read_member(member.reader, reading)));
            writers.push(member.writer);
        }
        let keep_alive = tokio::spawn(load::keep_alive(
            Dialect::Chat,
            writers,
            STAYER_HEARTBEAT,
            stopped,
        ));
        Ok(Self {
            progress,
            readers,
            keep_alive,
            stop,
            start,
        })
    }

    /// Messages received by all stayers together so far.
    fn received(&self) -> u64 {
        self.progress
            .received
            .iter()
            .map(|received| received.load(std::sync::atomic::Ordering::Relaxed))
            .fold(0, u64::saturating_add)
    }

    /// Waits until every stayer has received `messages`; fails if one has
    /// not within [`STAYERS_TIMEOUT`], or was disconnected.
    async fn wait_for(&self, messages: u64) -> Result<()> {
        let deadline = Instant::now() + STAYERS_TIMEOUT;
        self.progress.wait_for_readers(messages, deadline).await;
        let slowest = self.progress.slowest();
        if slowest == u64::MAX {
            bail!("a staying client was disconnected");
        }
        if slowest < messages {
            bail!(
                "a staying client received {slowest} of {messages} messages within {STAYERS_TIMEOUT:?}"
            );
        }
        Ok(())
    }

    /// Stops the readers and adds up their tallies; fails unless each got
    /// `expected` messages, once each and in order.
    async fn finish(self, expected: u64) -> Result<Tally> {
        let _ = self.stop.send(true);
        self.keep_alive.abort();
        let mut total = Tally::new(0);
        for (index, reader) in self.readers.into_iter().enumerate() {
            let tally = reader.await.context("a stayer's reader failed")?;
            if tally.deliveries != expected || tally.duplicated > 0 || tally.out_of_order > 0 {
                bail!(
                    "staying client {index} received {} of {expected} messages ({} duplicated, {} out of order)",
                    tally.deliveries,
                    tally.duplicated,
                    tally.out_of_order
                );
            }
            total.merge(&tally)?;
        }
        Ok(total)
    }
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: u32) -> Result<usize> {
    let directory = format!("/proc/{pid}/fd");
    Ok(std::fs::read_dir(&directory)
        .with_context(|| format!("list {directory}"))?
        .count())
}

/// Waits until the server has at most `baseline` descriptors open; returns
/// the count and how long it took.
async fn wait_for_fds(server: &Server, baseline: usize) -> Result<(usize, Duration)> {
    let started = Instant::now();
    loop {
        let fds = open_fds(server.pid())?;
        if fds <= baseline {
            return Ok((fds, started.elapsed()));
        }
        if started.elapsed() > FDS_TIMEOUT {
            bail!(
                "the server still has {fds} descriptors open {FDS_TIMEOUT:?} after a wave left (baseline {baseline})"
            );
        }
        tokio::time::sleep(FDS_POLL_INTERVAL).await;
    }
}

/// Runs the soak: `waves` waves against a fresh server of ours.
pub async fn run(waves: usize) -> Result<Soak> {
    let launch = Launch {
        extra: SERVER_OPTIONS
            .iter()
            .map(|&option| option.to_owned())
            .collect(),
        ..Launch::durable()
    };
    let server = servers::start_ours(&launch)?;
    eprintln!("soak: server runs as process {}", server.pid());
    let route = server.route();
    let stayers = Stayers::join(&route, waves * CLIENTS_PER_WAVE).await?;
    let fds_baseline = open_fds(server.pid())?;
    println!("soak: {STAYERS} clients stay; baseline {fds_baseline} open descriptors");
    let mut figures = Vec::with_capacity(waves);
    let mut expected = 0;
    let mut rss_baseline = None;
    for wave in 0..waves {
        let before = stayers.received();
        let (messages, silent) = run_wave(&route, wave, stayers.start).await?;
        expected += messages;
        stayers.wait_for(expected).await?;
        // The silent clients stay open on this side: the server must have
        // dropped them by itself.
        let (fds, waited) = wait_for_fds(&server, fds_baseline).await?;
        drop(silent);
        let rss_bytes = server.settled_resident_bytes().await?;
        let baseline = *rss_baseline.get_or_insert(rss_bytes);
        let wave_figures = WaveFigures {
            wave: wave + 1,
            messages,
            stayer_deliveries: stayers.received() - before,
            fds,
            fds_seconds: waited.as_secs_f64(),
            rss_bytes,
        };
        print_wave(&wave_figures, waves, fds_baseline, baseline);
        figures.push(wave_figures);
        if rss_bytes > baseline + RSS_GROWTH_MAX_BYTES {
            bail!(
                "the server's memory grew to {:.1} MiB, over the first wave's {:.1} MiB + {} MiB",
                mib(rss_bytes),
                mib(baseline),
                RSS_GROWTH_MAX_BYTES / (1024 * 1024)
            );
        }
    }
    check_settled(&figures)?;
    let stayers = stayers.finish(expected).await?;
    server.stop();
    Ok(Soak {
        waves: figures,
        fds_baseline,
        rss_baseline: rss_baseline.unwrap_or(0),
        expected_per_stayer: expected,
        stayers,
    })
}

/// Fails when memory still grew over the second half of a long soak; see
/// [`SETTLED_WAVES_MIN`].
fn check_settled(figures: &[WaveFigures]) -> Result<()> {
    let Some((middle, last)) = second_half(figures) else {
        return Ok(());
    };
    let waves = (last.wave - middle.wave) as u64;
    let allowed = SETTLED_SLACK_BYTES + SETTLED_GROWTH_PER_WAVE_MAX_BYTES * waves;
    let grown = last.rss_bytes.saturating_sub(middle.rss_bytes);
    if grown > allowed {
        bail!(
            "the server's memory has not settled: it grew by {} KiB over the last {waves} waves (from wave {} to {}), over the {} KiB allowed",
            grown / 1024,
            middle.wave,
            last.wave,
            allowed / 1024
        );
    }
    Ok(())
}

/// The middle and last waves of a soak long enough to judge settling.
fn second_half(figures: &[WaveFigures]) -> Option<(&WaveFigures, &WaveFigures)> {
    if figures.len() < SETTLED_WAVES_MIN {
        return None;
    }
    Some((&figures[figures.len() / 2], figures.last()?))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_wave(figures: &WaveFigures, waves: usize, fds_baseline: usize, rss_baseline: u64) {
    println!(
        "wave {}/{waves}: {} messages, stayers received {} (nothing lost so far); fds {} (baseline {fds_baseline}) {:.2} s after the clients left; RSS {:.1} MiB (first wave {:.1} MiB)",
        figures.wave,
        figures.messages,
        figures.stayer_deliveries,
        figures.fds,
        figures.fds_seconds,
        mib(figures.rss_bytes),
        mib(rss_baseline),
    );
}

/// Runs one wave: its clients join, those that talk send their messages and
/// see them back, then each leaves its way. Returns the messages sent and
/// the clients that stopped reading (still open on this side).
async fn run_wave(route: &Route, wave: usize, start: Instant) -> Result<(u64, Vec<Member>)> {
    let members = load::join_all(route, &format!("w{wave}c"), CLIENTS_PER_WAVE).await?;
    let mut silent = Vec::new();
    let mut conversations = Vec::new();
    for (index, member) in members.into_iter().enumerate() {
        let departure = Departure::ALL[index % Departure::ALL.len()];
        if !departure.talks() {
            silent.push(member);
            continue;
        }
        let talker = wave * CLIENTS_PER_WAVE + index;
        conversations.push(tokio::spawn(converse(member, talker, departure, start)));
    }
    let talkers = conversations.len() as u64;
    for conversation in conversations {
        conversation.await.context("a client's task failed")??;
    }
    Ok((talkers * u64::from(MESSAGES_PER_TALKER), silent))
}

/// One talking client: sends its messages, waits until it sees them all
/// back (so that every one was accepted), then leaves as `departure` says.
async fn converse(
    member: Member,
    talker: usize,
    departure: Departure,
    start: Instant,
) -> Result<()> {
    let Member {
        mut reader,
        mut writer,
    } = member;
    let mut batch = String::new();
    for seq in 0..MESSAGES_PER_TALKER {
        let sent_ns = start.elapsed().as_nanos() as u64;
        let text = wire::text(talker as u32, seq, sent_ns);
        batch.push_str(&wire::message_line(
            Dialect::Chat,
            u64::from(seq) + 1,
            &text,
        ));
    }
    writer.write_all(batch.as_bytes()).await?;
    let last = MESSAGES_PER_TALKER - 1;
    let own_last = |line: &str| {
        matches!(
            wire::parse(Dialect::Chat, line.as_bytes()),
            Incoming::Message(delivered) if delivered.talker as usize == talker && delivered.seq == last
        )
    };
    tokio::time::timeout(CLIENT_TIMEOUT, read_until(&mut reader, own_last))
        .await
        .with_context(|| format!("talker {talker} did not see its messages back"))??;
    leave(reader, writer, departure).await
}

/// Reads lines until one matches; `false` when the stream ended first.
async fn read_until(
    reader: &mut BufReader<TokioReader>,
    wanted: impl Fn(&str) -> bool,
) -> Result<bool> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(false);
        }
        if wanted(line.trim_end()) {
            return Ok(true);
        }
    }
}

/// Leaves the server as `departure` says.
async fn leave(
    mut reader: BufReader<TokioReader>,
    mut writer: TokioWriter,
    departure: Departure,
) -> Result<()> {
    match departure {
        Departure::Quit => {
            writer.write_all(b"{\"type\":\"quit\"}\n").await?;
            let bye = |line: &str| line.starts_with("{\"type\":\"bye\"");
            let said = tokio::time::timeout(CLIENT_TIMEOUT, read_until(&mut reader, bye)).await;
            if !matches!(said, Ok(Ok(true))) {
                bail!("the server did not say bye to a client that quit");
            }
        }
        Departure::Drop | Departure::StopReading => {}
        Departure::Reset => writer
            .set_reset_on_close()
            .context("set SO_LINGER 0 on a client")?,
        Departure::HalfClose => {
            writer.shutdown().await?;
            // The server must close its side; any line until then is fine.
            let ended = tokio::time::timeout(CLIENT_TIMEOUT, read_until(&mut reader, |_| false))
                .await
                .is_ok();
            if !ended {
                bail!(
                    "the server did not close a half-closed connection within {CLIENT_TIMEOUT:?}"
                );
            }
        }
    }
    Ok(())
}

impl Soak {
    /// One line: the stayers' verdict and the memory.
    pub fn summary(&self) -> String {
        let last = self.waves.last().map_or(0, |wave| wave.rss_bytes);
        let settled = second_half(&self.waves).map_or(String::new(), |(middle, last)| {
            format!(
                "; {:+.0} KiB from wave {} to {} (settled: at most {} KiB a wave)",
                (last.rss_bytes as f64 - middle.rss_bytes as f64) / 1024.0,
                middle.wave,
                last.wave,
                SETTLED_GROWTH_PER_WAVE_MAX_BYTES / 1024
            )
        });
        format!(
            "soak: {} waves; each of {STAYERS} staying clients received all {} messages, none doubled or out of order; descriptors back at {} after every wave; RSS {:.1} MiB after the first wave, {:.1} MiB after the last (bound: +{} MiB){settled}",
            self.waves.len(),
            self.expected_per_stayer,
            self.fds_baseline,
            mib(self.rss_baseline),
            mib(last),
            RSS_GROWTH_MAX_BYTES / (1024 * 1024),
        )
    }

    /// The figures as JSON.
    pub fn json(&self) -> Value {
        let waves: Vec<Value> = self
            .waves
            .iter()
            .map(|wave| {
                json!({
                    "wave": wave.wave,
                    "messages": wave.messages,
                    "stayer_deliveries": wave.stayer_deliveries,
                    "fds": wave.fds,
                    "fds_seconds": wave.fds_seconds,
                    "rss_mib": mib(wave.rss_bytes),
                })
            })
            .collect();
        json!({
            "waves": waves,
            "fds_baseline": self.fds_baseline,
            "rss_baseline_mib": mib(self.rss_baseline),
            "rss_growth_max_mib": RSS_GROWTH_MAX_BYTES / (1024 * 1024),
            "stayers": STAYERS,
            "expected_per_stayer": self.expected_per_stayer,
            "stayer_deliveries": self.stayers.deliveries,
            "stayer_duplicated": self.stayers.duplicated,
            "stayer_out_of_order": self.stayers.out_of_order,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A soak of `count` waves whose memory after wave `n` is `rss(n)`.
    fn soak(count: usize, rss: impl Fn(u64) -> u64) -> Vec<WaveFigures> {
        (1..=count)
            .map(|wave| WaveFigures {
                wave,
                messages: 100,
                stayer_deliveries: 300,
                fds: 12,
                fds_seconds: 0.01,
                rss_bytes: rss(wave as u64),
            })
            .collect()
    }

    const BASE: u64 = 12 * 1024 * 1024;

    #[test]
    fn a_short_soak_is_not_judged_for_settling() {
        let waves = soak(SETTLED_WAVES_MIN - 1, |wave| BASE + wave * 64 * 1024);
        assert!(second_half(&waves).is_none());
        assert!(check_settled(&waves).is_ok());
    }

    #[test]
    fn memory_that_grows_early_and_then_stays_has_settled() {
        let waves = soak(150, |wave| {
            BASE + wave.min(40) * 24 * 1024 + (wave % 3) * 4096
        });
        check_settled(&waves).expect("settled");
    }

    #[test]
    fn memory_that_creeps_with_every_wave_has_not_settled() {
        // About what 150 waves crept by with jemalloc returning pages at once.
        let waves = soak(150, |wave| BASE + wave * 10 * 1024);
        let error = check_settled(&waves).expect_err("still growing");
        let message = error.to_string();
        assert!(message.contains("has not settled"), "{message}");
        assert!(message.contains("from wave 76 to 150"), "{message}");
    }

    #[test]
    fn growth_at_the_bound_is_allowed_and_just_past_it_is_not() {
        let allowed = |waves: u64| SETTLED_SLACK_BYTES + SETTLED_GROWTH_PER_WAVE_MAX_BYTES * waves;
        let at_bound = soak(100, |wave| BASE + if wave == 100 { allowed(49) } else { 0 });
        check_settled(&at_bound).expect("at the bound");
        let past = soak(100, |wave| {
            BASE + if wave == 100 { allowed(49) + 1 } else { 0 }
        });
        assert!(check_settled(&past).is_err());
    }
}
