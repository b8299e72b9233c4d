use bytes::BufMut;
use proptest::prelude::*;

use super::*;
use crate::protocol::frames::{ClientFrame, ErrorCode, Resume, RoomCount, RoomStart, ServerFrame};
use crate::protocol::{FRAME_BYTES_MAX, ROOM_CHARS_MAX, TEXT_BYTES_MAX, validate_text};

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
    let line = br#"{"type":"hello","version":2,"nick":"John"}"#;
    let frame: ClientFrame = decode_line(line).expect("valid hello");
    assert_eq!(
        frame,
        ClientFrame::Hello {
            version: 2,
            nick: "John".into(),
            resume: None
        }
    );
    let line = br#"{"type":"hello","version":2,"nick":"John","resume":{"token":"t","incarnation":"i","rooms":{"lobby":4}}}"#;
    let frame: ClientFrame = decode_line(line).expect("valid resume");
    let ClientFrame::Hello {
        resume: Some(resume),
        ..
    } = frame
    else {
        panic!("a resume");
    };
    assert_eq!(resume.rooms.get("lobby"), Some(&4));
    assert_eq!(resume.private_seq, 0, "absent means nothing seen");
}

#[test]
fn encoding_is_one_line_of_json_without_empty_options() {
    let frame = ServerFrame::Message {
        room: "lobby".into(),
        seq: 7,
        nick: "John".into(),
        text: "Hello\nthere \"you\"".into(),
        action: false,
    };
    assert_eq!(
        &encode(&frame)[..],
        &b"{\"type\":\"message\",\"room\":\"lobby\",\"seq\":7,\"nick\":\"John\",\"text\":\"Hello\\nthere \\\"you\\\"\"}\n"[..]
    );
    let ack = ServerFrame::Ack {
        id: 3,
        seq: 9,
        room: Some("lobby".into()),
        to: None,
    };
    assert_eq!(
        &encode(&ack)[..],
        &b"{\"type\":\"ack\",\"id\":3,\"seq\":9,\"room\":\"lobby\"}\n"[..]
    );
}

#[test]
fn merged_and_split_reads_give_whole_frames() {
    let one = encode(&ClientFrame::Heartbeat);
    let two = encode(&ClientFrame::Quit);
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
    assert_eq!(frames, vec![ClientFrame::Heartbeat, ClientFrame::Quit]);
}

#[test]
fn an_overlong_line_is_refused_before_it_is_buffered_whole() {
    let limit = 64;
    let mut decoder = FrameDecoder::<ClientFrame>::new(limit);
    let mut buffer = BytesMut::from(
        &b"{\"type\":\"send\",\"text\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"[..],
    );
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
fn a_line_that_cannot_be_json_is_refused_before_its_newline() {
    let mut decoder = FrameDecoder::<ClientFrame>::new(FRAME_BYTES_MAX);
    // A TLS ClientHello starts with 0x16; an HTTP request with a verb.
    for start in [&b"\x16\x03\x01\x02\x00"[..], b"GET / HTTP/1.1"] {
        let mut buffer = BytesMut::from(start);
        let error = decoder.decode(&mut buffer).expect_err("not JSON");
        assert!(matches!(error, FrameError::Malformed(_)), "{error}");
    }
    let mut buffer = BytesMut::from(&b"  {\"type\""[..]);
    assert!(
        decoder
            .decode(&mut buffer)
            .expect("may still become a frame")
            .is_none()
    );
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
    let results = decode_all::<ClientFrame>(b"{\xff\xfe\n", 100);
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
    let results = decode_all::<ClientFrame>(b"{\"type\":\"quit\"}\r\n", 100);
    assert_eq!(results, vec![Ok(ClientFrame::Quit)]);
}

#[test]
fn error_codes_display_their_wire_names_and_say_whether_they_close() {
    assert_eq!(ErrorCode::NickTaken.to_string(), "nick_taken");
    assert!(!ErrorCode::NickTaken.is_fatal());
    assert!(ErrorCode::ProtocolViolation.is_fatal());
}

fn any_text() -> impl Strategy<Value = String> {
    any::<String>()
}

fn any_resume() -> impl Strategy<Value = Resume> {
    (
        any_text(),
        any_text(),
        proptest::collection::btree_map(any_text(), any::<u64>(), 0..4),
        any::<u64>(),
    )
        .prop_map(|(token, incarnation, rooms, private_seq)| Resume {
            token,
            incarnation,
            rooms,
            private_seq,
        })
}

fn any_client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (any::<u32>(), any_text(), proptest::option::of(any_resume())).prop_map(
            |(version, nick, resume)| ClientFrame::Hello {
                version,
                nick,
                resume
            }
        ),
        any_text().prop_map(|room| ClientFrame::Join { room }),
        any_text().prop_map(|room| ClientFrame::Leave { room }),
        (any_text(), any::<u64>(), any_text(), any::<bool>()).prop_map(
            |(room, id, text, action)| ClientFrame::Send {
                room,
                id,
                text,
                action
            }
        ),
        (any_text(), any::<u64>(), any_text(), any::<bool>()).prop_map(|(to, id, text, action)| {
            ClientFrame::Private {
                to,
                id,
                text,
                action,
            }
        }),
        any_text().prop_map(|nick| ClientFrame::Nick { nick }),
        Just(ClientFrame::ListRooms),
        any_text().prop_map(|room| ClientFrame::Who { room }),
        Just(ClientFrame::Heartbeat),
        Just(ClientFrame::Quit),
    ]
}

