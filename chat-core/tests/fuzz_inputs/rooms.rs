//! `rooms_inputs`: the room state machine fed arbitrary sequences of
//! inputs, as a hostile crowd of clients and an unlucky driver would.
//!
//! Input layout: one byte of flags ([`Flags`]), then inputs until the bytes
//! run out, each an opcode byte and its operands (see [`decode_input`]).
//! Connections are opened by the fuzzer (from a few addresses) and named
//! by index; frames are any client frame, with names and texts mostly from
//! small tables of valid, invalid and look-alike values and sometimes the
//! fuzzer's own, and resumes with tokens learned from welcomes or guessed.
//! The limits are small (see [`config`]) so that short inputs hit them.
//!
//! Properties, after every input: `check_invariants` holds; every frame the
//! server sends is one line that a client decodes, within the frame limit.
//! At the end, for a server that keeps its data: what it logged restores to
//! the same rooms, histories and members, and so does every durable prefix
//! of it (what a crash could leave).
//!
//! The driver keeps the contracts a real one keeps: connection ids are
//! never reused, time never goes back, and only records it was given are
//! acknowledged as durable.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use bytes::Bytes;
use chat_core::protocol::{
    ClientFrame, ErrorCode, FRAME_BYTES_MAX, FrameError, MESSAGE_ID_MAX, PROTOCOL_VERSION, Resume,
    ServerFrame, decode_line,
};
use chat_core::room::{Action, CloseReason, ConnectionId, Lsn, Record, RoomConfig, Rooms};

use super::cursor::Cursor;
use super::restore::restore_log;

/// Most inputs one run handles.
pub const INPUTS_MAX: usize = 1024;

/// Opcodes: the first byte of an input, modulo 16; 7 to 15 are frames, the
/// input clients send most.
pub const OPEN: u8 = 0;
pub const BAD_FRAME: u8 = 1;
pub const PROGRESS: u8 = 2;
pub const CLOSE: u8 = 3;
pub const TICK: u8 = 4;
pub const DURABLE: u8 = 5;
pub const SHUTDOWN: u8 = 6;
pub const FRAME: u8 = 7;

/// Frame kinds: the byte after a frame's connection, modulo 12.
pub const HELLO: u8 = 0;
pub const RESUME: u8 = 1;
pub const JOIN: u8 = 2;
pub const LEAVE: u8 = 3;
pub const SEND: u8 = 4;
pub const PRIVATE: u8 = 5;
pub const NICK: u8 = 6;
pub const LIST_ROOMS: u8 = 7;
pub const WHO: u8 = 8;
pub const HEARTBEAT: u8 = 9;
pub const QUIT: u8 = 10;

/// Nicknames: valid, clashing by case or look (Cyrillic `А`, `I`/`l`),
/// and invalid (white space, `:`, empty, too long).
pub const NICKS: [&str; 11] = [
    "Ann",
    "Bob",
    "ann",
    "\u{410}nn",
    "Ian",
    "lan",
    "Zo\u{eb}",
    "x y",
    "a:b",
    "",
    "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
];

/// Room names: valid, clashing, and invalid.
pub const ROOMS: [&str; 8] = [
    "lobby",
    "Lobby",
    "games",
    "#rust",
    "r4",
    "two words",
    "",
    "l\u{43e}bby",
];

/// Texts: valid, blank, with a control or a bidirectional override, and
/// over the 64-byte limit of [`config`].
pub const TEXTS: [&str; 7] = [
    "hello",
    "hi there",
    "",
    "bell\u{7}",
    "\u{202e}olleh",
    "tab\tand \u{fc}n\u{ef}c\u{f6}d\u{e9}",
    "0123456789012345678901234567890123456789012345678901234567890123456789",
];

/// How far a tick moves time, in milliseconds: within and past each of
/// the timeouts of [`config`].
pub const TICK_MS: [u64; 16] = [
    0, 1, 10, 100, 250, 500, 1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 30_000, 60_000, 300_000,
    3_600_000,
];

/// The addresses connections come from.
const ADDRESSES: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
];

