//! The server driver: accepts connections on any [`Network`] and runs the
//! [`Rooms`] state machine over them.
//!
//! One task per connection reads frames and writes its [`Outbox`]; a ticker
//! task feeds time to the state machine. The state machine and the registry of
//! outboxes sit behind one mutex that is never held across an `.await`, so
//! the room never waits for a connection: a broadcast only pushes shared bytes
//! into each recipient's bounded queue.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use chat_net::{Connection, Listener, NetError, Network};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::fanout::Run;
use crate::outbox::{Outbox, PushError, write_loop};
use crate::protocol::{ClientFrame, FRAME_BYTES_MAX};
use crate::reader::FrameReader;
use crate::room::{Action, CloseReason, ConnectionId, Notice, RoomConfig, Rooms, Stats};

/// Everything the server can be configured with.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The room state machine's limits and timeouts.
    pub room: RoomConfig,
    /// Most bytes queued for one connection before it is dropped.
    pub queue_bytes_max: usize,
    /// How often time is fed to the state machine.
    pub tick: Duration,
    /// How long shutdown waits for queues to be written.
    pub shutdown_flush_timeout: Duration,
    /// Pause after a failed accept (for example, out of file descriptors).
    pub accept_backoff: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            room: RoomConfig::default(),
            queue_bytes_max: 1024 * 1024,
            tick: Duration::from_millis(250),
            shutdown_flush_timeout: Duration::from_secs(5),
            accept_backoff: Duration::from_millis(100),
        }
    }
}

/// Most frames of one connection handled under one lock, so that one busy
/// sender cannot hold the room for long.
const FRAMES_PER_LOCK_MAX: usize = 64;

/// How long a connection closed by the server keeps draining its input.
pub const LINGER: Duration = Duration::from_secs(1);

/// How a connection task's main loop ended.
enum Ending {
    /// The state machine closed it at once.
    Aborted,
    /// The peer closed its side.
    PeerClosed,
    /// The server closed it after writing everything queued.
    Flushed(std::io::Result<()>),
}

struct State {
    rooms: Rooms,
    connections: BTreeMap<ConnectionId, Arc<Outbox>>,
    next_connection: u64,
    /// Most bytes ever queued for one connection.
    queued_bytes_peak: usize,
    /// Outboxes whose writers must be woken once the lock is released (a
    /// wake-up may make a system call to unpark a runtime thread, which the
    /// other connections should not wait for).
    to_wake: Vec<Arc<Outbox>>,
    observer: Option<Observer>,
}

/// Called with every room event and console notice (see
/// [`ServerHandle::set_observer`]).
type Observer = Box<dyn FnMut(Observed<'_>) + Send>;

/// What a server observer (a test or a simulation) is shown.
#[derive(Debug)]
pub enum Observed<'a> {
    /// A room event (joined, left, message), encoded, as broadcast.
    Event(&'a Bytes),
    /// A console notice.
    Notice(&'a Notice),
}

/// What the tasks of one server share.
struct Shared {
    state: Mutex<State>,
    config: ServerConfig,
    start: Instant,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Invariant: the state machine panics only on a broken invariant, and
        // then the whole server is wrong anyway; a poisoned lock is a bug.
        self.state.lock().expect("server state lock poisoned")
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Runs `event` on the state machine and carries out what it asks.
    fn handle(&self, event: impl FnOnce(&mut Rooms, Duration)) {
        let now = self.now();
        let mut state = self.lock();
        event(&mut state.rooms, now);
        state.carry_out(now);
        unlock_and_wake(state);
    }
}

impl State {
    /// Carries out every pending action. A connection whose queue is full is
    /// reported back to the state machine, which may produce more actions.
    ///
    /// Consecutive broadcasts to one room are gathered into a [`Run`], so
    /// that each recipient gets them in one push.
    fn carry_out(&mut self, now: Duration) {
        let mut overflowed = Vec::new();
        loop {
            let mut run: Option<Run> = None;
            while let Some(action) = self.rooms.poll_action() {
                match action {
                    Action::Broadcast { room, frame } => {
                        if let Some(observer) = self.observer.as_mut() {
                            observer(Observed::Event(&frame));
                        }
                        match run.as_mut() {
                            Some(run) if run.room() == room => run.extend(&frame),
                            _ => {
                                self.finish_run(run.take(), &mut overflowed);
                                run = Some(Run::new(room, frame));
                            }
                        }
                    }
                    Action::Send { to, frame } => match run.as_mut() {
                        Some(run) if self.rooms.is_recipient(run.room(), to) => {
                            run.interleave(to, frame);
                        }
                        _ => self.push(to, frame, &mut overflowed),
                    },
                    Action::Log(notice) => {
                        if let Some(observer) = self.observer.as_mut() {
                            observer(Observed::Notice(&notice));
                        }
                        log(&notice);
                    }
                    Action::Replay { to, frames } => {
                        self.finish_run(run.take(), &mut overflowed);
                        if let Some(outbox) = self.connections.get(&to) {
                            let _ = outbox.push_replay(frames);
                        }
                    }
                    Action::Close { connection, flush } => {
                        self.finish_run(run.take(), &mut overflowed);
                        if let Some(outbox) = self.connections.get(&connection) {
                            outbox.close(flush);
                        }
                    }
                }
            }
            self.finish_run(run.take(), &mut overflowed);
            if overflowed.is_empty() {
                return;
            }
            for connection in overflowed.drain(..) {
                self.rooms
                    .handle_connection_closed(connection, CloseReason::QueueOverflow, now);
            }
        }
    }

    /// Pushes a run's frames to every recipient in its room.
    fn finish_run(&mut self, run: Option<Run>, overflowed: &mut Vec<ConnectionId>) {
        let Some(run) = run else {
            return;
        };
        let room = run.room();
        let (rooms, mut pushes) = self.split(overflowed);
        run.finish(rooms.recipients(room), |to, frames| {
            pushes.push(to, frames);
        });
    }

    fn push(&mut self, to: ConnectionId, frame: Bytes, overflowed: &mut Vec<ConnectionId>) {
        self.split(overflowed).1.push(to, frame);
    }

    /// The room, to read, beside what queuing frames needs.
    fn split<'a>(&'a mut self, overflowed: &'a mut Vec<ConnectionId>) -> (&'a Rooms, Pushes<'a>) {
        let pushes = Pushes {
            connections: &self.connections,
            queued_bytes_peak: &mut self.queued_bytes_peak,
            to_wake: &mut self.to_wake,
            overflowed,
        };
        (&self.rooms, pushes)
    }
}

/// The parts of [`State`] that queuing frames needs, borrowed apart from the
/// room (whose recipients are being iterated meanwhile).
struct Pushes<'a> {
    connections: &'a BTreeMap<ConnectionId, Arc<Outbox>>,
    queued_bytes_peak: &'a mut usize,
    to_wake: &'a mut Vec<Arc<Outbox>>,
    overflowed: &'a mut Vec<ConnectionId>,
}

