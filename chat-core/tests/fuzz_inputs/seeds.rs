//! The seed corpus, defined here and checked in under `fuzz/corpus/`: a
//! few small inputs per target that reach the interesting paths at once
//! (a valid session, a pipelined refusal, a resume, each limit), so that
//! the fuzzer mutates meaningful inputs from its first second.
//!
//! `tests/fuzz_corpus.rs` checks that the files are these bytes (and
//! rewrites them with `FUZZ_SEEDS_WRITE=1`), and that each rooms seed does
//! what its name says, so a change of the input layout cannot leave the
//! seeds meaning nothing.

use super::restore::{restore_input, restore_input_with};
use super::rooms::{self, NICKS, ROOMS, TEXTS, TICK_MS};

/// One seed file.
pub struct Seed {
    /// The target, which is also its folder under `fuzz/corpus/`.
    pub target: &'static str,
    /// The file's name, without its `seed-` prefix.
    pub name: &'static str,
    pub bytes: Vec<u8>,
}

/// Every seed of every target.
pub fn seeds() -> Vec<Seed> {
    let mut seeds = frame_seeds();
    seeds.extend(rooms_seeds());
    seeds.extend(restore_seeds());
    seeds
}

fn seed(target: &'static str, name: &'static str, bytes: Vec<u8>) -> Seed {
    Seed {
        target,
        name,
        bytes,
    }
}

/// A `decode_frames` input: the frame limit's index, read lengths (as
/// their length bytes), then the stream.
fn stream(limit_index: u8, length_bytes: &[u8], stream: &[u8]) -> Vec<u8> {
    let count = u8::try_from(length_bytes.len() - 1).expect("at most eight read lengths");
    let mut bytes = vec![limit_index, count];
    bytes.extend_from_slice(length_bytes);
    bytes.extend_from_slice(stream);
    bytes
}

