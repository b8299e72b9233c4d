//! The frames each side sends. PROTOCOL.md explains them with examples.
//!
//! Two kinds of numbered streams carry events: each room has one (joins,
//! departures, messages, renames), and each session has a private one (the
//! private messages it sent and received). The server numbers every event
//! of a stream from 1, without gaps, so a client can tell what it missed
//! and resume from its last seen number.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A sequence number in one stream, assigned by the server. The first event
/// of a stream has sequence number 1; 0 means "nothing yet".
pub type Seq = u64;

fn is_false(value: &bool) -> bool {
    !*value
}

/// What a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// The first frame: who I am. A refused nickname may be followed by
    /// another hello on the same connection.
    Hello {
        /// Must equal [`super::PROTOCOL_VERSION`].
        version: u32,
        /// The nickname; see [`super::validate_nick`].
        nick: String,
        /// Present to resume an earlier session instead of starting one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<Resume>,
    },
    /// Join a room (created if nobody is in it).
    Join {
        /// The room; see [`super::validate_room`].
        room: String,
    },
    /// Leave one room; the session stays.
    Leave {
        /// The room.
        room: String,
    },
    /// A message to a room.
    Send {
        /// The room; the session must be in it.
        room: String,
        /// Chosen by the client; see PROTOCOL.md, "Message ids".
        id: u64,
        /// The text; see [`super::validate_text`].
        text: String,
        /// True for an action (`/me waves`), shown as `* nick waves`.
        #[serde(default, skip_serializing_if = "is_false")]
        action: bool,
    },
    /// A private message to one nickname.
    Private {
        /// The recipient's nickname.
        to: String,
        /// Chosen by the client, from the same sequence as room messages.
        id: u64,
        /// The text.
        text: String,
        /// True for an action.
        #[serde(default, skip_serializing_if = "is_false")]
        action: bool,
    },
    /// Change nickname.
    Nick {
        /// The new nickname.
        nick: String,
    },
    /// Ask for the list of rooms.
    ListRooms,
    /// Ask who is in a room.
    Who {
        /// The room.
        room: String,
    },
    /// "I am alive"; sent when the client has sent nothing for a while.
    Heartbeat,
    /// End the session: leave every room (`.exit`, `/quit`).
    Quit,
}

/// What a client presents to resume a session after a reconnect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The token from the session's welcome.
    pub token: String,
    /// The server incarnation from that welcome.
    pub incarnation: String,
    /// Per room: the last sequence number the client has shown.
    #[serde(default)]
    pub rooms: BTreeMap<String, Seq>,
    /// The last sequence number of the private stream the client has shown.
    #[serde(default)]
    pub private_seq: Seq,
}

/// Where the events a connection gets from one room start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomStart {
    /// The room.
    pub room: String,
    /// Events after this sequence number follow.
    pub last_seq: Seq,
}

/// A room and how many are in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCount {
    /// The room.
    pub room: String,
    /// Its members.
    pub members: u64,
}

