//! The wire protocol: frames, their encoding, framing limits and validation.
//!
//! Every frame is one JSON object on one line (newline-delimited JSON), with a
//! `type` field naming the frame. PROTOCOL.md at the top of the repository
//! describes each frame with an example exchange; this module is the
//! reference. The decoder enforces [`FRAME_BYTES_MAX`] before it buffers more
//! than that, checks UTF-8, and turns anything else it cannot read into a
//! [`FrameError`] with a message for the peer.

use std::fmt;
use std::io;
use std::marker::PhantomData;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::codec::Decoder;

/// The protocol version this code speaks. A hello with another version is
/// refused with [`ErrorCode::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame, newline included, that either side accepts.
pub const FRAME_BYTES_MAX: usize = 16 * 1024;

/// Largest message text in bytes (UTF-8). With control characters refused,
/// JSON escaping at most doubles it, so a message frame stays under
/// [`FRAME_BYTES_MAX`].
pub const TEXT_BYTES_MAX: usize = 4096;

/// Longest nickname, in characters.
pub const NICK_CHARS_MAX: usize = 32;

/// Longest room name, in characters.
pub const ROOM_CHARS_MAX: usize = 32;

/// The room the command-line client joins.
pub const DEFAULT_ROOM: &str = "lobby";

/// A per-room sequence number, assigned by the server to every event. The
/// first event of a room has sequence number 1.
pub type Seq = u64;

/// What a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// The first frame: who I am and which room I join.
    Hello {
        /// Must equal [`PROTOCOL_VERSION`].
        version: u32,
        /// The nickname; see [`validate_nick`].
        nick: String,
        /// The room to join; see [`validate_room`].
        room: String,
        /// Present to resume an earlier session instead of joining afresh.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<Resume>,
    },
    /// A chat message.
    Send {
        /// The room it is for.
        room: String,
        /// Chosen by the client, increasing within a session; a retry reuses
        /// the id, and the server delivers a message id at most once.
        id: u64,
        /// The text; see [`validate_text`].
        text: String,
    },
    /// "I am alive"; sent when the client has sent nothing for a while.
    Heartbeat,
    /// Leave the room and end the session (`.exit`).
    Leave,
}

/// What a client presents to resume a session after a reconnect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The token from the session's welcome.
    pub token: String,
    /// The server incarnation from that welcome.
    pub incarnation: String,
    /// The last sequence number the client has shown (0: none).
    pub last_seq: Seq,
}

/// What a server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Reply to a hello that was accepted.
    Welcome {
        /// The protocol version the server speaks.
        version: u32,
        /// The room joined.
        room: String,
        /// The session token; it is needed (with the incarnation) to resume.
        token: String,
        /// Changes each time the server starts without its earlier state;
        /// sequence numbers of another incarnation mean nothing here.
        incarnation: String,
        /// True when this welcome resumes an earlier session.
        resumed: bool,
        /// The events this connection gets start after this sequence number
        /// (on a fresh join: the room's last event before the join).
        last_seq: Seq,
        /// On a resume: how many missed events follow (after a `gap`, if
        /// history no longer holds them all).
        replayed: u64,
        /// The server sends a heartbeat at least this often (milliseconds).
        heartbeat_interval_ms: u64,
        /// The server drops a connection silent for this long (milliseconds).
        heartbeat_timeout_ms: u64,
        /// Largest message text the server accepts, in bytes.
        text_bytes_max: usize,
    },
    /// X joined the room.
    Joined {
        /// The room.
        room: String,
        /// The event's sequence number.
        seq: Seq,
        /// Who joined.
        nick: String,
    },
    /// X left the room.
    Left {
        /// The room.
        room: String,
        /// The event's sequence number.
        seq: Seq,
        /// Who left.
        nick: String,
    },
    /// X said something.
    Message {
        /// The room.
        room: String,
        /// The event's sequence number.
        seq: Seq,
        /// Who said it.
        nick: String,
        /// What was said.
        text: String,
    },
    /// The server accepted the client's message `id` as event `seq`.
    Ack {
        /// The room.
        room: String,
        /// The client's message id.
        id: u64,
        /// The sequence number of the resulting event.
        seq: Seq,
    },
    /// Events `from..=to` are no longer in the room's history and will not
    /// be delivered to this client.
    Gap {
        /// The room.
        room: String,
        /// First sequence number missing.
        from: Seq,
        /// Last sequence number missing.
        to: Seq,
    },
    /// "I am alive"; sent when the server has sent nothing for a while.
    Heartbeat,
    /// Reply to [`ClientFrame::Leave`]; the server closes the connection next.
    Bye,
    /// The server is shutting down; it closes the connection next.
    Shutdown,
    /// Something went wrong; unless `code` says otherwise, the server closes
    /// the connection next.
    Error {
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
    },
}