/// What the first byte of an input decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags {
    /// Bit 0: the server keeps its data (records, held actions, restore).
    pub persistent: bool,
    /// Bit 1: every record is durable as soon as it is made.
    pub durable_at_once: bool,
    /// Bit 2: a snapshot every few hundred bytes of log.
    pub snapshots_often: bool,
    /// Bit 3: no message rate.
    pub unlimited_rate: bool,
}

impl Flags {
    /// The flags a byte holds.
    pub fn from_byte(byte: u8) -> Self {
        Self {
            persistent: byte & 1 != 0,
            durable_at_once: byte & 2 != 0,
            snapshots_often: byte & 4 != 0,
            unlimited_rate: byte & 8 != 0,
        }
    }
}

/// Small limits, so that short inputs reach every one of them.
pub fn config(flags: Flags) -> RoomConfig {
    RoomConfig {
        heartbeat_interval: Duration::from_secs(1),
        heartbeat_timeout: Duration::from_secs(3),
        handshake_timeout: Duration::from_secs(2),
        session_grace: Duration::from_secs(5),
        history_max: 4,
        history_bytes_max: 600,
        private_history_max: 3,
        private_history_bytes_max: 400,
        history_bytes_total_max: 1_500,
        history_on_join: 2,
        text_bytes_max: 64,
        rooms_max: 3,
        room_members_max: 3,
        rooms_per_session_max: 2,
        sessions_max: 4,
        connections_max: 6,
        connections_per_address_max: 3,
        hello_attempts_max: 3,
        message_rate: if flags.unlimited_rate { 0 } else { 5 },
        message_burst: 3,
        flood_timeout: Duration::from_secs(3),
        acks_remembered_max: 4,
        snapshot_after_bytes: if flags.snapshots_often { 400 } else { 1 << 20 },
        closing_timeout: Duration::from_secs(1),
        summary_interval: Duration::from_secs(10),
    }
}

/// One input to the state machine. Connections are indexes into those
/// opened so far (modulo their number).
#[derive(Debug)]
pub enum Input {
    Open {
        address: IpAddr,
    },
    Frame {
        connection: usize,
        frame: FrameInput,
    },
    BadFrame {
        connection: usize,
        error: FrameError,
    },
    Progress {
        connection: usize,
    },
    Close {
        connection: usize,
        reason: CloseReason,
    },
    Tick {
        advance: Duration,
    },
    /// Acknowledge this many more of the records written (0: all).
    Durable {
        records: usize,
    },
    Shutdown,
}

/// A client frame, or a resume whose token is known only while running.
#[derive(Debug)]
pub enum FrameInput {
    Plain(ClientFrame),
    Resume {
        nick: String,
        token: Token,
        real_incarnation: bool,
        rooms: BTreeMap<String, u64>,
        private_seq: u64,
    },
}

/// The token a resume presents.
#[derive(Debug)]
pub enum Token {
    /// One of the tokens welcomes carried so far (by index, modulo their
    /// number).
    Learned(usize),
    /// The fuzzer's guess.
    Guessed(String),
}

/// The flags and inputs that `data` holds.
pub fn decode_inputs(data: &[u8]) -> (Flags, Vec<Input>) {
    let mut cursor = Cursor::new(data);
    let flags = Flags::from_byte(cursor.byte());
    let mut inputs = Vec::new();
    while !cursor.is_empty() && inputs.len() < INPUTS_MAX {
        inputs.push(decode_input(&mut cursor));
    }
    (flags, inputs)
}

/// One input: an opcode byte (modulo 16, see [`OPEN`] and the others) and
/// its operands.
pub fn decode_input(cursor: &mut Cursor) -> Input {
    match cursor.byte() % 16 {
        OPEN => Input::Open {
            address: ADDRESSES[cursor.below(ADDRESSES.len())],
        },
        BAD_FRAME => Input::BadFrame {
            connection: usize::from(cursor.byte()),
            error: frame_error(cursor.byte()),
        },
        PROGRESS => Input::Progress {
            connection: usize::from(cursor.byte()),
        },
        CLOSE => Input::Close {
            connection: usize::from(cursor.byte()),
            reason: close_reason(cursor.byte()),
        },
        TICK => Input::Tick {
            advance: Duration::from_millis(TICK_MS[cursor.below(TICK_MS.len())]),
        },
        DURABLE => Input::Durable {
            records: cursor.below(5),
        },
        SHUTDOWN => Input::Shutdown,
        _ => Input::Frame {
            connection: usize::from(cursor.byte()),
            frame: decode_frame(cursor),
        },
    }
}

