//! The talkers: each sends its messages, as fast as the flow control lets
//! it or on a fixed schedule; and the keep-alive that stops our server from
//! dropping members that stay quiet.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use chat_net::TokioWriter;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Plan;
use super::progress::Progress;
use crate::bench::servers::Dialect;
use crate::bench::wire;

/// A batch is written when it passes this many bytes (or sooner).
const BATCH_BYTES: usize = 4096;

/// How often quiet members send a heartbeat (ours drops a connection silent
/// for 15 s by default).
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// One talker: who it is and what it shares.
pub struct Talker {
    /// What the server speaks.
    pub dialect: Dialect,
    /// Its index, which its messages carry.
    pub index: usize,
    /// The run's plan.
    pub plan: Plan,
    /// Shared with the readers.
    pub progress: Arc<Progress>,
    /// When the run began: message times count from it.
    pub start: Instant,
}

impl Talker {
    /// The time between two of this talker's messages on a schedule.
    fn interval(&self) -> Option<Duration> {
        self.plan
            .rate
            .map(|rate| Duration::from_secs_f64(self.plan.talkers as f64 / rate))
    }

    /// Waits until message `seq` may go; returns when it was meant to go.
    async fn pace(&self, interval: Option<Duration>, seq: u32) -> Instant {
        match interval {
            Some(interval) => {
                // The talkers' schedules are spread over one interval.
                let offset = interval.mul_f64(self.index as f64 / self.plan.talkers as f64);
                let at = self.start + offset + interval * seq;
                tokio::time::sleep_until(at).await;
                at
            }
            None => {
                self.progress
                    .wait_for_window(self.index, u64::from(seq))
                    .await;
                Instant::now()
            }
        }
    }

    /// Counts `count` messages as sent, before they are written.
    fn count_sent(&self, count: u64) {
        self.progress.sent.fetch_add(count, Ordering::Relaxed);
        if self.dialect == Dialect::Irc {
            // IRC servers do not echo: count our own as received.
            self.progress.received[self.index].fetch_add(count, Ordering::Relaxed);
        }
    }
}

/// Sends one talker's messages: paced by the window, or on a schedule.
/// Returns the write half, which stays open until the end of the run
/// (closing it would make the server see the member leave).
pub async fn talk(talker: Talker, mut writer: TokioWriter) -> Result<TokioWriter> {
    let interval = talker.interval();
    let messages = talker.plan.messages;
    let mut batch = String::new();
    let mut in_batch = 0;
    for seq in 0..messages {
        let intended = talker.pace(interval, seq).await;
        let sent_ns = intended.duration_since(talker.start).as_nanos() as u64;
        let text = wire::text(talker.index as u32, seq, sent_ns);
        batch.push_str(&wire::message_line(
            talker.dialect,
            u64::from(seq) + 1,
            &text,
        ));
        in_batch += 1;
        if interval.is_some()
            || batch.len() > BATCH_BYTES
            || seq + 1 == messages
            || !talker
                .progress
                .window_open(talker.index, u64::from(seq) + 1)
        {
            if interval.is_none() {
                talker.progress.wait_for_lag().await;
            }
            talker.count_sent(in_batch);
            in_batch = 0;
            writer.write_all(batch.as_bytes()).await?;
            batch.clear();
        }
    }
    Ok(writer)
}

/// Keeps quiet members alive (our server drops silent connections) with a
/// heartbeat every `interval`, until `stop` turns true.
pub async fn keep_alive(
    dialect: Dialect,
    mut writers: Vec<TokioWriter>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let Some(line) = wire::heartbeat_line(dialect) else {
        let _ = stop.changed().await;
        return;
    };
    let mut ticks = tokio::time::interval(interval);
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
