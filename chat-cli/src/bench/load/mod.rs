//! The load generator: members join a room, talkers send, every member
//! counts and times what it receives.
//!
//! Talkers send as fast as the server takes them (flow-controlled by
//! [`progress`], so that no queue grows without bound) or on a fixed
//! schedule. Latency is measured from the time a message was meant to be
//! sent, so a server that stalls the talkers is charged for the wait (no
//! coordinated omission). One run is a sequence of steps, one function
//! each: join, start the readers, start the talkers, wait for the talkers
//! and then for the deliveries, collect the tallies, and turn them into
//! [`Figures`].
//!
//! Every socket comes from chat-net's `TokioNetwork` (through
//! [`wire::join`]), plain or TLS, like the server's and the client's.

mod progress;
mod read;
mod talk;
mod tally;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chat_net::TokioWriter;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use progress::{LAG_MAX, Progress, WINDOW};
pub use read::{Reading, read_member};
pub use talk::{KEEP_ALIVE_INTERVAL, keep_alive};
pub use tally::Tally;

use super::servers::{Dialect, Server};
use super::wire::{self, Member, Route};

/// Members join in waves of this many (some servers have short listen
/// backlogs).
const WAVE: usize = 25;

/// Longest wait for one member to join.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// After the talkers' observers have seen everything, the longest wait for
/// the other members' last deliveries.
const LAST_DELIVERIES_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// As fast as possible, most messages a talker has unseen by its
    /// observer.
    pub window: u64,
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

/// The members of a run, reading: their readers' tasks and their write
/// halves (talkers first).
struct Crew {
    readers: Vec<JoinHandle<Tally>>,
    writers: Vec<TokioWriter>,
}

/// Runs `plan` against `server` and measures it.
pub async fn run(server: &Server, plan: &Plan) -> Result<Figures> {
    let route = server.route();
    let (idle, idle_bytes_per_connection) = join_idle(server, &route, plan.idle).await?;
    let stuck = join_all(&route, "s", plan.stuck).await?;
    let members = join_all(&route, "m", plan.members).await?;
    let progress = Arc::new(Progress::new(
        plan.talkers,
        plan.members + plan.idle,
        plan.window,
    ));
    let (stop, stopped) = watch::channel(false);
    let start = Instant::now();
    let cpu_before = server.cpu_time()?;
    let reading = Reading {
        dialect: route.dialect,
        member: 0,
        talkers: plan.talkers,
        observed: None,
        progress: progress.clone(),
        start,
        stop: stopped.clone(),
    };
    let mut crew = start_readers(members, idle, plan, &reading);
    let talkers = start_talkers(&mut crew, plan, &reading);
    let keepalive = tokio::spawn(keep_alive(
        route.dialect,
        crew.writers,
        KEEP_ALIVE_INTERVAL,
        stopped.clone(),
    ));
    let deadline = start + plan.limit;
    let done_talking = wait_for_talkers(talkers, deadline).await;
    let talkers_alive = tokio::spawn(keep_alive(
        route.dialect,
        done_talking,
        KEEP_ALIVE_INTERVAL,
        stopped,
    ));
    progress.wait_for_observers(plan.messages, deadline).await;
    let per_member = plan.talkers as u64 * u64::from(plan.messages);
    let last_deliveries = (Instant::now() + LAST_DELIVERIES_TIMEOUT).min(deadline);
    progress.wait_for_readers(per_member, last_deliveries).await;
    let _ = stop.send(true);
    let total = collect(crew.readers, plan.talkers).await?;
    keepalive.abort();
    talkers_alive.abort();
    let cpu = server.cpu_time()?.saturating_sub(cpu_before);
    drop(stuck);
    let measured = Measured {
        total,
        start,
        cpu,
        server_rss_bytes: server.resident_bytes()?,
        idle_bytes_per_connection,
    };
    Ok(measured.figures(route.dialect, plan))
}

/// Joins the idle members, then measures the server's memory per idle
/// connection once it settled.
async fn join_idle(
    server: &Server,
    route: &Route,
    count: usize,
) -> Result<(Vec<Member>, Option<f64>)> {
    if count == 0 {
        return Ok((Vec::new(), None));
    }
    let before = server.resident_bytes()?;
    let idle = join_all(route, "i", count).await?;
    let after = server.settled_resident_bytes().await?;
    Ok((idle, Some((after as f64 - before as f64) / count as f64)))
}