fn frame_error(byte: u8) -> FrameError {
    match byte % 5 {
        0 => FrameError::TooLarge {
            limit: FRAME_BYTES_MAX,
        },
        1 => FrameError::InvalidUtf8,
        2 => FrameError::Malformed("expected value at line 1 column 1".to_owned()),
        3 => FrameError::Truncated,
        _ => FrameError::Io(std::io::Error::other("connection reset by peer")),
    }
}

fn close_reason(byte: u8) -> CloseReason {
    match byte % 4 {
        0 => CloseReason::PeerClosed,
        1 => CloseReason::QueueOverflow,
        2 => CloseReason::HeartbeatTimeout,
        _ => CloseReason::Evicted,
    }
}

/// A frame: a kind byte (modulo 12, see [`HELLO`] and the others; 11 is a
/// second [`SEND`]) and its fields.
pub fn decode_frame(cursor: &mut Cursor) -> FrameInput {
    let frame = match cursor.byte() % 12 {
        HELLO => ClientFrame::Hello {
            version: version(cursor.byte()),
            nick: cursor.choose(&NICKS, 40),
            resume: None,
        },
        RESUME => return decode_resume(cursor),
        JOIN => ClientFrame::Join { room: room(cursor) },
        LEAVE => ClientFrame::Leave { room: room(cursor) },
        PRIVATE => ClientFrame::Private {
            to: cursor.choose(&NICKS, 40),
            id: message_id(cursor),
            text: cursor.choose(&TEXTS, 80),
            action: cursor.byte() & 1 != 0,
        },
        NICK => ClientFrame::Nick {
            nick: cursor.choose(&NICKS, 40),
        },
        LIST_ROOMS => ClientFrame::ListRooms,
        WHO => ClientFrame::Who { room: room(cursor) },
        HEARTBEAT => ClientFrame::Heartbeat,
        QUIT => ClientFrame::Quit,
        _ => ClientFrame::Send {
            room: room(cursor),
            id: message_id(cursor),
            text: cursor.choose(&TEXTS, 80),
            action: cursor.byte() & 1 != 0,
        },
    };
    FrameInput::Plain(frame)
}

fn decode_resume(cursor: &mut Cursor) -> FrameInput {
    let nick = cursor.choose(&NICKS, 40);
    let token = match cursor.byte() % 4 {
        0 | 1 => Token::Learned(usize::from(cursor.byte())),
        2 => Token::Guessed(cursor.take(16).iter().map(|b| format!("{b:02x}")).collect()),
        _ => Token::Guessed(cursor.text(40)),
    };
    let real_incarnation = !cursor.byte().is_multiple_of(8);
    let rooms = (0..cursor.below(3))
        .map(|_| (room(cursor), seq(cursor.byte())))
        .collect();
    FrameInput::Resume {
        nick,
        token,
        real_incarnation,
        rooms,
        private_seq: seq(cursor.byte()),
    }
}

fn room(cursor: &mut Cursor) -> String {
    cursor.choose(&ROOMS, 40)
}

/// The protocol version, mostly the right one.
fn version(byte: u8) -> u32 {
    match byte {
        0..=223 => PROTOCOL_VERSION,
        _ => u32::from(byte - 224),
    }
}

/// A sequence number a client claims to have seen: small, or the largest.
fn seq(byte: u8) -> u64 {
    match byte {
        255 => u64::MAX,
        _ => u64::from(byte),
    }
}