impl ServerFrame {
    /// The sequence number of a room event (joined, left, message).
    pub fn event_seq(&self) -> Option<Seq> {
        match self {
            ServerFrame::Joined { seq, .. }
            | ServerFrame::Left { seq, .. }
            | ServerFrame::Message { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

/// Why a server refused something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A line that is not a frame this server understands.
    BadFrame,
    /// A line longer than [`FRAME_BYTES_MAX`].
    FrameTooLarge,
    /// A line that is not valid UTF-8.
    InvalidUtf8,
    /// The hello's protocol version is not spoken here.
    UnsupportedVersion,
    /// The nickname breaks the rules of [`validate_nick`].
    NickInvalid,
    /// Someone in the room already has that nickname.
    NickTaken,
    /// The room name breaks the rules of [`validate_room`].
    RoomInvalid,
    /// The message text breaks the rules of [`validate_text`].
    TextInvalid,
    /// A frame that needs a joined session came before the hello, or a
    /// second hello came on the same connection.
    ProtocolViolation,
    /// The resume token is unknown or expired, or belongs to another server
    /// incarnation: join afresh.
    SessionUnknown,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The line is longer than the limit.
    #[error("frame longer than {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The line is not valid UTF-8.
    #[error("frame is not valid UTF-8")]
    InvalidUtf8,
    /// The line is not a frame of this protocol.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// Reading from the connection failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

impl FrameError {
    /// The error frame a server sends back for this error, if the peer can
    /// still be told anything.
    pub fn to_error_frame(&self) -> Option<ServerFrame> {
        let code = match self {
            FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            FrameError::InvalidUtf8 => ErrorCode::InvalidUtf8,
            FrameError::Malformed(_) => ErrorCode::BadFrame,
            FrameError::Truncated | FrameError::Io(_) => return None,
        };
        Some(ServerFrame::Error {
            code,
            message: self.to_string(),
        })
    }
}

/// Decodes newline-delimited JSON frames of type `T`, at most `frame_bytes_max`
/// bytes each (newline included), for use with `tokio_util::codec::FramedRead`.
#[derive(Debug)]
pub struct FrameDecoder<T> {
    frame_bytes_max: usize,
    /// How far the current buffer has been searched for a newline already.
    scanned: usize,
    frame: PhantomData<fn() -> T>,
}

impl<T> FrameDecoder<T> {
    /// A decoder that refuses frames longer than `frame_bytes_max`.
    pub fn new(frame_bytes_max: usize) -> Self {
        Self {
            frame_bytes_max,
            scanned: 0,
            frame: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Decoder for FrameDecoder<T> {
    type Item = T;
    type Error = FrameError;

    fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<T>, FrameError> {
        let search_end = buffer.len().min(self.frame_bytes_max);
        let newline = buffer[self.scanned..search_end]
            .iter()
            .position(|&byte| byte == b'\n');
        let Some(offset) = newline else {
            if buffer.len() >= self.frame_bytes_max {
                return Err(FrameError::TooLarge {
                    limit: self.frame_bytes_max,
                });
            }
            self.scanned = search_end;
            return Ok(None);
        };
        let line_end = self.scanned + offset;
        self.scanned = 0;
        let line = buffer.split_to(line_end + 1);
        decode_line(&line[..line_end]).map(Some)
    }

    fn decode_eof(&mut self, buffer: &mut BytesMut) -> Result<Option<T>, FrameError> {
        match self.decode(buffer)? {
            Some(frame) => Ok(Some(frame)),
            None if buffer.is_empty() => Ok(None),
            None => Err(FrameError::Truncated),
        }
    }
}

/// Decodes one line (without its newline) into a frame.
pub fn decode_line<T: DeserializeOwned>(line: &[u8]) -> Result<T, FrameError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| FrameError::InvalidUtf8)?;
    serde_json::from_str(text).map_err(|error| FrameError::Malformed(error.to_string()))
}

/// Encodes a frame as one line, newline included.
pub fn encode<T: Serialize>(frame: &T) -> Bytes {
    let mut buffer = BytesMut::with_capacity(128).writer();
    // Invariant: our frames are plain structs with string keys, which
    // serde_json always serializes, and writing to memory cannot fail.
    serde_json::to_writer(&mut buffer, frame).expect("frames always serialize");
    let mut buffer = buffer.into_inner();
    buffer.put_u8(b'\n');
    buffer.freeze()
}

/// Why a nickname, room name or message text is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing but white space.
    #[error("{what} is empty")]
    Empty {
        /// "nickname", "room name" or "message".
        what: &'static str,
    },
    /// Too long.
    #[error("{what} is too long ({length} {unit}; the limit is {limit})")]
    TooLong {
        /// "nickname", "room name" or "message".
        what: &'static str,
        /// Its length.
        length: usize,
        /// The limit.
        limit: usize,
        /// "characters" or "bytes".
        unit: &'static str,
    },
    /// Contains a control character (or, for names, white space at an end).
    #[error("{what} contains {problem}")]
    Forbidden {
        /// "nickname", "room name" or "message".
        what: &'static str,
        /// What it contains.
        problem: &'static str,
    },
}

fn validate_name(what: &'static str, name: &str, chars_max: usize) -> Result<(), NameError> {
    if name.trim().is_empty() {
        return Err(NameError::Empty { what });
    }
    let length = name.chars().count();
    if length > chars_max {
        return Err(NameError::TooLong {
            what,
            length,
            limit: chars_max,
            unit: "characters",
        });
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Forbidden {
            what,
            problem: "a control character",
        });
    }
    if name.trim() != name {
        return Err(NameError::Forbidden {
            what,
            problem: "white space at its start or end",
        });
    }
    Ok(())
}

/// A nickname: 1 to [`NICK_CHARS_MAX`] characters, no control characters,
/// no white space at either end.
pub fn validate_nick(nick: &str) -> Result<(), NameError> {
    validate_name("nickname", nick, NICK_CHARS_MAX)
}

/// A room name: the same rules as a nickname, with [`ROOM_CHARS_MAX`].
pub fn validate_room(room: &str) -> Result<(), NameError> {
    validate_name("room name", room, ROOM_CHARS_MAX)
}

/// A message text: not blank, at most `text_bytes_max` bytes of UTF-8, and no
/// control characters other than tab (they could rewrite other users'
/// terminals).
pub fn validate_text(text: &str, text_bytes_max: usize) -> Result<(), NameError> {
    let what = "message";
    if text.trim().is_empty() {
        return Err(NameError::Empty { what });
    }
    if text.len() > text_bytes_max {
        return Err(NameError::TooLong {
            what,
            length: text.len(),
            limit: text_bytes_max,
            unit: "bytes",
        });
    }
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(NameError::Forbidden {
            what,
            problem: "a control character",
        });
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all<T: DeserializeOwned>(input: &[u8], limit: usize) -> Vec<Result<T, String>> {
        let mut decoder = FrameDecoder::<T>::new(limit);
        let mut buffer = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match decoder.decode_eof(&mut buffer) {
                Ok(Some(frame)) => out.push(Ok(frame)),
                Ok(None) => break,
                Err(error) => {
                    out.push(Err(error.to_string()));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn a_hello_reads_as_documented() {
        let line = br#"{"type":"hello","version":1,"nick":"John","room":"lobby"}"#;
        let frame: ClientFrame = decode_line(line).expect("valid hello");
        assert_eq!(
            frame,
            ClientFrame::Hello {
                version: 1,
                nick: "John".into(),
                room: "lobby".into(),
                resume: None
            }
        );
    }

    #[test]
    fn encoding_is_one_line_of_json() {
        let frame = ServerFrame::Message {
            room: "lobby".into(),
            seq: 7,
            nick: "John".into(),
            text: "Hello\nthere \"you\"".into(),
        };
        let bytes = encode(&frame);
        assert_eq!(
            &bytes[..],
            &b"{\"type\":\"message\",\"room\":\"lobby\",\"seq\":7,\"nick\":\"John\",\"text\":\"Hello\\nthere \\\"you\\\"\"}\n"[..]
        );
    }

    #[test]
    fn merged_and_split_reads_give_whole_frames() {
        let one = encode(&ClientFrame::Heartbeat);
        let two = encode(&ClientFrame::Leave);
        let mut joined = one.to_vec();
        joined.extend_from_slice(&two);
        let mut decoder = FrameDecoder::<ClientFrame>::new(FRAME_BYTES_MAX);
        let mut buffer = BytesMut::new();
        let mut frames = Vec::new();
        // Feed one byte at a time: the decoder must wait for each newline.
        for byte in joined {
            buffer.put_u8(byte);
            while let Some(frame) = decoder.decode(&mut buffer).expect("valid input") {
                frames.push(frame);
            }
        }
        assert_eq!(frames, vec![ClientFrame::Heartbeat, ClientFrame::Leave]);
    }

    #[test]
    fn an_overlong_line_is_refused_before_it_is_buffered_whole() {
        let limit = 64;
        let mut decoder = FrameDecoder::<ClientFrame>::new(limit);
        let mut buffer = BytesMut::from(&[b'x'; 64][..]);
        let error = decoder.decode(&mut buffer).expect_err("over the limit");
        assert!(matches!(error, FrameError::TooLarge { limit: 64 }));
        let frame = error.to_error_frame().expect("peer can be told");
        assert!(matches!(
            frame,
            ServerFrame::Error {
                code: ErrorCode::FrameTooLarge,
                ..
            }
        ));
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_accepted() {
        let frame = encode(&ClientFrame::Heartbeat);
        let results = decode_all::<ClientFrame>(&frame, frame.len());
        assert_eq!(results, vec![Ok(ClientFrame::Heartbeat)]);
        let results = decode_all::<ClientFrame>(&frame, frame.len() - 1);
        assert!(results[0].is_err());
    }

    #[test]
    fn invalid_utf8_garbage_and_truncation_are_errors() {
        let results = decode_all::<ClientFrame>(b"\xff\xfe\n", 100);
        assert_eq!(results, vec![Err("frame is not valid UTF-8".to_string())]);
        let results = decode_all::<ClientFrame>(b"hello world\n", 100);
        assert!(
            results[0]
                .as_ref()
                .is_err_and(|e| e.starts_with("malformed frame"))
        );
        let results = decode_all::<ClientFrame>(b"{\"type\":\"heartbeat\"}\n{\"type\":", 100);
        assert_eq!(
            results,
            vec![
                Ok(ClientFrame::Heartbeat),
                Err("connection closed in the middle of a frame".to_string())
            ]
        );
        let results = decode_all::<ClientFrame>(b"{\"type\":\"heartbeat\",\"extra\":1}\n", 100);
        assert_eq!(
            results,
            vec![Ok(ClientFrame::Heartbeat)],
            "unknown fields are ignored"
        );
        let results = decode_all::<ClientFrame>(b"{\"type\":\"dance\"}\n", 100);
        assert!(results[0].is_err(), "unknown frame types are refused");
    }

    #[test]
    fn crlf_line_endings_are_accepted() {
        let results = decode_all::<ClientFrame>(b"{\"type\":\"leave\"}\r\n", 100);
        assert_eq!(results, vec![Ok(ClientFrame::Leave)]);
    }

    #[test]
    fn names_and_texts_are_validated() {
        assert!(validate_nick("John").is_ok());
        assert!(validate_nick("Jöhn 李").is_ok());
        assert_eq!(
            validate_nick("  "),
            Err(NameError::Empty { what: "nickname" })
        );
        assert!(validate_nick(&"x".repeat(NICK_CHARS_MAX)).is_ok());
        assert!(matches!(
            validate_nick(&"x".repeat(NICK_CHARS_MAX + 1)),
            Err(NameError::TooLong { .. })
        ));
        assert!(matches!(
            validate_nick("a\u{1b}b"),
            Err(NameError::Forbidden { .. })
        ));
        assert!(matches!(
            validate_nick(" John"),
            Err(NameError::Forbidden { .. })
        ));
        assert!(validate_text("tab\tis fine", 100).is_ok());
        assert!(matches!(
            validate_text("bell\u{7}", 100),
            Err(NameError::Forbidden { .. })
        ));
        assert!(matches!(
            validate_text("ééé", 5),
            Err(NameError::TooLong { length: 6, .. })
        ));
        assert_eq!(
            validate_nick(&"x".repeat(40)).map_err(|e| e.to_string()),
            Err("nickname is too long (40 characters; the limit is 32)".to_string())
        );
    }

    #[test]
    fn error_codes_display_their_wire_names() {
        assert_eq!(ErrorCode::NickTaken.to_string(), "nick_taken");
    }

    fn any_text() -> impl Strategy<Value = String> {
        any::<String>()
    }

    fn any_client_frame() -> impl Strategy<Value = ClientFrame> {
        prop_oneof![
            (
                any::<u32>(),
                any_text(),
                any_text(),
                proptest::option::of((any_text(), any_text(), any::<u64>()))
            )
                .prop_map(|(version, nick, room, resume)| ClientFrame::Hello {
                    version,
                    nick,
                    room,
                    resume: resume.map(|(token, incarnation, last_seq)| Resume {
                        token,
                        incarnation,
                        last_seq
                    }),
                }),
            (any_text(), any::<u64>(), any_text()).prop_map(|(room, id, text)| ClientFrame::Send {
                room,
                id,
                text
            }),
            Just(ClientFrame::Heartbeat),
            Just(ClientFrame::Leave),
        ]
    }

    fn any_server_frame() -> impl Strategy<Value = ServerFrame> {
        prop_oneof![
            (
                any::<u32>(),
                any_text(),
                any_text(),
                any_text(),
                any::<bool>(),
                any::<u64>(),
                any::<u64>(),
                any::<usize>(),
                any::<u64>(),
                any::<u64>()
            )
                .prop_map(
                    |(
                        version,
                        room,
                        token,
                        incarnation,
                        resumed,
                        interval,
                        timeout,
                        text_max,
                        last_seq,
                        replayed,
                    )| {
                        ServerFrame::Welcome {
                            version,
                            room,
                            token,
                            incarnation,
                            resumed,
                            last_seq,
                            replayed,
                            heartbeat_interval_ms: interval,
                            heartbeat_timeout_ms: timeout,
                            text_bytes_max: text_max,
                        }
                    }
                ),
            (any_text(), any::<u64>(), any_text())
                .prop_map(|(room, seq, nick)| ServerFrame::Joined { room, seq, nick }),
            (any_text(), any::<u64>(), any_text())
                .prop_map(|(room, seq, nick)| ServerFrame::Left { room, seq, nick }),
            (any_text(), any::<u64>(), any_text(), any_text()).prop_map(
                |(room, seq, nick, text)| ServerFrame::Message {
                    room,
                    seq,
                    nick,
                    text
                }
            ),
            (any_text(), any::<u64>(), any::<u64>()).prop_map(|(room, id, seq)| ServerFrame::Ack {
                room,
                id,
                seq
            }),
            (any_text(), any::<u64>(), any::<u64>())
                .prop_map(|(room, from, to)| ServerFrame::Gap { room, from, to }),
            Just(ServerFrame::Heartbeat),
            Just(ServerFrame::Bye),
            Just(ServerFrame::Shutdown),
            (any_text()).prop_map(|message| ServerFrame::Error {
                code: ErrorCode::NickTaken,
                message
            }),
        ]
    }

    proptest! {
        #[test]
        fn client_frames_round_trip(frame in any_client_frame()) {
            let bytes = encode(&frame);
            prop_assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
            let decoded = decode_all::<ClientFrame>(&bytes, usize::MAX);
            prop_assert_eq!(decoded, vec![Ok(frame)]);
        }

        #[test]
        fn server_frames_round_trip(frame in any_server_frame()) {
            let bytes = encode(&frame);
            let decoded = decode_all::<ServerFrame>(&bytes, usize::MAX);
            prop_assert_eq!(decoded, vec![Ok(frame)]);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_all::<ClientFrame>(&input, 64);
        }

        #[test]
        fn valid_texts_fit_in_a_frame(text in "[^\\p{Cc}]{1,200}") {
            let text = text.repeat(TEXT_BYTES_MAX / text.len().max(1));
            prop_assume!(validate_text(&text, TEXT_BYTES_MAX).is_ok());
            let frame = encode(&ClientFrame::Send { room: "r".repeat(ROOM_CHARS_MAX), id: u64::MAX, text });
            prop_assert!(frame.len() <= FRAME_BYTES_MAX);
        }
    }
}