/// Starts a reader for every member and every idle member. Member `index`
/// watches the talker before it (a talker does not always receive its own
/// messages); idle members watch none.
fn start_readers(members: Vec<Member>, idle: Vec<Member>, plan: &Plan, reading: &Reading) -> Crew {
    let mut crew = Crew {
        readers: Vec::with_capacity(members.len() + idle.len()),
        writers: Vec::with_capacity(members.len() + idle.len()),
    };
    let watching = members.into_iter().enumerate().map(|(index, member)| {
        let observes = (index + plan.members - 1) % plan.members;
        (index, (observes < plan.talkers).then_some(observes), member)
    });
    let quiet = idle
        .into_iter()
        .enumerate()
        .map(|(index, member)| (plan.members + index, None, member));
    for (index, observed, member) in watching.chain(quiet) {
        let reading = Reading {
            member: index,
            observed,
            ..reading.clone()
        };
        crew.readers
            .push(tokio::spawn(read_member(member.reader, reading)));
        crew.writers.push(member.writer);
    }
    crew
}

/// Starts the talkers on the first write halves of `crew`.
fn start_talkers(
    crew: &mut Crew,
    plan: &Plan,
    reading: &Reading,
) -> Vec<JoinHandle<Result<TokioWriter>>> {
    crew.writers
        .drain(..plan.talkers)
        .enumerate()
        .map(|(index, writer)| {
            let talker = talk::Talker {
                dialect: reading.dialect,
                index,
                plan: plan.clone(),
                progress: reading.progress.clone(),
                start: reading.start,
            };
            tokio::spawn(talk::talk(talker, writer))
        })
        .collect()
}

/// Waits for every talker to finish, or the deadline; returns the write
/// halves of those that finished (they stay open until the end: closing
/// one would make the server see its member leave).
async fn wait_for_talkers(
    talkers: Vec<JoinHandle<Result<TokioWriter>>>,
    deadline: Instant,
) -> Vec<TokioWriter> {
    let mut done_talking = Vec::with_capacity(talkers.len());
    for talker in talkers {
        if let Ok(Ok(Ok(writer))) = tokio::time::timeout_at(deadline, talker).await {
            done_talking.push(writer);
        }
    }
    done_talking
}

/// Waits for every reader (told to stop) and adds up their tallies.
async fn collect(readers: Vec<JoinHandle<Tally>>, talkers: usize) -> Result<Tally> {
    let mut total = Tally::new(talkers);
    for reader in readers {
        let tally = reader.await.context("a reader task failed")?;
        total.merge(&tally)?;
    }
    Ok(total)
}

/// What a run measured, before it becomes [`Figures`].
struct Measured {
    total: Tally,
    start: Instant,
    cpu: Duration,
    server_rss_bytes: u64,
    idle_bytes_per_connection: Option<f64>,
}

impl Measured {
    fn figures(self, dialect: Dialect, plan: &Plan) -> Figures {
        let Measured { total, start, .. } = self;
        let expected = expected_per_member(plan) * (plan.members + plan.idle) as u64
            - own_echo_adjustment(dialect, plan);
        let last_at = total.last_at.unwrap_or(start).max(start);
        let seconds = last_at.duration_since(start).as_secs_f64().max(1e-9);
        Figures {
            deliveries: total.deliveries,
            expected,
            deliveries_per_second: total.deliveries as f64 / seconds,
            latency_p50_us: total.histogram.value_at_quantile(0.50),
            latency_p99_us: total.histogram.value_at_quantile(0.99),
            latency_max_us: total.histogram.max(),
            lost: expected.saturating_sub(total.deliveries),
            duplicated: total.duplicated,
            out_of_order: total.out_of_order,
            server_cpu_us_per_delivery: self.cpu.as_secs_f64() * 1e6
                / total.deliveries.max(1) as f64,
            server_rss_mib: self.server_rss_bytes as f64 / (1024.0 * 1024.0),
            idle_bytes_per_connection: self.idle_bytes_per_connection,
        }
    }
}

/// Messages each member should receive (ours echoes to the sender; IRC
/// does not, which [`own_echo_adjustment`] corrects).
fn expected_per_member(plan: &Plan) -> u64 {
    plan.talkers as u64 * u64::from(plan.messages)
}

fn own_echo_adjustment(dialect: Dialect, plan: &Plan) -> u64 {
    match dialect {
        Dialect::Chat => 0,
        Dialect::Irc => plan.talkers as u64 * u64::from(plan.messages),
    }
}

/// Joins `count` members named `prefix0`, `prefix1`, ..., in waves of
/// [`WAVE`].
pub async fn join_all(route: &Route, prefix: &str, count: usize) -> Result<Vec<Member>> {
    let mut members = Vec::with_capacity(count);
    for wave in (0..count).collect::<Vec<_>>().chunks(WAVE) {
        let joins = wave.iter().map(|index| {
            let nick = format!("{prefix}{index}");
            let route = route.clone();
            tokio::spawn(async move { wire::join(&route, &nick, JOIN_TIMEOUT).await })
        });
        for join in joins.collect::<Vec<_>>() {
            members.push(join.await.context("a join task failed")??);
        }
    }
    Ok(members)
}
