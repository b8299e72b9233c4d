//! The server driver: accepts connections on any [`Network`] and runs the
//! [`Rooms`] state machine over them.
//!
//! One task per connection reads frames and writes its [`Outbox`]; a ticker
//! task feeds time to the state machine. The state machine and the registry
//! of connections sit behind one mutex that is never held across an
//! `.await`, so the room never waits for a connection: a broadcast only
//! pushes shared bytes into each recipient's bounded queue. The driver
//! decides nothing: which frames count, when a connection stops being
//! served, when it is paused for its rate, all come from the state machine.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use chat_net::{Connection, Listener, NetError, Network};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::fanout::Run;
use crate::outbox::{Outbox, PushError, write_loop};
use crate::protocol::{ClientFrame, FRAME_BYTES_MAX, FrameError};
use crate::reader::{FrameReader, Read};
use crate::room::{
    Action, CloseReason, ConnectionId, MemberId, Notice, RoomConfig, RoomId, Rooms, Stats,
};

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

/// Least time between two reports that bytes of an unfinished frame
/// arrived on one connection (each takes the state lock).
const PROGRESS_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// How a connection task's main loop ended.
enum Ending {
    /// The state machine closed it at once.
    Aborted,
    /// The peer closed its side.
    PeerClosed,
    /// The server closed it after writing everything queued.
    Flushed(std::io::Result<()>),
}

/// One connection as the driver holds it: its outbound queue, and whether
/// the state machine paused reading it.
struct Link {
    outbox: Outbox,
    paused: AtomicBool,
    resumed: Notify,
    peer: SocketAddr,
}