fn frame_seeds() -> Vec<Seed> {
    const FULL: u8 = 2;
    const SMALL: u8 = 0;
    let session = concat!(
        r#"{"type":"hello","version":2,"nick":"Ann"}"#,
        "\n",
        r#"{"type":"join","room":"lobby"}"#,
        "\n",
        r#"{"type":"send","room":"lobby","id":1,"text":"hello","action":true}"#,
        "\n",
        r#"{"type":"hello","version":2,"nick":"Ann","resume":{"token":"00112233445566778899aabbccddeeff","incarnation":"i","rooms":{"lobby":4},"private_seq":2}}"#,
        "\r\n",
        r#"{"type":"private","to":"Bob","id":2,"text":"psst"}"#,
        "\n",
        r#"{"type":"nick","nick":"Zo\u00eb"}"#,
        "\n",
        r#"{"type":"who","room":"lobby"}"#,
        "\n",
        r#"{"type":"list_rooms"}"#,
        "\n",
        r#"{"type":"leave","room":"lobby"}"#,
        "\n",
        r#"{"type":"heartbeat"}"#,
        "\n",
        r#"{"type":"quit"}"#,
        "\n",
    );
    let server = concat!(
        r#"{"type":"welcome","version":2,"nick":"Ann","token":"t","incarnation":"i","resumed":true,"rooms":[{"room":"lobby","last_seq":3}],"private_seq":0,"replayed":1,"heartbeat_interval_ms":5000,"heartbeat_timeout_ms":15000,"text_bytes_max":4096}"#,
        "\n",
        r#"{"type":"entered","room":"lobby","seq":4,"history":1}"#,
        "\n",
        r#"{"type":"history","room":"lobby","seq":2,"nick":"Bob","text":"hi"}"#,
        "\n",
        r#"{"type":"message","room":"lobby","seq":5,"nick":"Bob","text":"hi","action":true}"#,
        "\n",
        r#"{"type":"ack","id":1,"seq":5,"room":"lobby"}"#,
        "\n",
        r#"{"type":"gap","room":"lobby","from":1,"to":3}"#,
        "\n",
        r#"{"type":"error","code":"nick_taken","message":"taken","retry_after_ms":3000}"#,
        "\n",
        r#"{"type":"room_list","rooms":[{"room":"lobby","members":2}],"total":1}"#,
        "\n",
    );
    let long_line = format!(
        r#"{{"type":"send","room":"lobby","id":1,"text":"{}"}}"#,
        "x".repeat(60)
    );
    vec![
        seed(
            "decode_frames",
            "session_byte_by_byte",
            stream(FULL, &[0], session.as_bytes()),
        ),
        seed(
            "decode_frames",
            "session_in_one_read",
            stream(FULL, &[255], session.as_bytes()),
        ),
        seed(
            "decode_frames",
            "session_split_mid_frame",
            stream(FULL, &[4, 16, 2], session.as_bytes()),
        ),
        seed(
            "decode_frames",
            "server_frames",
            stream(FULL, &[30, 200], server.as_bytes()),
        ),
        seed(
            "decode_frames",
            "line_over_the_limit",
            stream(SMALL, &[9], long_line.as_bytes()),
        ),
        seed(
            "decode_frames",
            "tls_client_hello",
            stream(FULL, &[2], b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        ),
        seed(
            "decode_frames",
            "http_request",
            stream(FULL, &[255], b"GET / HTTP/1.1\r\nHost: chat\r\n\r\n"),
        ),
        seed(
            "decode_frames",
            "invalid_utf8_then_truncated",
            stream(
                1,
                &[3],
                b"{\"type\":\"quit\"}\n{\"nick\":\"\xff\xfe\"}\n{\"type\":",
            ),
        ),
    ]
}

/// Builds a `rooms_inputs` input with the layout of [`rooms::decode_input`].
pub struct Script {
    bytes: Vec<u8>,
}

fn index(table: &[&str], entry: &str) -> u8 {
    let index = table
        .iter()
        .position(|candidate| *candidate == entry)
        .unwrap_or_else(|| panic!("{entry:?} is in its table"));
    u8::try_from(index).expect("tables are small")
}

impl Script {
    /// A script for a server with these flags (see [`rooms::Flags`]).
    pub fn new(flags: u8) -> Self {
        Self { bytes: vec![flags] }
    }

    pub fn bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn push(mut self, bytes: &[u8]) -> Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    fn frame(self, connection: u8, kind: u8, fields: &[u8]) -> Self {
        self.push(&[rooms::FRAME, connection, kind]).push(fields)
    }

    pub fn open(self, address: u8) -> Self {
        self.push(&[rooms::OPEN, address])
    }

    pub fn hello(self, connection: u8, nick: &str) -> Self {
        self.frame(connection, rooms::HELLO, &[0, index(&NICKS, nick)])
    }

    /// A hello for protocol version `version` (below 32).
    pub fn hello_version(self, connection: u8, version: u8, nick: &str) -> Self {
        self.frame(
            connection,
            rooms::HELLO,
            &[224 + version, index(&NICKS, nick)],
        )
    }

    /// A resume with the `token`-th token learned, and the rooms seen.
    pub fn resume(self, connection: u8, nick: &str, token: u8, rooms: &[(&str, u8)]) -> Self {
        let mut fields = vec![index(&NICKS, nick), 0, token, 1, rooms.len() as u8];
        for (room, seq) in rooms {
            fields.extend([index(&ROOMS, room), *seq]);
        }
        fields.push(0);
        self.frame(connection, rooms::RESUME, &fields)
    }

    /// A resume with a guessed token of the right form.
    pub fn guessed_resume(self, connection: u8, nick: &str, guess: [u8; 16]) -> Self {
        let mut fields = vec![index(&NICKS, nick), 2];
        fields.extend(guess);
        fields.extend([1, 0, 0]);
        self.frame(connection, rooms::RESUME, &fields)
    }

    pub fn join(self, connection: u8, room: &str) -> Self {
        self.frame(connection, rooms::JOIN, &[index(&ROOMS, room)])
    }

    pub fn leave(self, connection: u8, room: &str) -> Self {
        self.frame(connection, rooms::LEAVE, &[index(&ROOMS, room)])
    }

    /// A message with an id below 200.
    pub fn send(self, connection: u8, room: &str, id: u8, text: &str) -> Self {
        let fields = [index(&ROOMS, room), id, index(&TEXTS, text), 0];
        self.frame(connection, rooms::SEND, &fields)
    }

    pub fn private(self, connection: u8, to: &str, id: u8, text: &str) -> Self {
        let fields = [index(&NICKS, to), id, index(&TEXTS, text), 1];
        self.frame(connection, rooms::PRIVATE, &fields)
    }

    pub fn nick(self, connection: u8, nick: &str) -> Self {
        self.frame(connection, rooms::NICK, &[index(&NICKS, nick)])
    }

    pub fn who(self, connection: u8, room: &str) -> Self {
        self.frame(connection, rooms::WHO, &[index(&ROOMS, room)])
    }

    pub fn list_rooms(self, connection: u8) -> Self {
        self.frame(connection, rooms::LIST_ROOMS, &[])
    }

    pub fn heartbeat(self, connection: u8) -> Self {
        self.frame(connection, rooms::HEARTBEAT, &[])
    }

    pub fn quit(self, connection: u8) -> Self {
        self.frame(connection, rooms::QUIT, &[])
    }

    /// A bad frame of kind `kind` (0 too large, 1 invalid UTF-8, 2
    /// malformed, 3 truncated, 4 a read error).
    pub fn bad_frame(self, connection: u8, kind: u8) -> Self {
        self.push(&[rooms::BAD_FRAME, connection, kind])
    }

    pub fn progress(self, connection: u8) -> Self {
        self.push(&[rooms::PROGRESS, connection])
    }

    /// A close for reason `reason` (0 peer closed, 1 queue overflow, 2
    /// heartbeat timeout, 3 evicted).
    pub fn close(self, connection: u8, reason: u8) -> Self {
        self.push(&[rooms::CLOSE, connection, reason])
    }

    /// Time moves on by `ms`, one of [`TICK_MS`].
    pub fn tick(self, ms: u64) -> Self {
        let position = TICK_MS
            .iter()
            .position(|candidate| *candidate == ms)
            .unwrap_or_else(|| panic!("{ms} ms is a tick length"));
        self.push(&[rooms::TICK, position as u8])
    }

    /// `count` more records are durable (0: all).
    pub fn durable(self, count: u8) -> Self {
        self.push(&[rooms::DURABLE, count])
    }

    pub fn shutdown(self) -> Self {
        self.push(&[rooms::SHUTDOWN])
    }
}

/// Flags: see [`rooms::Flags`].
pub const PERSISTENT: u8 = 1;
pub const DURABLE_AT_ONCE: u8 = 2;
pub const SNAPSHOTS_OFTEN: u8 = 4;
pub const UNLIMITED_RATE: u8 = 8;

/// Named rooms scripts; `tests/fuzz_corpus.rs` checks what each reaches.
pub fn rooms_scripts() -> Vec<(&'static str, Script)> {
    vec![
        ("hello_join_send", hello_join_send()),
        ("pipelined_refusal", pipelined_refusal()),
        ("resume_after_a_drop", resume_after_a_drop()),
        ("guessed_resume", guessed_resume()),
        ("limits", limits()),
        ("room_full", room_full()),
        ("names_and_private_messages", names_and_private_messages()),
        ("timeouts_held_actions", timeouts_held_actions()),
        ("snapshot", snapshot()),
        ("bad_frames_and_shutdown", bad_frames_and_shutdown()),
    ]
}

fn hello_join_send() -> Script {
    Script::new(UNLIMITED_RATE)
        .open(0)
        .hello(0, "Ann")
        .join(0, "lobby")
        .send(0, "lobby", 1, "hello")
        .open(1)
        .hello(1, "Bob")
        .join(1, "lobby")
        .send(1, "lobby", 1, "hi there")
        .who(1, "lobby")
        .list_rooms(1)
        .leave(1, "lobby")
        .quit(0)
}

fn pipelined_refusal() -> Script {
    Script::new(UNLIMITED_RATE)
        .open(0)
        .join(0, "lobby")
        .hello(0, "Ann")
        .send(0, "lobby", 1, "hello")
        .open(0)
        .hello_version(1, 1, "Bob")
        .hello(1, "Bob")
}

fn resume_after_a_drop() -> Script {
    Script::new(PERSISTENT | DURABLE_AT_ONCE | UNLIMITED_RATE)
        .open(0)
        .hello(0, "Ann")
        .join(0, "lobby")
        .send(0, "lobby", 1, "hello")
        .close(0, 0)
        .open(0)
        .resume(1, "Ann", 0, &[("lobby", 1)])
        .send(1, "lobby", 1, "hello")
        .send(1, "lobby", 2, "hi there")
        .tick(1_000)
}

fn guessed_resume() -> Script {
    Script::new(UNLIMITED_RATE)
        .open(0)
        .hello(0, "Ann")
        .open(1)
        .guessed_resume(1, "Ann", [0xab; 16])
        .resume(1, "Ann", 0, &[("lobby", 255)])
}

fn limits() -> Script {
    let mut script = Script::new(0);
    for _ in 0..4 {
        script = script.open(0);
    }
    script = script.hello(0, "Ann").hello(1, "Bob").hello(2, "Zo\u{eb}");
    for room in ["lobby", "games", "#rust"] {
        script = script.join(0, room);
    }
    for id in 1..=6 {
        script = script.send(1, "lobby", id, "hello");
    }
    script.tick(1_000).tick(3_000).tick(10_000)
}

fn room_full() -> Script {
    let mut script = Script::new(PERSISTENT | DURABLE_AT_ONCE | UNLIMITED_RATE);
    for (connection, nick) in ["Ann", "Bob", "Zo\u{eb}", "Ian"].into_iter().enumerate() {
        let connection = connection as u8;
        script = script
            .open(connection)
            .hello(connection, nick)
            .join(connection, "lobby");
    }
    script.quit(0).join(3, "lobby")
}

fn names_and_private_messages() -> Script {
    Script::new(UNLIMITED_RATE)
        .open(0)
        .hello(0, "Ann")
        .open(1)
        .hello(1, "\u{410}nn")
        .hello(1, "x y")
        .hello(1, "Bob")
        .private(0, "Bob", 1, "hi there")
        .private(0, "ann", 2, "hello")
        .private(1, "Zo\u{eb}", 1, "hello")
        .nick(1, "Ian")
        .nick(0, "lan")
        .join(0, "lobby")
        .join(1, "l\u{43e}bby")
        .join(1, "Lobby")
        .send(0, "lobby", 3, "bell\u{7}")
        .send(0, "lobby", 3, "hello")
        .send(0, "lobby", 3, "hi there")
        .send(0, "lobby", 2, "hello")
}

fn timeouts_held_actions() -> Script {
    Script::new(PERSISTENT | UNLIMITED_RATE)
        .open(0)
        .hello(0, "Ann")
        .durable(1)
        .join(0, "lobby")
        .open(1)
        .progress(1)
        .tick(1_500)
        .heartbeat(0)
        .tick(2_000)
        .tick(3_000)
        .durable(0)
        .tick(5_000)
        .durable(0)
}

fn snapshot() -> Script {
    let mut script = Script::new(PERSISTENT | DURABLE_AT_ONCE | SNAPSHOTS_OFTEN | UNLIMITED_RATE)
        .open(0)
        .hello(0, "Ann")
        .join(0, "lobby");
    for id in 1..=8 {
        script = script.send(0, "lobby", id, "hello");
    }
    script
        .open(1)
        .hello(1, "Bob")
        .private(1, "Ann", 1, "hi there")
        .close(0, 2)
}

fn bad_frames_and_shutdown() -> Script {
    let mut script = Script::new(UNLIMITED_RATE);
    for kind in 0..5 {
        script = script.open(0).hello(kind, "Ann").bad_frame(kind, kind);
    }
    script
        .close(1, 1)
        .close(2, 3)
        .shutdown()
        .open(0)
        .hello(5, "Bob")
}

fn rooms_seeds() -> Vec<Seed> {
    rooms_scripts()
        .into_iter()
        .map(|(name, script)| seed("rooms_inputs", name, script.bytes()))
        .collect()
}

/// Real logs (a session with a resume; one with messages, a private
/// message and a dropped member, without its snapshots; the same from its
/// last snapshot on) and a log missing its first record.
fn restore_seeds() -> Vec<Seed> {
    let log = rooms::rooms_inputs(&resume_after_a_drop().bytes()).records;
    let lines: Vec<&[u8]> = log.iter().map(|record| &record.bytes[..]).collect();
    let longer = rooms::rooms_inputs(&snapshot().bytes()).records;
    let longer_lines: Vec<&[u8]> = longer
        .iter()
        .filter(|record| !record.snapshot)
        .map(|record| &record.bytes[..])
        .collect();
    let last_snapshot = longer
        .iter()
        .rposition(|record| record.snapshot)
        .expect("the snapshot script makes snapshots");
    let after_snapshot: Vec<&[u8]> = longer[last_snapshot + 1..]
        .iter()
        .map(|record| &record.bytes[..])
        .collect();
    vec![
        seed("restore_records", "records", restore_input(&lines)),
        seed(
            "restore_records",
            "snapshot_and_records",
            restore_input_with(Some(&longer[last_snapshot].bytes), &after_snapshot),
        ),
        seed(
            "restore_records",
            "longer_records",
            restore_input(&longer_lines),
        ),
        seed(
            "restore_records",
            "first_record_lost",
            restore_input(&lines[1..]),
        ),
    ]
}
