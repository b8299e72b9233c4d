//! `chat-cli bench --recovery N`: how long our server takes to come back on
//! a data directory whose log holds N messages.
//!
//! The log is filled the way users fill it: through the real server, by the
//! load generator (a few talkers, every message acknowledged only once it is
//! on disk). Then the server is killed with SIGKILL (no shutdown, no last
//! snapshot: a crash) and started again on the same directory; the time
//! counted is from starting the process until it has recovered the log,
//! listens, and has answered a hello with a welcome. A new member then
//! checks that the room's sequence number is past every message sent.
//!
//! Retention: by default a room keeps its last 1,024 events (and 1 MiB, 64
//! MiB for the whole server), and the log keeps what the retained state
//! needs. To have all N messages in the recovered state, this run raises
//! `--history-max`, `--history-bytes-max` and `--history-bytes-total-max`
//! for the server (see [`retention_options`]); the log then holds the N
//! messages as a snapshot of the retained state plus the records written
//! since (a snapshot is taken after every 64 MiB of records).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::load::{self, Plan};
use super::servers::{self, Keeping, Launch, Server};
use super::wire;

/// Most messages a recovery run may write: the whole retained history is
/// one snapshot record, which must stay under the log's record limit.
pub const MESSAGES_MAX: u64 = 2_000_000;

/// Talkers (and members: each reads everything) that fill the log.
const FILL_TALKERS: usize = 4;

/// Longest the filling may take.
const FILL_LIMIT: Duration = Duration::from_secs(600);

/// Longest the restarted server may take to welcome a client.
const WELCOME_LIMIT: Duration = Duration::from_secs(300);

/// Bytes of history the server may keep for this run (per room and in all).
const HISTORY_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// What a recovery run measured.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// Messages in the log.
    pub messages: u64,
    /// From starting the server to its welcome, in seconds.
    pub seconds: f64,
    /// Bytes of the data directory.
    pub disk_bytes: u64,
    /// The room's sequence number after the restart (past every message).
    pub last_seq: u64,
}

/// The server's retention options for a log of `messages` messages in one
/// room.
fn retention_options(messages: u64) -> Vec<String> {
    let events = messages + 1024;
    [
        ("--history-max", events),
        ("--history-bytes-max", HISTORY_BYTES),
        ("--history-bytes-total-max", HISTORY_BYTES),
    ]
    .into_iter()
    .flat_map(|(option, value)| [option.to_owned(), value.to_string()])
    .collect()
}

impl Recovery {
    /// Messages recovered per second.
    pub fn messages_per_second(&self) -> f64 {
        self.messages as f64 / self.seconds.max(1e-9)
    }

    /// The figures as JSON keys (`recovery_seconds_1m` for exactly one
    /// million messages, the figure the project's targets name).
    pub fn json(&self) -> Vec<(&'static str, serde_json::Value)> {
        let mut keys = vec![
            ("recovery_messages", serde_json::json!(self.messages)),
            ("recovery_seconds", serde_json::json!(self.seconds)),
            (
                "recovery_messages_per_second",
                serde_json::json!(self.messages_per_second()),
            ),
            ("recovery_disk_bytes", serde_json::json!(self.disk_bytes)),
        ];
        if self.messages == 1_000_000 {
            keys.push(("recovery_seconds_1m", serde_json::json!(self.seconds)));
        }
        keys
    }
}

/// Fills a fresh data directory with `messages` messages, kills the server,
/// and times its restart.
pub async fn measure(messages: u64) -> Result<Recovery> {
    if messages == 0 || messages > MESSAGES_MAX {
        bail!("--recovery takes 1 to {MESSAGES_MAX} messages, not {messages}");
    }
    let directory = servers::workdir("recovery")?;
    let data = directory.path().join("chat-data");
    let launch = Launch {
        keeping: Keeping::Directory(data.clone()),
        extra: retention_options(messages),
        ..Launch::durable()
    };
    let written = fill(&launch, messages).await?;
    let disk_bytes = directory_bytes(&data)?;
    eprintln!("recovery: restarting on {} bytes of log...", disk_bytes);
    let started = std::time::Instant::now();
    let server = servers::start_ours(&launch)?;
    let welcomed = wire::greet(&server.route(), "recovered", WELCOME_LIMIT).await?;
    let seconds = started.elapsed().as_secs_f64();
    drop(welcomed);
    let last_seq = room_seq(&server).await?;
    server.stop();
    if last_seq < written {
        bail!(
            "after the restart the room is at sequence number {last_seq}, before the {written} messages sent"
        );
    }
    Ok(Recovery {
        messages: written,
        seconds,
        disk_bytes,
        last_seq,
    })
}

/// Sends about `messages` messages through the server (every one delivered
/// to every member, checked), then kills it. Returns how many were sent.
async fn fill(launch: &Launch, messages: u64) -> Result<u64> {
    let per_talker = messages.div_ceil(FILL_TALKERS as u64);
    let plan = Plan {
        members: FILL_TALKERS,
        talkers: FILL_TALKERS,
        messages: u32::try_from(per_talker).context("too many messages per talker")?,
        rate: None,
        window: load::WINDOW,
        idle: 0,
        stuck: 0,
        limit: FILL_LIMIT,
    };
    let written = per_talker * FILL_TALKERS as u64;
    eprintln!("recovery: writing {written} messages through the server...");
    let server = servers::start_ours(launch)?;
    let figures = load::run(&server, &plan).await?;
    server.kill()?;
    if figures.lost > 0 || figures.duplicated > 0 || figures.out_of_order > 0 {
        bail!(
            "filling the log went wrong: {} lost, {} duplicated, {} out of order",
            figures.lost,
            figures.duplicated,
            figures.out_of_order
        );
    }
    Ok(written)
}

/// Total bytes of the files in `directory` (not recursive: the log is flat).
fn directory_bytes(directory: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in
        std::fs::read_dir(directory).with_context(|| format!("list {}", directory.display()))?
    {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

/// Joins the benchmark room as a new member and returns the sequence number
/// its `entered` answer names (the room's newest event).
async fn room_seq(server: &Server) -> Result<u64> {
    tokio::time::timeout(WELCOME_LIMIT, room_seq_unbounded(server))
        .await
        .context("the restarted server did not answer a join in time")?
}

async fn room_seq_unbounded(server: &Server) -> Result<u64> {
    let mut member = wire::greet(&server.route(), "checker", WELCOME_LIMIT).await?;
    let join = format!("{{\"type\":\"join\",\"room\":\"{}\"}}\n", wire::ROOM);
    member.writer.write_all(join.as_bytes()).await?;
    let mut line = String::new();
    loop {
        line.clear();
        if member.reader.read_line(&mut line).await? == 0 {
            bail!("the restarted server closed the connection before the join was answered");
        }
        let Ok(frame) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if frame["type"] == "entered" {
            return frame["seq"]
                .as_u64()
                .context("an entered frame without a sequence number");
        }
        if frame["type"] == "error" {
            bail!("the restarted server refused the join: {}", line.trim_end());
        }
    }
}