/// Every error code, so that each wire name round-trips.
const ERROR_CODES: [ErrorCode; 23] = [
    ErrorCode::BadFrame,
    ErrorCode::FrameTooLarge,
    ErrorCode::InvalidUtf8,
    ErrorCode::UnsupportedVersion,
    ErrorCode::ProtocolViolation,
    ErrorCode::HandshakeTimeout,
    ErrorCode::RateLimited,
    ErrorCode::TooManyConnections,
    ErrorCode::TooManyAttempts,
    ErrorCode::NickInvalid,
    ErrorCode::NickTaken,
    ErrorCode::RoomInvalid,
    ErrorCode::RoomFull,
    ErrorCode::TooManyRooms,
    ErrorCode::RoomLimit,
    ErrorCode::NotInRoom,
    ErrorCode::AlreadyInRoom,
    ErrorCode::TextInvalid,
    ErrorCode::IdInvalid,
    ErrorCode::IdStale,
    ErrorCode::IdConflict,
    ErrorCode::NoSuchNick,
    ErrorCode::SessionUnknown,
];

fn any_welcome() -> impl Strategy<Value = ServerFrame> {
    let session = (
        any::<u32>(),
        any_text(),
        any_text(),
        any_text(),
        any::<bool>(),
    );
    let rooms = proptest::collection::vec((any_text(), any::<u64>()), 0..3);
    let numbers = (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<usize>(),
    );
    (session, rooms, numbers).prop_map(
        |((version, nick, token, incarnation, resumed), rooms, numbers)| {
            let (private_seq, replayed, interval, timeout, text_max) = numbers;
            ServerFrame::Welcome {
                version,
                nick,
                token,
                incarnation,
                resumed,
                rooms: rooms
                    .into_iter()
                    .map(|(room, last_seq)| RoomStart { room, last_seq })
                    .collect(),
                private_seq,
                replayed,
                heartbeat_interval_ms: interval,
                heartbeat_timeout_ms: timeout,
                text_bytes_max: text_max,
            }
        },
    )
}

/// A room, a sequence number, a nickname, a text and whether it is an action.
fn said() -> impl Strategy<Value = (String, u64, String, String, bool)> {
    (
        any_text(),
        any::<u64>(),
        any_text(),
        any_text(),
        any::<bool>(),
    )
}

/// The events of a room's stream, and the replies about entering and
/// leaving one.
fn any_room_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        (any_text(), any::<u64>(), any::<u64>())
            .prop_map(|(room, seq, history)| ServerFrame::Entered { room, seq, history }),
        said().prop_map(|(room, seq, nick, text, action)| ServerFrame::History {
            room,
            seq,
            nick,
            text,
            action
        }),
        any_text().prop_map(|room| ServerFrame::Parted { room }),
        (any_text(), any::<u64>(), any_text()).prop_map(|(room, seq, nick)| ServerFrame::Joined {
            room,
            seq,
            nick
        }),
        (any_text(), any::<u64>(), any_text()).prop_map(|(room, seq, nick)| ServerFrame::Left {
            room,
            seq,
            nick
        }),
        said().prop_map(|(room, seq, nick, text, action)| ServerFrame::Message {
            room,
            seq,
            nick,
            text,
            action
        }),
        (any_text(), any::<u64>(), any_text(), any_text()).prop_map(|(room, seq, from, to)| {
            ServerFrame::Renamed {
                room,
                seq,
                from,
                to,
            }
        }),
    ]
}

fn any_error() -> impl Strategy<Value = ServerFrame> {
    (
        proptest::sample::select(ERROR_CODES.to_vec()),
        any_text(),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any_text()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(code, message, id, room, retry_after_ms)| ServerFrame::Error {
                code,
                message,
                id,
                room,
                retry_after_ms,
            },
        )
}

/// Private events, acks, gaps, and the replies to requests.
fn any_reply() -> impl Strategy<Value = ServerFrame> {
    let counts = proptest::collection::vec((any_text(), any::<u64>()), 0..4);
    prop_oneof![
        (
            any::<u64>(),
            any_text(),
            any_text(),
            any_text(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(seq, from, to, text, action, sent)| ServerFrame::Private {
                seq,
                from,
                to,
                text,
                action,
                sent
            }),
        (
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(any_text()),
            proptest::option::of(any_text())
        )
            .prop_map(|(id, seq, room, to)| ServerFrame::Ack { id, seq, room, to }),
        (proptest::option::of(any_text()), any::<u64>(), any::<u64>())
            .prop_map(|(room, from, to)| ServerFrame::Gap { room, from, to }),
        any_text().prop_map(|nick| ServerFrame::NickChanged { nick }),
        (counts, any::<u64>()).prop_map(|(rooms, total)| ServerFrame::RoomList {
            rooms: rooms
                .into_iter()
                .map(|(room, members)| RoomCount { room, members })
                .collect(),
            total
        }),
        (
            any_text(),
            proptest::collection::vec(any_text(), 0..4),
            any::<u64>()
        )
            .prop_map(|(room, nicks, total)| ServerFrame::Members { room, nicks, total }),
        any_error(),
    ]
}

fn any_server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        any_welcome(),
        any_room_frame(),
        any_reply(),
        Just(ServerFrame::Heartbeat),
        Just(ServerFrame::Bye),
        Just(ServerFrame::Shutdown),
    ]
}

