//! The client driver: runs a [`Session`] over any [`Network`].
//!
//! The user's lines come in through a channel (the command line feeds it from
//! the terminal or from piped input; a simulation feeds it from a script),
//! and what to show goes out through a callback. The channel is read only
//! while the session wants input, so piped input waits while messages are
//! waiting for acknowledgement instead of piling up. A `leave` future (a
//! signal, a closed terminal) ends the session as `.exit` does, and after
//! [`LEAVE_GRACE`] without the server's goodbye, at once.

use std::future::Future;
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
        Self::with_session(server, SessionConfig::new(nick, protocol::DEFAULT_ROOM))
    }

    /// Defaults for a session configured as `session`.
    pub fn with_session(server: impl Into<String>, session: SessionConfig) -> Self {
        Self {
            server: server.into(),
            session,
            connect_timeout: Duration::from_secs(5),
            tick: Duration::from_millis(250),
        }
    }
}

/// Most bytes queued for the server: the unacknowledged outbox at its
/// largest, escaped, with room to spare. Past it the connection is
/// considered lost (the session re-sends after a resume).
const QUEUE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// After the user asked to leave, how long the client waits for the
/// server's goodbye (and for its last acks) before it exits anyway.
pub const LEAVE_GRACE: Duration = Duration::from_secs(3);

/// At exit, how long the client waits for its last frames (a `quit`) to be
/// written before it closes the connection anyway.
pub const EXIT_FLUSH_MAX: Duration = Duration::from_millis(500);

/// What the user interface is told.
#[derive(Debug)]
pub enum Ui<'a> {
    /// Show this line.
    Show(&'a Line),
    /// The prompt changed (while a line may be being typed).
    Prompt(&'a str),
    /// The session takes the next typed line now, after this prompt: what
    /// the last line did (a room switch, say) is already in the prompt.
    Ready(&'a str),
}

/// An open connection: frames are read here; writes go through a queue to a
/// writer task, so that a stalled write never stops the session from
/// hearing the server, ticking, or noticing that the server is gone.
struct Link<N: Network> {
    frames: FrameReader<N::Reader, ServerFrame>,
    outbox: Arc<Outbox>,
    writer: JoinHandle<()>,
}

impl<N: Network> Link<N> {
    /// Closes the connection once what is queued is written, or after
    /// `within` if the writes stall (a server that stopped reading).
    async fn close_after_writing(mut self, within: Duration) {
        self.outbox.close(true);
        let _ = tokio::time::timeout(within, &mut self.writer).await;
    }
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

/// The driver's state around the session.
struct Driver<N: Network> {
    network: N,
    config: ClientConfig,
    start: Instant,
    session: Session,
    link: Option<Link<N>>,
    /// When the user asked to leave, if they did.
    leaving_since: Option<Duration>,
    /// A [`Ui::Ready`] was given and no line has come since.
    ready: bool,
}

/// Runs one session until it ends, and tells how it ended.
pub async fn run<N: Network>(
    network: N,
    config: ClientConfig,
    mut input: mpsc::Receiver<String>,
    leave: impl Future<Output = ()>,
    mut ui: impl FnMut(Ui<'_>),
) -> Outcome {
    let mut driver = Driver {
        session: Session::new(config.session.clone()),
        network,
        config,
        start: Instant::now(),
        link: None,
        leaving_since: None,
        ready: false,
    };
    let mut ticks = tokio::time::interval(driver.config.tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut input_open = true;
    tokio::pin!(leave);
    loop {
        if let Some(outcome) = driver.carry_out(&mut ui).await {
            return finish(outcome, &mut input, &mut ui);
        }
        if input_open && !driver.ready && driver.session.wants_input() {
            driver.ready = true;
            ui(Ui::Ready(driver.session.prompt()));
        }
        tokio::select! {
            biased;
            event = next_event(&mut driver.link), if driver.link.is_some() => driver.on_link_event(event),
            () = &mut leave, if driver.leaving_since.is_none() => driver.on_leave(),
            line = input.recv(), if input_open && driver.session.wants_input() => match line {
                Some(line) => {
                    driver.ready = false;
                    driver.session.handle_user_line(line, driver.now());
                }
                None => {
                    input_open = false;
                    driver.session.handle_input_closed(driver.now());
                }
            },
            _ = ticks.tick() => driver.on_tick(),
        }
    }
}

impl<N: Network> Driver<N> {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Carries out the session's actions; the outcome once it is over.
    async fn carry_out(&mut self, ui: &mut impl FnMut(Ui<'_>)) -> Option<Outcome> {
        // Bounded: each action is handled once; a connect is one attempt.
        while let Some(action) = self.session.poll_action() {
            let now = self.now();
            match action {
                SessionAction::Connect => match connect(&self.network, &self.config).await {
                    Ok(opened) => {
                        self.link = Some(opened);
                        self.session.handle_connected(self.now());
                    }
                    Err(reason) => self.session.handle_connect_failed(&reason, now),
                },
                SessionAction::Send(frame) => {
                    let Some(open) = self.link.as_ref() else {
                        continue;
                    };
                    if open.outbox.push(protocol::encode(&frame)).is_err() {
                        self.link = None;
                        self.session.handle_disconnected(now);
                    }
                }
                SessionAction::Show(line) => ui(Ui::Show(&line)),
                SessionAction::Prompt(prompt) => ui(Ui::Prompt(&prompt)),
                SessionAction::Disconnect => {
                    if self.link.take().is_some() {
                        self.session.handle_disconnected(now);
                    }
                }
                SessionAction::Exit(outcome) => {
                    if let Some(link) = self.link.take() {
                        link.close_after_writing(EXIT_FLUSH_MAX).await;
                    }
                    return Some(outcome);
                }
            }
        }
        None
    }

    fn on_link_event(&mut self, event: LinkEvent) {
        let now = self.now();
        match event {
            LinkEvent::Frame(Some(Ok(frame))) => self.session.handle_frame(frame, now),
            LinkEvent::Frame(Some(Err(error))) => {
                tracing::debug!(%error, "bad frame from the server");
                self.link = None;
                self.session.handle_disconnected(now);
            }
            LinkEvent::Frame(None) | LinkEvent::WriterEnded => {
                self.link = None;
                self.session.handle_disconnected(now);
            }
        }
    }

    /// The user wants out (a signal, a closed terminal): leave as `.exit`
    /// does, and at once after [`LEAVE_GRACE`].
    fn on_leave(&mut self) {
        let now = self.now();
        self.leaving_since = Some(now);
        self.session.handle_input_closed(now);
    }

    fn on_tick(&mut self) {
        let now = self.now();
        if self
            .leaving_since
            .is_some_and(|since| now.saturating_sub(since) >= LEAVE_GRACE)
        {
            self.session.handle_abandon(now);
        } else {
            self.session.handle_tick(now);
        }
    }
}

/// Lines handed over but never read are not silently lost.
fn finish(
    mut outcome: Outcome,
    input: &mut mpsc::Receiver<String>,
    ui: &mut impl FnMut(Ui<'_>),
) -> Outcome {
    input.close();
    let mut unsent = 0;
    while let Ok(line) = input.try_recv() {
        unsent += usize::from(!matches!(
            crate::command::parse(&line),
            crate::command::Input::Quit | crate::command::Input::Nothing
        ));
    }
    if unsent > 0 {
        ui(Ui::Show(&Line::Unsent(unsent)));
        outcome.tally.unconfirmed += unsent;
    }
    outcome
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

#[cfg(test)]
mod tests;