impl Link {
    fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        if !paused {
            self.resumed.notify_waiters();
        }
    }

    /// Completes once reading is no longer paused.
    async fn until_resumed(&self) {
        loop {
            let notified = self.resumed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.paused.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

struct ServerState {
    rooms: Rooms,
    links: BTreeMap<ConnectionId, Arc<Link>>,
    next_connection: u64,
    /// Most bytes ever queued for one connection.
    queued_bytes_peak: usize,
    /// Links whose writers must be woken once the lock is released (a
    /// wake-up may make a system call to unpark a runtime thread, which the
    /// other connections should not wait for).
    to_wake: Vec<Arc<Link>>,
    observer: Option<Observer>,
}

/// Called with every event as it is released and every console notice (see
/// [`ServerHandle::set_observer`]).
type Observer = Box<dyn FnMut(Observed<'_>) + Send>;

/// What a server observer (a test or a simulation) is shown.
#[derive(Debug)]
pub enum Observed<'a> {
    /// A room event (joined, left, message, renamed), encoded, as released.
    Event {
        /// The room.
        room: RoomId,
        /// The encoded event.
        frame: &'a Bytes,
    },
    /// A private event, encoded, as released, and whose stream it is.
    Private {
        /// The member whose private stream it belongs to.
        owner: MemberId,
        /// The encoded event.
        frame: &'a Bytes,
    },
    /// A console notice.
    Notice(&'a Notice),
}

/// What the tasks of one server share.
struct Shared {
    state: Mutex<ServerState>,
    config: ServerConfig,
    start: Instant,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ServerState> {
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

impl ServerState {
    /// Carries out every action released. A connection whose queue is full
    /// is reported back to the state machine, which may produce more.
    ///
    /// Consecutive broadcasts to the same recipients are gathered into a
    /// [`Run`], so that each recipient gets them in one push.
    fn carry_out(&mut self, now: Duration) {
        let mut overflowed = Vec::new();
        // Bounded: each pass handles what overflowed in the one before, and
        // a connection overflows (and is removed) at most once.
        loop {
            let mut run: Option<Run> = None;
            while let Some(action) = self.rooms.poll_action() {
                self.carry_out_one(action, &mut run, &mut overflowed);
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

    fn carry_out_one(
        &mut self,
        action: Action,
        run: &mut Option<Run>,
        overflowed: &mut Vec<ConnectionId>,
    ) {
        match action {
            Action::Broadcast {
                room,
                recipients,
                frame,
            } => {
                self.observe(Observed::Event {
                    room,
                    frame: &frame,
                });
                match run.as_mut() {
                    Some(current) if current.recipients().same(&recipients) => {
                        current.extend(&frame)
                    }
                    _ => {
                        self.finish_run(run.take(), overflowed);
                        *run = Some(Run::new(recipients, frame));
                    }
                }
            }
            Action::Send { to, frame } => match run.as_mut() {
                Some(current) if current.recipients().contains(to) => current.interleave(to, frame),
                _ => self.push(to, frame, overflowed),
            },
            Action::Private {
                owner,
                connection,
                frame,
            } => {
                self.observe(Observed::Private {
                    owner,
                    frame: &frame,
                });
                if let Some(to) = connection {
                    match run.as_mut() {
                        Some(current) if current.recipients().contains(to) => {
                            current.interleave(to, frame)
                        }
                        _ => self.push(to, frame, overflowed),
                    }
                }
            }
            Action::Log(notice) => {
                self.observe(Observed::Notice(&notice));
                let peer = notice
                    .connection()
                    .and_then(|id| self.links.get(&id))
                    .map(|link| link.peer);
                log(&notice, peer);
            }
            Action::Replay { to, frames } => {
                self.finish_run(run.take(), overflowed);
                if let Some(link) = self.links.get(&to) {
                    let _ = link.outbox.push_replay(frames);
                }
            }
            Action::Close { connection, flush } => {
                self.finish_run(run.take(), overflowed);
                if let Some(link) = self.links.get(&connection) {
                    link.outbox.close(flush);
                    // A paused reader must see the close too.
                    link.set_paused(false);
                }
            }
            Action::Throttle { connection, paused } => {
                if let Some(link) = self.links.get(&connection) {
                    link.set_paused(paused);
                }
            }
        }
    }

    fn observe(&mut self, observed: Observed<'_>) {
        if let Some(observer) = self.observer.as_mut() {
            observer(observed);
        }
    }

    /// Pushes a run's frames to each of its recipients.
    fn finish_run(&mut self, run: Option<Run>, overflowed: &mut Vec<ConnectionId>) {
        let Some(run) = run else {
            return;
        };
        let mut pushes = self.pushes(overflowed);
        run.finish(|to, frames| pushes.push(to, frames));
    }

    fn push(&mut self, to: ConnectionId, frame: Bytes, overflowed: &mut Vec<ConnectionId>) {
        self.pushes(overflowed).push(to, frame);
    }

    /// What queuing frames needs, borrowed apart from the state machine.
    fn pushes<'a>(&'a mut self, overflowed: &'a mut Vec<ConnectionId>) -> Pushes<'a> {
        Pushes {
            links: &self.links,
            queued_bytes_peak: &mut self.queued_bytes_peak,
            to_wake: &mut self.to_wake,
            overflowed,
        }
    }
}

/// The parts of [`ServerState`] that queuing frames needs.
struct Pushes<'a> {
    links: &'a BTreeMap<ConnectionId, Arc<Link>>,
    queued_bytes_peak: &'a mut usize,
    to_wake: &'a mut Vec<Arc<Link>>,
    overflowed: &'a mut Vec<ConnectionId>,
}

impl Pushes<'_> {
    /// Queues frames for one connection. A connection whose queue is full is
    /// noted, and its queue closed at once so that nothing after the refused
    /// frames is written.
    fn push(&mut self, to: ConnectionId, frames: Bytes) {
        let Some(link) = self.links.get(&to) else {
            return;
        };
        match link.outbox.push_without_waking(frames) {
            Ok(pushed) => {
                *self.queued_bytes_peak = (*self.queued_bytes_peak).max(pushed.queued);
                if pushed.was_empty {
                    self.to_wake.push(link.clone());
                }
            }
            Err(PushError::Full) => {
                link.outbox.close(false);
                self.overflowed.push(to);
            }
            Err(PushError::Closed) => {}
        }
    }
}

/// Releases the lock, then wakes the writers that have new frames.
fn unlock_and_wake(mut state: MutexGuard<'_, ServerState>) {
    let to_wake = std::mem::take(&mut state.to_wake);
    drop(state);
    for link in to_wake {
        link.outbox.wake_writer();
    }
}

/// Logs a notice: the message is the console text (the original program's
/// lines word for word), the connection and its peer are fields.
fn log(notice: &Notice, peer: Option<SocketAddr>) {
    let connection = notice.connection().map(|id| id.0);
    match (notice.is_info(), connection, peer) {
        (true, Some(connection), Some(peer)) => tracing::info!(connection, %peer, "{notice}"),
        (true, Some(connection), None) => tracing::info!(connection, "{notice}"),
        (true, None, _) => tracing::info!("{notice}"),
        (false, Some(connection), _) => tracing::debug!(connection, "{notice}"),
        (false, None, _) => tracing::debug!("{notice}"),
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

    /// Calls `observer` with every event and console notice, under the
    /// server's lock (keep it short).
    pub fn set_observer(&self, observer: impl FnMut(Observed<'_>) + Send + 'static) {
        self.shared.lock().observer = Some(Box::new(observer));
    }
}

/// What a server starts from: its state machine, built by the caller (fresh,
/// or recovered from a data directory).
pub struct Start {
    /// The state machine.
    pub rooms: Rooms,
}

/// Runs a server on `listener` until `shutdown` completes, then tells every
/// client, flushes their queues (for at most the configured time) and returns.
///
/// `on_start` receives a handle for observing the server (tests, simulations).
pub async fn run<N: Network>(
    listener: N::Listener,
    config: ServerConfig,
    start: Start,
    shutdown: impl Future<Output = ()>,
    on_start: impl FnOnce(ServerHandle),
) -> Result<(), NetError> {
    tracing::info!("Server is starting...");
    match listener.local_addr() {
        Ok(addr) => tracing::info!("Listening on {addr}."),
        Err(error) => tracing::warn!("Cannot tell the listening address: {error}."),
    }
    let shared = Arc::new(Shared {
        state: Mutex::new(ServerState {
            rooms: start.rooms,
            links: BTreeMap::new(),
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
    shared.handle(|rooms, now| rooms.handle_shutdown(now));
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
/// before the lock is taken. A decoding error met on the way is handed over
/// after the frames before it.
fn handle_frames<R: tokio::io::AsyncRead + Unpin>(
    shared: &Shared,
    id: ConnectionId,
    first: Result<ClientFrame, FrameError>,
    frames: &mut FrameReader<R, ClientFrame>,
) {
    let mut batch = vec![first];
    while batch.len() < FRAMES_PER_LOCK_MAX && batch.last().is_some_and(Result::is_ok) {
        match frames.try_next() {
            Some(frame) => batch.push(frame),
            None => break,
        }
    }
    let now = shared.now();
    let mut state = shared.lock();
    for frame in batch {
        match frame {
            Ok(frame) => state.rooms.handle_frame(id, frame, now),
            Err(error) => {
                tracing::debug!(connection = id.0, %error, "bad input");
                state.rooms.handle_bad_frame(id, &error, now);
            }
        }
    }
    state.carry_out(now);
    unlock_and_wake(state);
}

async fn serve_connection<N: Network>(
    shared: Arc<Shared>,
    id: ConnectionId,
    connection: Connection<N::Reader, N::Writer>,
) {
    let link = Arc::new(Link {
        outbox: Outbox::new(shared.config.queue_bytes_max),
        paused: AtomicBool::new(false),
        resumed: Notify::new(),
        peer: connection.peer,
    });
    {
        let now = shared.now();
        let mut state = shared.lock();
        state.links.insert(id, link.clone());
        state
            .rooms
            .handle_connection_opened(id, connection.peer.ip(), now);
        state.carry_out(now);
        unlock_and_wake(state);
    }
    let mut frames = FrameReader::<_, ClientFrame>::new(connection.reader, FRAME_BYTES_MAX);
    let ending = serve_until_closed(&shared, id, &link, &mut frames, connection.writer).await;
    match ending {
        Ending::Aborted | Ending::PeerClosed => {}
        Ending::Flushed(Err(error)) => tracing::debug!(connection = id.0, %error, "write failed"),
        Ending::Flushed(Ok(())) if !frames.at_eof() => {
            // Lingering close: read (and drop) what the peer still sends, so
            // that closing with unread input does not reset the connection
            // and destroy the last frames we wrote before the peer reads them.
            let _ = tokio::time::timeout(LINGER, frames.discard_rest()).await;
        }
        Ending::Flushed(Ok(())) => {}
    }
    shared.handle(|rooms, now| rooms.handle_connection_closed(id, CloseReason::PeerClosed, now));
    shared.lock().links.remove(&id);
}

/// Reads frames for the state machine and writes what it queues, until the
/// connection is closed by either side.
async fn serve_until_closed<R, W>(
    shared: &Shared,
    id: ConnectionId,
    link: &Link,
    frames: &mut FrameReader<R, ClientFrame>,
    writer: W,
) -> Ending
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let writing = write_loop(writer, &link.outbox);
    tokio::pin!(writing);
    let mut reading = true;
    let mut progress_reported = Instant::now();
    loop {
        let paused = link.paused.load(Ordering::SeqCst);
        tokio::select! {
            biased;
            () = link.outbox.aborted() => return Ending::Aborted,
            result = &mut writing => return Ending::Flushed(result),
            () = link.until_resumed(), if reading && paused => {}
            read = frames.next_or_progress(), if reading && !paused => match read {
                Read::Frame(frame) => {
                    reading = frame.is_ok();
                    handle_frames(shared, id, frame, frames);
                }
                Read::Progress => {
                    if progress_reported.elapsed() >= PROGRESS_REPORT_INTERVAL {
                        progress_reported = Instant::now();
                        let now = shared.now();
                        shared.lock().rooms.handle_progress(id, now);
                    }
                }
                Read::End if link.outbox.is_closed() => reading = false,
                Read::End => return Ending::PeerClosed,
            },
        }
    }
}