/// A frame's wire name. The match is exhaustive, so a new variant does not
/// compile until it is named here (and in the lists below).
fn server_frame_type(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Welcome { .. } => "welcome",
        ServerFrame::Entered { .. } => "entered",
        ServerFrame::History { .. } => "history",
        ServerFrame::Parted { .. } => "parted",
        ServerFrame::Joined { .. } => "joined",
        ServerFrame::Left { .. } => "left",
        ServerFrame::Message { .. } => "message",
        ServerFrame::Renamed { .. } => "renamed",
        ServerFrame::Private { .. } => "private",
        ServerFrame::Ack { .. } => "ack",
        ServerFrame::Gap { .. } => "gap",
        ServerFrame::NickChanged { .. } => "nick_changed",
        ServerFrame::RoomList { .. } => "room_list",
        ServerFrame::Members { .. } => "members",
        ServerFrame::Heartbeat => "heartbeat",
        ServerFrame::Bye => "bye",
        ServerFrame::Shutdown => "shutdown",
        ServerFrame::Error { .. } => "error",
    }
}

const SERVER_FRAME_TYPES: [&str; 18] = [
    "welcome",
    "entered",
    "history",
    "parted",
    "joined",
    "left",
    "message",
    "renamed",
    "private",
    "ack",
    "gap",
    "nick_changed",
    "room_list",
    "members",
    "heartbeat",
    "bye",
    "shutdown",
    "error",
];

/// Like [`server_frame_type`], for client frames.
fn client_frame_type(frame: &ClientFrame) -> &'static str {
    match frame {
        ClientFrame::Hello { .. } => "hello",
        ClientFrame::Join { .. } => "join",
        ClientFrame::Leave { .. } => "leave",
        ClientFrame::Send { .. } => "send",
        ClientFrame::Private { .. } => "private",
        ClientFrame::Nick { .. } => "nick",
        ClientFrame::ListRooms => "list_rooms",
        ClientFrame::Who { .. } => "who",
        ClientFrame::Heartbeat => "heartbeat",
        ClientFrame::Quit => "quit",
    }
}

const CLIENT_FRAME_TYPES: [&str; 10] = [
    "hello",
    "join",
    "leave",
    "send",
    "private",
    "nick",
    "list_rooms",
    "who",
    "heartbeat",
    "quit",
];

/// The wire names of `count` values drawn from `strategy`.
fn drawn<T: std::fmt::Debug>(
    strategy: impl Strategy<Value = T>,
    name: fn(&T) -> &'static str,
    count: usize,
) -> std::collections::BTreeSet<&'static str> {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    (0..count)
        .map(|_| {
            let tree = strategy.new_tree(&mut runner).expect("a value is drawn");
            name(&tree.current())
        })
        .collect()
}

#[test]
fn the_round_trip_strategies_draw_every_frame_and_error_code() {
    let server = drawn(any_server_frame(), server_frame_type, 2_000);
    assert_eq!(server, SERVER_FRAME_TYPES.into_iter().collect());
    let client = drawn(any_client_frame(), client_frame_type, 500);
    assert_eq!(client, CLIENT_FRAME_TYPES.into_iter().collect());
    let codes: std::collections::BTreeSet<String> =
        ERROR_CODES.iter().map(ToString::to_string).collect();
    assert_eq!(
        codes.len(),
        ERROR_CODES.len(),
        "error codes have distinct names"
    );
}

proptest! {
    #[test]
    fn client_frames_round_trip(frame in any_client_frame()) {
        let bytes = encode(&frame);
        let tag = format!("{{\"type\":\"{}\"", client_frame_type(&frame));
        prop_assert!(bytes.starts_with(tag.as_bytes()), "the type is the name listed");
        prop_assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
        let decoded = decode_all::<ClientFrame>(&bytes, usize::MAX);
        prop_assert_eq!(decoded, vec![Ok(frame)]);
    }

    #[test]
    fn server_frames_round_trip(frame in any_server_frame()) {
        let bytes = encode(&frame);
        let tag = format!("{{\"type\":\"{}\"", server_frame_type(&frame));
        prop_assert!(bytes.starts_with(tag.as_bytes()), "the type is the name listed");
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
        let frame = encode(&ServerFrame::Message {
            room: "r".repeat(ROOM_CHARS_MAX),
            seq: u64::MAX,
            nick: "n".repeat(crate::protocol::NICK_CHARS_MAX),
            text,
            action: true,
        });
        prop_assert!(frame.len() <= FRAME_BYTES_MAX);
    }
}