impl Pushes<'_> {
    /// Queues frames for one connection. A connection whose queue is full is
    /// noted, and its queue closed at once so that nothing after the refused
    /// frames is written.
    fn push(&mut self, to: ConnectionId, frames: Bytes) {
        let Some(outbox) = self.connections.get(&to) else {
            return;
        };
        match outbox.push_without_waking(frames) {
            Ok(pushed) => {
                *self.queued_bytes_peak = (*self.queued_bytes_peak).max(pushed.queued);
                if pushed.was_empty {
                    self.to_wake.push(outbox.clone());
                }
            }
            Err(PushError::Full) => {
                outbox.close(false);
                self.overflowed.push(to);
            }
            Err(PushError::Closed) => {}
        }
    }
}

/// Releases the lock, then wakes the writers that have new frames.
fn unlock_and_wake(mut state: MutexGuard<'_, State>) {
    let to_wake = std::mem::take(&mut state.to_wake);
    drop(state);
    for outbox in to_wake {
        outbox.wake_writer();
    }
}

fn log(notice: &Notice) {
    if notice.is_info() {
        tracing::info!("{notice}");
    } else {
        tracing::debug!("{notice}");
    }
}

/// A running server's view for tests: its mechanism counters.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl ServerHandle {
    /// The state machine's counters.
    pub fn stats(&self) -> Stats {
        self.shared.lock().rooms.stats()
    }

    /// Most bytes ever queued for one connection.
    pub fn queued_bytes_peak(&self) -> usize {
        self.shared.lock().queued_bytes_peak
    }

    /// Calls `observer` with every room event and console notice, under the
    /// server's lock (keep it short).
    pub fn set_observer(&self, observer: impl FnMut(Observed<'_>) + Send + 'static) {
        self.shared.lock().observer = Some(Box::new(observer));
    }
}

/// Runs a server on `listener` until `shutdown` completes, then tells every
/// client, flushes their queues (for at most the configured time) and returns.
///
/// `seed` decides session tokens and the incarnation id. `on_start` receives a
/// handle for observing the server (tests, simulations).
pub async fn run<N: Network>(
    listener: N::Listener,
    config: ServerConfig,
    seed: u64,
    shutdown: impl Future<Output = ()>,
    on_start: impl FnOnce(ServerHandle),
) -> Result<(), NetError> {
    tracing::info!("Server is starting...");
    match listener.local_addr() {
        Ok(addr) => tracing::info!("Listening on {addr}."),
        Err(error) => tracing::warn!("Cannot tell the listening address: {error}."),
    }
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            rooms: Rooms::new(config.room.clone(), seed),
            connections: BTreeMap::new(),
            next_connection: 1,
            queued_bytes_peak: 0,
            to_wake: Vec::new(),
            observer: None,
        }),
        config,
        start: Instant::now(),
    });
    on_start(ServerHandle {
        shared: shared.clone(),
    });
    let tasks = TaskTracker::new();
    let stop_ticking = CancellationToken::new();
    tasks.spawn(tick_loop(shared.clone(), stop_ticking.clone()));
    accept_loop::<N>(listener, &shared, &tasks, shutdown).await;
    shared.handle(|rooms, _| rooms.handle_shutdown());
    stop_ticking.cancel();
    tasks.close();
    if tokio::time::timeout(shared.config.shutdown_flush_timeout, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("Some clients did not take their last messages in time.");
    }
    Ok(())
}

