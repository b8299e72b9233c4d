//! What the server's tasks share under one lock: the state machine, the
//! connections' queues, and the carrying out of released actions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::fanout::Run;
use crate::outbox::{Outbox, PushError};
use crate::room::{Action, CloseReason, ConnectionId, MemberId, Notice, RoomId, Rooms};

/// One connection as the driver holds it: its outbound queue, and whether
/// the state machine paused reading it.
pub(super) struct Link {
    pub outbox: Outbox,
    paused: AtomicBool,
    resumed: Notify,
    pub peer: SocketAddr,
}

impl Link {
    pub fn new(queue_bytes_max: usize, peer: SocketAddr) -> Self {
        Self {
            outbox: Outbox::new(queue_bytes_max),
            paused: AtomicBool::new(false),
            resumed: Notify::new(),
            peer,
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        if !paused {
            self.resumed.notify_waiters();
        }
    }

    /// Completes once reading is no longer paused.
    pub async fn until_resumed(&self) {
        loop {
            let notified = self.resumed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_paused() {
                return;
            }
            notified.await;
        }
    }
}

/// Called with every event as it is released and every console notice (see
/// [`super::ServerHandle::set_observer`]).
pub(super) type Observer = Box<dyn FnMut(Observed<'_>) + Send>;

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

/// Everything behind the server's lock.
pub(super) struct ServerState {
    pub rooms: Rooms,
    pub links: BTreeMap<ConnectionId, Arc<Link>>,
    pub next_connection: u64,
    /// Most bytes ever queued for one connection.
    pub queued_bytes_peak: usize,
    /// Links whose writers must be woken once the lock is released (a
    /// wake-up may make a system call to unpark a runtime thread, which the
    /// other connections should not wait for).
    pub to_wake: Vec<Arc<Link>>,
    pub observer: Option<Observer>,
}

impl ServerState {
    pub fn new(rooms: Rooms) -> Self {
        Self {
            rooms,
            links: BTreeMap::new(),
            next_connection: 1,
            queued_bytes_peak: 0,
            to_wake: Vec::new(),
            observer: None,
        }
    }

    /// Carries out every action released. A connection whose queue is full
    /// is reported back to the state machine, which may produce more.
    ///
    /// Consecutive broadcasts to the same recipients are gathered into a
    /// [`Run`], so that each recipient gets them in one push.
    pub fn carry_out(&mut self, now: Duration) {
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
            Action::Send { to, frame } => self.send(to, frame, run, overflowed),
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
                    self.send(to, frame, run, overflowed);
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
                if let Some(link) = self.links.get(&to)
                    && link.outbox.push_replay(frames) == Err(PushError::Full)
                {
                    link.outbox.close(false);
                    overflowed.push(to);
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

    /// A frame for one connection: slotted into the run if the connection is
    /// one of its recipients (so it keeps its place), else queued now.
    fn send(
        &mut self,
        to: ConnectionId,
        frame: Bytes,
        run: &mut Option<Run>,
        overflowed: &mut Vec<ConnectionId>,
    ) {
        match run.as_mut() {
            Some(current) if current.recipients().contains(to) => current.interleave(to, frame),
            _ => self.pushes(overflowed).push(to, frame),
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
