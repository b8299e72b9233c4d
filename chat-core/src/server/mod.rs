//! The server driver: accepts connections on any [`Network`] and runs the
//! [`Rooms`] state machine over them, keeping its data through the log
//! when it has one.
//!
//! One task per connection reads frames and writes its outbox
//! ([`connection`]); a ticker task feeds time to the state machine; one
//! writer task makes its records durable ([`writer`]). The state machine
//! and the registry of connections sit behind one mutex ([`state`]) that is
//! never held across an `.await`, so the room never waits for a connection:
//! a broadcast only pushes shared bytes into each recipient's bounded
//! queue. The driver decides nothing: which frames count, when a connection
//! stops being served, when it is paused for its rate, all come from the
//! state machine. Where the state comes from (memory, or a recovered data
//! directory) is [`start`].

mod connection;
mod start;
mod state;
mod writer;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chat_net::{Listener, NetError, Network, Storage};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use connection::LINGER;
pub use start::{Keeping, Start, open, wal_config};
pub use state::Observed;

use crate::buggify::{self, Site};
use crate::room::{ConnectionId, RestoreError, RoomConfig, Rooms, Stats};
use crate::store::StoreError;
use state::ServerState;

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

/// Why a server could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Listening or accepting failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The data directory could not be opened or recovered, or writing to
    /// it failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The recovered log does not rebuild a state.
    #[error(transparent)]
    Restore(#[from] RestoreError),
}

/// What the tasks of one server share.
struct Shared {
    state: Mutex<ServerState>,
    config: ServerConfig,
    start: Instant,
    /// Records wait for the writer.
    records_ready: Notify,
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
        self.release(state);
    }

    /// Releases the lock, then wakes the writers that have new frames, and
    /// the log's writer if there are records.
    fn release(&self, mut state: MutexGuard<'_, ServerState>) {
        let to_wake = std::mem::take(&mut state.to_wake);
        let records = state.rooms.has_records();
        drop(state);
        for link in to_wake {
            link.outbox.wake_writer();
        }
        if records {
            self.records_ready.notify_one();
        }
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

/// Runs a server on `listener` until `shutdown` completes, then tells every
/// client, flushes their queues (for at most the configured time) and
/// returns. With a log, every record is written before the server returns;
/// a failed write stops the server at once with an error (nothing unsaved
/// is ever acknowledged, and nothing more is).
///
/// `on_start` receives a handle for observing the server (tests, simulations).
pub async fn run<N: Network, S: Storage>(
    listener: N::Listener,
    config: ServerConfig,
    start: Start<S>,
    shutdown: impl Future<Output = ()>,
    on_start: impl FnOnce(ServerHandle),
) -> Result<(), ServerError> {
    match listener.local_addr() {
        Ok(addr) => tracing::info!("Listening on {addr}."),
        Err(error) => tracing::warn!("Cannot tell the listening address: {error}."),
    }
    let shared = Arc::new(Shared {
        state: Mutex::new(ServerState::new(start.rooms)),
        config,
        start: Instant::now(),
        records_ready: Notify::new(),
    });
    on_start(ServerHandle {
        shared: shared.clone(),
    });
    let stop_writing = CancellationToken::new();
    let writing = start
        .wal
        .map(|wal| tokio::spawn(writer::persist(shared.clone(), wal, stop_writing.clone())));
    let mut writing = std::pin::pin!(async move {
        match writing {
            Some(task) => task
                .await
                .unwrap_or_else(|error| panic!("the log writer panicked: {error}")),
            None => std::future::pending().await,
        }
    });
    let tasks = TaskTracker::new();
    let stop_ticking = CancellationToken::new();
    tasks.spawn(tick_loop(shared.clone(), stop_ticking.clone()));
    let failed = tokio::select! {
        biased;
        result = &mut writing => Some(result),
        () = accept_loop::<N>(listener, &shared, &tasks, shutdown) => None,
    };
    if let Some(result) = failed {
        return stop_after_failure(&shared, &tasks, &stop_ticking, result);
    }
    shared.handle(|rooms, now| rooms.handle_shutdown(now));
    stop_ticking.cancel();
    tasks.close();
    if tokio::time::timeout(shared.config.shutdown_flush_timeout, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("Some clients did not take their last messages in time.");
    }
    stop_writing.cancel();
    if shared.lock().rooms.is_persistent() {
        writing.await?;
    }
    Ok(())
}

/// The log's writer failed: stop at once, telling nobody anything more
/// (what waits for the failed write must never be sent).
fn stop_after_failure(
    shared: &Shared,
    tasks: &TaskTracker,
    stop_ticking: &CancellationToken,
    result: Result<(), StoreError>,
) -> Result<(), ServerError> {
    stop_ticking.cancel();
    tasks.close();
    let state = shared.lock();
    for link in state.links.values() {
        link.outbox.close(false);
    }
    drop(state);
    match result {
        Err(error) => {
            tracing::error!(
                "Writing the log failed: {error}. Stopping: nothing more is acknowledged; restart the server to recover from what is on disk."
            );
            Err(error.into())
        }
        Ok(()) => Ok(()),
    }
}

async fn accept_loop<N: Network>(
    mut listener: N::Listener,
    shared: &Arc<Shared>,
    tasks: &TaskTracker,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    // Bounded by the shutdown future: each pass accepts one connection or
    // backs off after a failure.
    loop {
        if buggify::fire(Site::AcceptFails) {
            // As when out of file descriptors: the connection waits in the
            // backlog while the server backs off.
            tracing::warn!(
                "Accepting failed (a simulated fault); accepting again in {:?}.",
                shared.config.accept_backoff
            );
            tokio::time::sleep(shared.config.accept_backoff).await;
            continue;
        }
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
                tasks.spawn(connection::serve::<N>(shared.clone(), id, connection));
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
            _ = ticks.tick() => {
                if buggify::fire(Site::DelayedTick) {
                    let late = Duration::from_millis(buggify::below(500));
                    tokio::time::sleep(late).await;
                }
                shared.handle(|rooms, now| rooms.handle_tick(now));
            }
        }
    }
}
