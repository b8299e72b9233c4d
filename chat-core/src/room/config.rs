//! Every limit and timeout of the room state machine, with its default.
//!
//! Each is a named setting so that an operator can see it (`chat-cli server
//! --help` lists them) and a test can show what happens at the limit.

use std::time::Duration;

use crate::protocol;

/// Limits and timeouts of the room state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomConfig {
    /// The server sends a heartbeat to every connection this often.
    pub heartbeat_interval: Duration,
    /// A connection from which nothing arrived for this long is dropped.
    pub heartbeat_timeout: Duration,
    /// A connection must have its hello accepted within this long.
    pub handshake_timeout: Duration,
    /// A session whose connection is gone ends after this long.
    pub session_grace: Duration,
    /// Events kept per room for replay on resume.
    pub history_max: usize,
    /// Bytes of encoded events kept per room.
    pub history_bytes_max: usize,
    /// Events kept per session's private stream.
    pub private_history_max: usize,
    /// Bytes kept per session's private stream.
    pub private_history_bytes_max: usize,
    /// Bytes of history kept by the whole server, every stream together;
    /// past it the longest history loses its oldest events first.
    pub history_bytes_total_max: usize,
    /// Recent messages a new member of a room is shown.
    pub history_on_join: usize,
    /// Largest message text, in bytes.
    pub text_bytes_max: usize,
    /// Most rooms on one server.
    pub rooms_max: usize,
    /// Most members of one room.
    pub room_members_max: usize,
    /// Most rooms one session is in.
    pub rooms_per_session_max: usize,
    /// Most sessions (members) on one server, online or within their grace.
    pub sessions_max: usize,
    /// Most connections open at once.
    pub connections_max: usize,
    /// Most connections open at once from one IP address.
    pub connections_per_address_max: usize,
    /// Refused hellos allowed on one connection before it is closed.
    pub hello_attempts_max: u32,
    /// Messages per second a connection may send, on average (0: no limit).
    pub message_rate: u32,
    /// Messages a connection may send at once above the average rate.
    pub message_burst: u32,
    /// A connection that stays throttled this long is a flood: closed.
    pub flood_timeout: Duration,
    /// Message ids remembered per session to re-acknowledge retries.
    pub acks_remembered_max: usize,
    /// Bytes of log written since the last snapshot after which a new
    /// snapshot is taken (and older log segments removed).
    pub snapshot_after_bytes: usize,
    /// How long a connection the server is closing may take to flush what
    /// is queued for it before it is cut.
    pub closing_timeout: Duration,
    /// How often the console shows a summary (zero: never).
    pub summary_interval: Duration,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(10),
            session_grace: Duration::from_secs(30),
            history_max: 1024,
            history_bytes_max: 1024 * 1024,
            private_history_max: 256,
            private_history_bytes_max: 256 * 1024,
            history_bytes_total_max: 64 * 1024 * 1024,
            history_on_join: 20,
            text_bytes_max: protocol::TEXT_BYTES_MAX,
            rooms_max: 1024,
            room_members_max: 10_000,
            rooms_per_session_max: 32,
            sessions_max: 20_000,
            connections_max: 20_000,
            connections_per_address_max: 64,
            hello_attempts_max: 8,
            message_rate: 20,
            message_burst: 100,
            flood_timeout: Duration::from_secs(30),
            acks_remembered_max: 512,
            snapshot_after_bytes: 64 * 1024 * 1024,
            closing_timeout: Duration::from_secs(5),
            summary_interval: Duration::from_secs(60),
        }
    }
}