async fn accept_loop<N: Network>(
    mut listener: N::Listener,
    shared: &Arc<Shared>,
    tasks: &TaskTracker,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(connection) => {
                let id = {
                    let mut state = shared.lock();
                    let id = ConnectionId(state.next_connection);
                    state.next_connection += 1;
                    id
                };
                tasks.spawn(serve_connection::<N>(shared.clone(), id, connection));
            }
            Err(error) => {
                tracing::warn!(
                    "{error}; accepting again in {:?}.",
                    shared.config.accept_backoff
                );
                tokio::time::sleep(shared.config.accept_backoff).await;
            }
        }
    }
}

async fn tick_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(shared.config.tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            _ = ticks.tick() => shared.handle(|rooms, now| rooms.handle_tick(now)),
        }
    }
}

/// Hands `first` and every further frame already read to the state machine
/// under one lock, then carries out their actions together: a busy sender's
/// messages reach each recipient's queue in one go. The frames are decoded
/// before the lock is taken. Returns a decoding error met on the way.
fn handle_frames<R: tokio::io::AsyncRead + Unpin>(
    shared: &Shared,
    id: ConnectionId,
    first: ClientFrame,
    frames: &mut FrameReader<R, ClientFrame>,
) -> Option<crate::protocol::FrameError> {
    let mut batch = vec![first];
    let mut failed = None;
    while batch.len() < FRAMES_PER_LOCK_MAX {
        match frames.try_next() {
            Some(Ok(frame)) => batch.push(frame),
            Some(Err(error)) => {
                failed = Some(error);
                break;
            }
            None => break,
        }
    }
    let now = shared.now();
    let mut state = shared.lock();
    for frame in batch {
        state.rooms.handle_frame(id, frame, now);
    }
    state.carry_out(now);
    unlock_and_wake(state);
    failed
}

async fn serve_connection<N: Network>(
    shared: Arc<Shared>,
    id: ConnectionId,
    connection: Connection<N::Reader, N::Writer>,
) {
    let outbox = Arc::new(Outbox::new(shared.config.queue_bytes_max));
    {
        let now = shared.now();
        let mut state = shared.lock();
        state.connections.insert(id, outbox.clone());
        state.rooms.handle_connection_opened(id, now);
        state.carry_out(now);
        unlock_and_wake(state);
    }
    tracing::debug!(connection = %id, peer = %connection.peer, "accepted");
    let mut frames = FrameReader::<_, ClientFrame>::new(connection.reader, FRAME_BYTES_MAX);
    let writing = write_loop(connection.writer, &outbox);
    tokio::pin!(writing);
    let mut reading = true;
    let ending = loop {
        tokio::select! {
            biased;
            () = outbox.aborted() => break Ending::Aborted,
            result = &mut writing => break Ending::Flushed(result),
            frame = frames.next(), if reading => match frame {
                // Frames that arrive while the server closes are dropped.
                Some(Ok(_)) if outbox.is_closed() => {}
                Some(Ok(frame)) => {
                    if let Some(error) = handle_frames(&shared, id, frame, &mut frames) {
                        reading = false;
                        tracing::debug!(connection = %id, %error, "bad input");
                        shared.handle(|rooms, now| rooms.handle_bad_frame(id, &error, now));
                    }
                }
                Some(Err(error)) => {
                    reading = false;
                    tracing::debug!(connection = %id, %error, "bad input");
                    shared.handle(|rooms, now| rooms.handle_bad_frame(id, &error, now));
                }
                None if outbox.is_closed() => reading = false,
                None => break Ending::PeerClosed,
            },
        }
    };
    match ending {
        Ending::Aborted => {}
        Ending::PeerClosed => {}
        Ending::Flushed(Err(error)) => tracing::debug!(connection = %id, %error, "write failed"),
        Ending::Flushed(Ok(())) if !frames.at_eof() => {
            // Lingering close: read (and drop) what the peer still sends, so
            // that closing with unread input does not reset the connection
            // and destroy the last frames we wrote before the peer reads them.
            let _ = tokio::time::timeout(LINGER, frames.discard_rest()).await;
        }
        Ending::Flushed(Ok(())) => {}
    }
    shared.handle(|rooms, now| rooms.handle_connection_closed(id, CloseReason::PeerClosed, now));
    shared.lock().connections.remove(&id);
}
