//! What the room state machine tells its driver: actions to carry out,
//! console notices, and counters of the mechanisms at work.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::protocol::ErrorCode;

/// A connection, as numbered by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "#{}", self.0)
    }
}

/// A room, as numbered by [`super::Rooms`]. Never reused: a room that is
/// freed and created again under the same name gets a new id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoomId(pub u64);

/// A member: the server's side of a client session, which outlives its
/// connection for the grace period. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MemberId(pub u64);

/// The connections a broadcast goes to, fixed when its event was emitted
/// (shared by consecutive broadcasts while the room's membership is the
/// same). Sorted, without duplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipients(pub Arc<[ConnectionId]>);

impl Recipients {
    /// Whether `connection` is one of them.
    pub fn contains(&self, connection: ConnectionId) -> bool {
        self.0.binary_search(&connection).is_ok()
    }

    /// True when both are the same shared list (not merely equal lists).
    pub fn same(&self, other: &Recipients) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The connections, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.0.iter().copied()
    }
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    /// The peer closed it, or it broke.
    PeerClosed,
    /// The peer did not read and its outbound queue filled up.
    QueueOverflow,
    /// Nothing arrived within the heartbeat timeout.
    HeartbeatTimeout,
    /// The same session resumed on a newer connection.
    Evicted,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            CloseReason::PeerClosed => "connection closed",
            CloseReason::QueueOverflow => "outbound queue full, the client does not read",
            CloseReason::HeartbeatTimeout => "no heartbeat within the timeout",
            CloseReason::Evicted => "the session resumed on a newer connection",
        })
    }
}

/// What the server console shows (the driver logs these). Serializable
/// for [`crate::report`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// A connection was accepted.
    ConnectionEstablished {
        /// Which connection.
        connection: ConnectionId,
        /// From where.
        peer: IpAddr,
    },
    /// A client started a session with this nickname.
    Nickname {
        /// Which connection.
        connection: ConnectionId,
        /// The nickname.
        nick: String,
    },
    /// A session ended.
    LeftServer(String),
    /// A session resumed on a new connection.
    Resumed {
        /// Which connection.
        connection: ConnectionId,
        /// Whose.
        nick: String,
        /// Events replayed to it.
        replayed: usize,
    },
    /// A resume named a session that is gone; the client joins afresh.
    SessionGone {
        /// Which connection.
        connection: ConnectionId,
        /// The nickname it asked for.
        nick: String,
    },
    /// A member changed nickname.
    Renamed {
        /// The old nickname.
        from: String,
        /// The new one.
        to: String,
    },
    /// A client was refused something, or misbehaved, and was told why.
    Refused {
        /// Which connection.
        connection: ConnectionId,
        /// What it was told.
        code: ErrorCode,
        /// The message it got.
        message: String,
    },
    /// The server dropped a connection.
    Dropped {
        /// Which connection.
        connection: ConnectionId,
        /// Whose, if it had a session.
        nick: Option<String>,
        /// Why.
        reason: CloseReason,
    },
    /// A connection sends faster than the message rate: it is throttled.
    Throttled {
        /// Which connection.
        connection: ConnectionId,
    },
    /// A periodic summary of the server's state.
    Summary(Summary),
    /// The server is shutting down.
    ShuttingDown,
}

/// The periodic summary line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Open connections.
    pub connections: usize,
    /// Sessions, online or within their grace period.
    pub members: usize,
    /// Rooms.
    pub rooms: usize,
    /// Resumes since the last summary.
    pub resumes: u64,
    /// Messages accepted since the last summary, per second.
    pub messages_per_second: u64,
}

impl Notice {
    /// Whether this belongs in the console at info level (else debug).
    pub fn is_info(&self) -> bool {
        !matches!(
            self,
            Notice::Dropped {
                reason: CloseReason::PeerClosed | CloseReason::Evicted,
                ..
            } | Notice::Throttled { .. }
        )
    }

    /// The connection the notice is about, if one.
    pub fn connection(&self) -> Option<ConnectionId> {
        match self {
            Notice::ConnectionEstablished { connection, .. }
            | Notice::Nickname { connection, .. }
            | Notice::Resumed { connection, .. }
            | Notice::SessionGone { connection, .. }
            | Notice::Refused { connection, .. }
            | Notice::Dropped { connection, .. }
            | Notice::Throttled { connection } => Some(*connection),
            _ => None,
        }
    }
}