/// What a server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The hello was accepted.
    Welcome {
        /// The protocol version the server speaks.
        version: u32,
        /// The session's nickname.
        nick: String,
        /// The session token; it is needed (with the incarnation) to resume.
        token: String,
        /// Names the server's state: the same as long as the server keeps
        /// its data; sequence numbers of another incarnation mean nothing.
        incarnation: String,
        /// True when this welcome resumes an earlier session.
        resumed: bool,
        /// The rooms the session is in, and where each one's events start.
        rooms: Vec<RoomStart>,
        /// Private events after this sequence number follow.
        private_seq: Seq,
        /// On a resume: how many missed events follow, all streams together.
        replayed: u64,
        /// The server sends a heartbeat at least this often (milliseconds).
        heartbeat_interval_ms: u64,
        /// The server drops a connection silent for this long (milliseconds).
        heartbeat_timeout_ms: u64,
        /// Largest message text the server accepts, in bytes.
        text_bytes_max: usize,
    },
    /// Reply to a join: the member's own `joined` event is `seq`; first come
    /// `history` earlier messages of the room as [`ServerFrame::History`].
    Entered {
        /// The room.
        room: String,
        /// The sequence number of the member's own `joined` event.
        seq: Seq,
        /// How many history frames follow.
        history: u64,
    },
    /// A message said before the member joined (recent history).
    History {
        /// The room.
        room: String,
        /// Its sequence number.
        seq: Seq,
        /// Who said it.
        nick: String,
        /// What was said.
        text: String,
        /// An action.
        #[serde(default, skip_serializing_if = "is_false")]
        action: bool,
    },
    /// Reply to a leave: the session is no longer in the room.
    Parted {
        /// The room.
        room: String,
    },
    /// Event: `nick` joined the room.
    Joined {
        /// The room.
        room: String,
        /// The event's sequence number.
        seq: Seq,
        /// Who joined.
        nick: String,
    },
    /// Event: `nick` left the room.
    Left {
        /// The room.
        room: String,
        /// The event's sequence number.
        seq: Seq,
        /// Who left.
        nick: String,
    },
    /// Event: `nick` said something.
    Message {
        /// The room.
        room: String,
        /// The event's sequence number.
        seq: Seq,
        /// Who said it.
        nick: String,
        /// What was said.
        text: String,
        /// An action.
        #[serde(default, skip_serializing_if = "is_false")]
        action: bool,
    },
    /// Event: a member of the room changed nickname.
    Renamed {
        /// The room.
        room: String,
        /// The event's sequence number.
        seq: Seq,
        /// The old nickname.
        from: String,
        /// The new nickname.
        to: String,
    },
    /// Event of the private stream: a private message this session sent or
    /// received.
    Private {
        /// Its sequence number in this session's private stream.
        seq: Seq,
        /// The sender's nickname when it was sent.
        from: String,
        /// The recipient's nickname when it was sent.
        to: String,
        /// What was said.
        text: String,
        /// An action.
        #[serde(default, skip_serializing_if = "is_false")]
        action: bool,
        /// True in the sender's own copy (the names may have changed since).
        #[serde(default, skip_serializing_if = "is_false")]
        sent: bool,
    },
    /// The client's message `id` was accepted as event `seq` of a room (or,
    /// without `room`, of the sender's private stream).
    Ack {
        /// The client's message id.
        id: u64,
        /// The event's sequence number.
        seq: Seq,
        /// The room, for a room message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The recipient, for a private message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// Events `from..=to` of a room (or, without `room`, of the private
    /// stream) are no longer kept and will not be delivered.
    Gap {
        /// The room; absent for the private stream.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// First sequence number missing.
        from: Seq,
        /// Last sequence number missing.
        to: Seq,
    },
    /// Reply to a nickname change: this is the session's nickname now.
    NickChanged {
        /// The new nickname.
        nick: String,
    },
    /// Reply to `list_rooms`.
    RoomList {
        /// The rooms with the most members first (at most 90).
        rooms: Vec<RoomCount>,
        /// How many rooms there are in all.
        total: u64,
    },
    /// Reply to `who`.
    Members {
        /// The room.
        room: String,
        /// Its members' nicknames, sorted (at most 90).
        nicks: Vec<String>,
        /// How many members it has in all.
        total: u64,
    },
    /// "I am alive"; sent to every connection every heartbeat interval.
    Heartbeat,
    /// Reply to `quit`; the server closes the connection next.
    Bye,
    /// The server is stopping; it closes the connection next.
    Shutdown,
    /// Something was refused. After a fatal code ([`ErrorCode::is_fatal`])
    /// the server closes the connection; otherwise only the request named by
    /// `id` or `room` (or the hello) failed.
    Error {
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
        /// The message id refused, if a message was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The room concerned, if one is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// When trying again may succeed (a nickname held for a lost
        /// connection), in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerFrame {
    /// The sequence number of a stream event (joined, left, message,
    /// renamed, private).
    pub fn event_seq(&self) -> Option<Seq> {
        match self {
            ServerFrame::Joined { seq, .. }
            | ServerFrame::Left { seq, .. }
            | ServerFrame::Message { seq, .. }
            | ServerFrame::Renamed { seq, .. }
            | ServerFrame::Private { seq, .. } => Some(*seq),
            _ => None,
        }
    }

    /// An error frame without id, room or retry time.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerFrame {
        ServerFrame::Error {
            code,
            message: message.into(),
            id: None,
            room: None,
            retry_after_ms: None,
        }
    }
}

/// Why a server refused something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A line that is not a frame this server understands. Fatal.
    BadFrame,
    /// A line longer than [`super::FRAME_BYTES_MAX`]. Fatal.
    FrameTooLarge,
    /// A line that is not valid UTF-8. Fatal.
    InvalidUtf8,
    /// The hello's protocol version is not spoken here. Fatal.
    UnsupportedVersion,
    /// A frame out of order: anything but a hello (or heartbeat) before the
    /// welcome, or a second hello after it. Fatal.
    ProtocolViolation,
    /// No accepted hello within the handshake deadline. Fatal.
    HandshakeTimeout,
    /// The client kept sending faster than the message rate. Fatal.
    RateLimited,
    /// The server, or the client's address, has as many connections as it
    /// allows. Fatal.
    TooManyConnections,
    /// Too many refused hellos on one connection. Fatal.
    TooManyAttempts,
    /// The nickname breaks the rules of [`super::validate_nick`].
    NickInvalid,
    /// Someone already has that nickname (or one that looks the same).
    NickTaken,
    /// The room name breaks the rules of [`super::validate_room`].
    RoomInvalid,
    /// The room has as many members as it allows.
    RoomFull,
    /// The server has as many rooms as it allows.
    TooManyRooms,
    /// The session is in as many rooms as one session may be.
    RoomLimit,
    /// The session is not in that room.
    NotInRoom,
    /// The session is in that room already.
    AlreadyInRoom,
    /// The message text breaks the rules of [`super::validate_text`].
    TextInvalid,
    /// A message id of 0 or above [`super::MESSAGE_ID_MAX`].
    IdInvalid,
    /// A message id not above the last one accepted, and not a retry the
    /// server still remembers.
    IdStale,
    /// A retry of an id that was used for a different message.
    IdConflict,
    /// Nobody has that nickname.
    NoSuchNick,
    /// The resume token is unknown or expired, or belongs to another server
    /// incarnation: send a fresh hello.
    SessionUnknown,
}

impl ErrorCode {
    /// Whether the server closes the connection after this error.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            ErrorCode::BadFrame
                | ErrorCode::FrameTooLarge
                | ErrorCode::InvalidUtf8
                | ErrorCode::UnsupportedVersion
                | ErrorCode::ProtocolViolation
                | ErrorCode::HandshakeTimeout
                | ErrorCode::RateLimited
                | ErrorCode::TooManyConnections
                | ErrorCode::TooManyAttempts
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The wire name, which is what people see in logs and `nc`.
        let name = serde_json::to_value(self)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        formatter.write_str(&name)
    }
}