/// A message id: small ones (so that retries and stale ids happen), any
/// eight bytes, or the edges of the valid range.
fn message_id(cursor: &mut Cursor) -> u64 {
    match cursor.byte() {
        byte @ 0..=199 => u64::from(byte),
        200..=249 => cursor.u64(),
        byte => [0, MESSAGE_ID_MAX, MESSAGE_ID_MAX + 1, u64::MAX][usize::from(byte % 4)],
    }
}

/// What a run did, so that tests can tell that a seed reaches what it is
/// meant to.
#[derive(Debug, Default)]
pub struct Outcome {
    pub welcomes: usize,
    pub resumes: usize,
    /// Room messages broadcast (not their replays or history).
    pub messages: usize,
    pub private_messages: usize,
    pub errors: BTreeMap<ErrorCode, usize>,
    /// The records the server made, in order.
    pub records: Vec<Record>,
    /// Whether its log was restored and compared.
    pub restored: bool,
}

/// The target: see the module docs.
pub fn rooms_inputs(data: &[u8]) -> Outcome {
    let (flags, inputs) = decode_inputs(data);
    let mut driver = Driver::new(flags);
    for input in inputs {
        driver.handle(input);
    }
    driver.finish()
}

/// [`rooms_inputs`] without its outcome, for the list of targets.
pub fn rooms_inputs_target(data: &[u8]) {
    rooms_inputs(data);
}

/// A driver that carries out nothing: it records, checks and answers.
struct Driver {
    flags: Flags,
    config: RoomConfig,
    rooms: Rooms,
    now: Duration,
    opened: Vec<ConnectionId>,
    tokens: Vec<String>,
    durable: Lsn,
    outcome: Outcome,
}

impl Driver {
    fn new(flags: Flags) -> Self {
        let config = config(flags);
        let rooms = Rooms::new(
            config.clone(),
            "incarnation-fuzz".to_owned(),
            [7; 32],
            flags.persistent,
        );
        Self {
            flags,
            config,
            rooms,
            now: Duration::ZERO,
            opened: Vec::new(),
            tokens: Vec::new(),
            durable: 0,
            outcome: Outcome::default(),
        }
    }

    fn connection(&self, index: usize) -> Option<ConnectionId> {
        (!self.opened.is_empty()).then(|| self.opened[index % self.opened.len()])
    }

    fn handle(&mut self, input: Input) {
        let now = self.now;
        match input {
            Input::Open { address } => {
                let connection = ConnectionId(self.opened.len() as u64 + 1);
                self.opened.push(connection);
                self.rooms
                    .handle_connection_opened(connection, address, now);
            }
            Input::Frame { connection, frame } => {
                if let Some(connection) = self.connection(connection) {
                    let frame = self.client_frame(frame);
                    self.rooms.handle_frame(connection, frame, now);
                }
            }
            Input::BadFrame { connection, error } => {
                if let Some(connection) = self.connection(connection) {
                    self.rooms.handle_bad_frame(connection, &error, now);
                }
            }
            Input::Progress { connection } => {
                if let Some(connection) = self.connection(connection) {
                    self.rooms.handle_progress(connection, now);
                }
            }
            Input::Close { connection, reason } => {
                if let Some(connection) = self.connection(connection) {
                    self.rooms.handle_connection_closed(connection, reason, now);
                }
            }
            Input::Tick { advance } => {
                self.now += advance;
                self.rooms.handle_tick(self.now);
            }
            Input::Durable { records } => self.acknowledge(records),
            Input::Shutdown => self.rooms.handle_shutdown(now),
        }
        self.after_input();
    }