impl fmt::Display for Notice {
    /// The console text. The original program's lines are kept word for
    /// word; the connection and peer go in the log line's fields.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::ConnectionEstablished { .. } => {
                formatter.write_str("Connection has been established with a new client.")
            }
            Notice::Nickname { nick, .. } => {
                write!(formatter, "The nickname of this client is {nick}.")
            }
            Notice::LeftServer(nick) => write!(formatter, "{nick} has left the server."),
            Notice::Resumed { nick, replayed, .. } => {
                write!(
                    formatter,
                    "{nick} resumed their session ({replayed} events replayed)."
                )
            }
            Notice::SessionGone { nick, .. } => write!(
                formatter,
                "{nick} came back after their session ended; they join afresh."
            ),
            Notice::Renamed { from, to } => write!(formatter, "{from} is now known as {to}."),
            Notice::Refused { code, message, .. } => {
                write!(formatter, "Refused ({code}): {message}")
            }
            Notice::Dropped {
                nick: Some(nick),
                reason,
                ..
            } => write!(formatter, "Dropped the connection of {nick}: {reason}."),
            Notice::Dropped {
                nick: None, reason, ..
            } => write!(formatter, "Dropped a connection: {reason}."),
            Notice::Throttled { .. } => formatter.write_str("Throttled a client sending too fast."),
            Notice::Summary(summary) => write!(
                formatter,
                "Summary: {} connections, {} members, {} rooms, {} resumes, {} messages per second.",
                summary.connections,
                summary.members,
                summary.rooms,
                summary.resumes,
                summary.messages_per_second
            ),
            Notice::ShuttingDown => formatter.write_str("Server is shutting down."),
        }
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Queue `frame` on one connection.
    Send {
        /// The connection.
        to: ConnectionId,
        /// The encoded frame.
        frame: Bytes,
    },
    /// Queue `frame` on every connection of `recipients`.
    Broadcast {
        /// The room of the event.
        room: RoomId,
        /// Who gets it, fixed when the event was emitted.
        recipients: Recipients,
        /// The encoded frame, shared by all recipients.
        frame: Bytes,
    },
    /// An event of a member's private stream: queue it on the member's
    /// connection, if it has one.
    Private {
        /// Whose private stream.
        owner: MemberId,
        /// The member's connection, if it is attached.
        connection: Option<ConnectionId>,
        /// The encoded event.
        frame: Bytes,
    },
    /// Queue missed events on one connection at once, beyond its live queue
    /// limit (a replay is bounded by the history kept).
    Replay {
        /// The connection.
        to: ConnectionId,
        /// The encoded frames, in order.
        frames: Vec<Bytes>,
    },
    /// Close a connection: after writing what is queued (`flush`), or at once.
    Close {
        /// The connection.
        connection: ConnectionId,
        /// Write what is queued first.
        flush: bool,
    },
    /// Stop (`paused`) or resume reading a connection: it sends faster than
    /// the message rate, and what it sent waits in the kernel's buffers.
    Throttle {
        /// The connection.
        connection: ConnectionId,
        /// True to stop reading, false to read again.
        paused: bool,
    },
    /// Show a line on the server console.
    Log(Notice),
}

/// Counts of the mechanisms at work, for tests and summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sessions resumed on a new connection.
    pub resumes: u64,
    /// Events replayed to resumed sessions.
    pub replayed_events: u64,
    /// Retried messages recognised and not delivered twice.
    pub dedup_hits: u64,
    /// Gap notices sent.
    pub gap_notices: u64,
    /// Connections dropped because their queue was full.
    pub slow_readers_dropped: u64,
    /// Connections dropped for silence.
    pub dead_connections_dropped: u64,
    /// Older connections evicted by a resume.
    pub evictions: u64,
    /// Sessions ended after the grace period.
    pub sessions_expired: u64,
    /// Connections closed for not finishing the hello in time.
    pub handshake_timeouts: u64,
    /// Times a connection was throttled for its message rate.
    pub throttles: u64,
    /// Connections closed for flooding.
    pub floods_closed: u64,
    /// Connections refused for a connection limit.
    pub connections_refused: u64,
    /// Frames that arrived after their connection stopped being served.
    pub frames_ignored: u64,
    /// Resumes refused (wrong, stale or expired token).
    pub resumes_refused: u64,
    /// Room messages accepted.
    pub messages: u64,
    /// Private messages accepted.
    pub private_messages: u64,
    /// Nickname changes.
    pub renames: u64,
    /// Rooms freed after their last member left.
    pub rooms_freed: u64,
    /// History frames sent to new members.
    pub history_sent: u64,
}
