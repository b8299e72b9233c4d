//! The client driver: runs a [`Session`] over any [`Network`].
//!
//! The user's lines come in through a channel (the command line feeds it from
//! the terminal or from piped input; a simulation feeds it from a script) and
//! the lines to show go out through a callback. The channel is read only while
//! the session wants input, so piped input waits while messages are waiting
//! for acknowledgement instead of piling up.

use std::sync::Arc;
use std::time::Duration;

use chat_net::Network;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::outbox::{Outbox, write_loop};
use crate::protocol::{self, FRAME_BYTES_MAX, ServerFrame};
use crate::reader::FrameReader;
use crate::session::{Line, Outcome, Session, SessionAction, SessionConfig};

/// Everything the client can be configured with.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `host:port` of the server.
    pub server: String,
    /// The session's nickname, room and limits.
    pub session: SessionConfig,
    /// Longest wait for a connection to open.
    pub connect_timeout: Duration,
    /// How often time is fed to the session.
    pub tick: Duration,
}

impl ClientConfig {
    /// Defaults for `nick` joining the default room on `server`.
    pub fn new(server: impl Into<String>, nick: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            session: SessionConfig::new(nick, protocol::DEFAULT_ROOM),
            connect_timeout: Duration::from_secs(5),
            tick: Duration::from_millis(250),
        }
    }
}

/// Most bytes queued for the server: the unacknowledged outbox at its
/// largest, escaped, with room to spare. Past it the connection is
/// considered lost (the session re-sends after a resume).
const QUEUE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// An open connection: frames are read here; writes go through a queue to a
/// writer task, so that a stalled write never stops the session from
/// hearing the server, ticking, or noticing that the server is gone.
struct Link<N: Network> {
    frames: FrameReader<N::Reader, ServerFrame>,
    outbox: Arc<Outbox>,
    writer: JoinHandle<()>,
}

impl<N: Network> Drop for Link<N> {
    fn drop(&mut self) {
        self.outbox.close(false);
        self.writer.abort();
    }
}

/// What happened on a link.
enum LinkEvent {
    Frame(Option<Result<ServerFrame, protocol::FrameError>>),
    WriterEnded,
}

/// Runs one session until it ends, and tells how it ended.
pub async fn run<N: Network>(
    network: N,
    config: ClientConfig,
    mut input: mpsc::Receiver<String>,
    mut show: impl FnMut(&Line),
) -> Outcome {
    let start = Instant::now();
    let mut session = Session::new(config.session.clone());
    let mut link: Option<Link<N>> = None;
    let mut input_open = true;
    let mut ticks = tokio::time::interval(config.tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        while let Some(action) = session.poll_action() {
            let now = start.elapsed();
            match action {
                SessionAction::Connect => match connect(&network, &config).await {
                    Ok(opened) => {
                        link = Some(opened);
                        session.handle_connected(start.elapsed());
                    }
                    Err(reason) => session.handle_connect_failed(&reason, now),
                },
                SessionAction::Send(frame) => {
                    let Some(open) = link.as_ref() else { continue };
                    if open.outbox.push(protocol::encode(&frame)).is_err() {
                        link = None;
                        session.handle_disconnected(now);
                    }
                }
                SessionAction::Show(line) => show(&line),
                SessionAction::Disconnect => {
                    if link.take().is_some() {
                        session.handle_disconnected(now);
                    }
                }
                SessionAction::Exit(mut outcome) => {
                    drop(link.take());
                    // Lines handed over but never read are not silently lost.
                    input.close();
                    let mut unsent = 0;
                    while let Ok(line) = input.try_recv() {
                        unsent += usize::from(line.trim() != ".exit");
                    }
                    if unsent > 0 {
                        show(&Line::Unsent(unsent));
                        outcome.not_delivered += unsent;
                    }
                    return outcome;
                }
            }
        }
        tokio::select! {
            biased;
            event = next_event(&mut link), if link.is_some() => {
                let now = start.elapsed();
                match event {
                    LinkEvent::Frame(Some(Ok(frame))) => session.handle_frame(frame, now),
                    LinkEvent::Frame(Some(Err(error))) => {
                        tracing::debug!(%error, "bad frame from the server");
                        link = None;
                        session.handle_disconnected(now);
                    }
                    LinkEvent::Frame(None) | LinkEvent::WriterEnded => {
                        link = None;
                        session.handle_disconnected(now);
                    }
                }
            }
            line = input.recv(), if input_open && session.wants_input() => {
                let now = start.elapsed();
                match line {
                    Some(line) => session.handle_user_line(line, now),
                    None => {
                        input_open = false;
                        session.handle_input_closed(now);
                    }
                }
            }
            _ = ticks.tick() => session.handle_tick(start.elapsed()),
        }
    }
}

async fn connect<N: Network>(network: &N, config: &ClientConfig) -> Result<Link<N>, String> {
    match tokio::time::timeout(config.connect_timeout, network.connect(&config.server)).await {
        Ok(Ok(connection)) => {
            let outbox = Arc::new(Outbox::new(QUEUE_BYTES_MAX));
            let queue = outbox.clone();
            let writer = tokio::spawn(async move {
                if let Err(error) = write_loop(connection.writer, &queue).await {
                    tracing::debug!(%error, "writing to the server failed");
                }
            });
            Ok(Link {
                frames: FrameReader::new(connection.reader, FRAME_BYTES_MAX),
                outbox,
                writer,
            })
        }
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!(
            "no answer from {} within {:?}",
            config.server, config.connect_timeout
        )),
    }
}

async fn next_event<N: Network>(link: &mut Option<Link<N>>) -> LinkEvent {
    let Some(open) = link else {
        return std::future::pending().await;
    };
    tokio::select! {
        biased;
        frame = open.frames.next() => LinkEvent::Frame(frame),
        _ = &mut open.writer => LinkEvent::WriterEnded,
    }
}