    fn client_frame(&self, frame: FrameInput) -> ClientFrame {
        let (nick, token, real_incarnation, rooms, private_seq) = match frame {
            FrameInput::Plain(frame) => return frame,
            FrameInput::Resume {
                nick,
                token,
                real_incarnation,
                rooms,
                private_seq,
            } => (nick, token, real_incarnation, rooms, private_seq),
        };
        let token = match token {
            Token::Learned(index) if !self.tokens.is_empty() => {
                self.tokens[index % self.tokens.len()].clone()
            }
            Token::Learned(_) => "0".repeat(32),
            Token::Guessed(token) => token,
        };
        let incarnation = if real_incarnation {
            self.rooms.incarnation().to_owned()
        } else {
            "incarnation-other".to_owned()
        };
        ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            nick,
            resume: Some(Resume {
                token,
                incarnation,
                rooms,
                private_seq,
            }),
        }
    }

    /// Acknowledges `count` more of the records written, or all (0).
    fn acknowledge(&mut self, count: usize) {
        let Some(last) = self.outcome.records.last().map(|record| record.lsn) else {
            return;
        };
        self.durable = match count {
            0 => last,
            count => (self.durable + count as Lsn).min(last),
        };
        self.rooms.handle_durable(self.durable);
    }

    /// Writes the records, carries out the actions, checks the invariants.
    fn after_input(&mut self) {
        while let Some(record) = self.rooms.poll_record() {
            self.outcome.records.push(record);
        }
        if self.flags.durable_at_once {
            self.acknowledge(0);
        }
        while let Some(action) = self.rooms.poll_action() {
            match action {
                Action::Broadcast { frame, .. } => {
                    let event = self.sent(&frame);
                    self.outcome.messages +=
                        usize::from(matches!(event, ServerFrame::Message { .. }));
                }
                Action::Send { frame, .. } | Action::Private { frame, .. } => {
                    self.sent(&frame);
                }
                Action::Replay { frames, .. } => {
                    for frame in &frames {
                        self.sent(frame);
                    }
                }
                Action::Close { .. } | Action::Throttle { .. } | Action::Log(_) => {}
            }
        }
        self.rooms.check_invariants();
    }

    /// Checks a frame the server sends, and learns from it.
    fn sent(&mut self, frame: &Bytes) -> ServerFrame {
        assert!(
            frame.len() <= FRAME_BYTES_MAX,
            "a server frame fits a client's frame limit ({} bytes)",
            frame.len()
        );
        let body = frame
            .strip_suffix(b"\n")
            .expect("a server frame ends with a newline");
        assert!(!body.contains(&b'\n'), "a server frame is one line");
        let frame: ServerFrame = decode_line(body).expect("a client decodes every server frame");
        match &frame {
            ServerFrame::Welcome { token, resumed, .. } => {
                self.outcome.welcomes += 1;
                self.outcome.resumes += usize::from(*resumed);
                if !self.tokens.contains(token) {
                    self.tokens.push(token.clone());
                }
            }
            ServerFrame::Private { sent: true, .. } => self.outcome.private_messages += 1,
            ServerFrame::Error { code, .. } => *self.outcome.errors.entry(*code).or_default() += 1,
            _ => {}
        }
        frame
    }

    /// For a server that keeps its data: its whole log restores to the
    /// same durable state, and every durable prefix restores.
    fn finish(mut self) -> Outcome {
        if !self.flags.persistent {
            return self.outcome;
        }
        let records = &self.outcome.records;
        let restored = restore_log(&self.config, records, self.now)
            .expect("what a live server logged restores");
        assert_eq!(
            restored.room_histories(),
            self.rooms.room_histories(),
            "restored rooms are the live rooms"
        );
        assert_eq!(
            restored.member_nicks(),
            self.rooms.member_nicks(),
            "restored members are the live members"
        );
        assert_eq!(
            restored.private_histories(),
            self.rooms.private_histories(),
            "restored private streams are the live ones"
        );
        let durable = records.partition_point(|record| record.lsn <= self.durable);
        restore_log(&self.config, &records[..durable], self.now)
            .expect("what a crash leaves of a log restores");
        // A restart with every limit lowered keeps what fits, never panics.
        let lowered = RoomConfig {
            rooms_max: 1,
            room_members_max: 1,
            sessions_max: 1,
            history_max: 1,
            history_bytes_max: 64,
            private_history_max: 1,
            private_history_bytes_max: 64,
            history_bytes_total_max: 128,
            acks_remembered_max: 1,
            ..self.config.clone()
        };
        restore_log(&lowered, records, self.now).expect("a log restores under lower limits");
        self.outcome.restored = true;
        self.outcome
    }
}
